"""The storage interface every driver implements, and what the drivers share.

A root (``Root``) is where sets are kept: a local folder, or a bucket or container with a key
prefix. Its backup folders (``SetFolder``) list, read, write, hide and delete files by name.
What differs between stores that a caller must know is declared, as ``Capabilities``, never
guessed from the driver's type. Every driver writes through a ``HashingWriter`` into a
``ChunkTarget`` of its own (a tmp file, a multipart upload), and lists files as ``FileEntry``.

A driver module (``disk_store.py``, ``object_store.py``) imports this one and no other driver;
``roots.open_root`` picks the driver by the root's scheme.
"""

from __future__ import annotations

import errno
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from vector_assets.core.hashing import Sha256Stream

WRITE_CHUNK_BYTES = 1 << 20
QUEUED_CHUNKS = 2


@dataclass(frozen=True)
class Capabilities:
    """What a store does differently, as its driver declares it."""

    # A file appears under its final name as soon as it is written (an object store: an upload
    # completes, there is no rename to publish with), so a set in progress needs a marker to
    # stay hidden from scans. False: files are written as ``.tmp`` and renamed into place.
    files_visible_when_written: bool


@dataclass(frozen=True)
class FileEntry:
    """One file of a folder listing: what a scan may know without reading the file."""

    size: int
    modified_ns: int
    version: str = ""  # an object store's ETag: changes when an object is rewritten, even at the same size and second


def describe_os_error(exc: OSError, path: Path) -> str:
    if exc.errno == errno.ENOSPC:
        return f"disk full while writing {path}"
    return f"cannot write {path}: {exc.strerror or exc}"


class ChunkTarget(Protocol):
    """Where a ``HashingWriter``'s chunks go: a tmp file, or a multipart upload."""

    def write_chunk(self, chunk: bytes) -> None: ...

    def complete(self) -> None:
        """Make everything written durable (fsync, or complete the upload)."""

    def publish(self) -> None:
        """Make the file visible under its final name."""

    def discard(self) -> None:
        """Remove what was written so far (the tmp file, or abort the upload)."""

    def error_for(self, exc: Exception) -> Exception:
        """The typed error to raise for a failure of this target, naming the file."""


class HashingWriter:
    """A file-like sink for ``COPY ... TO STDOUT``: gathers rows into chunks, and hashes and
    writes them on a thread.

    psycopg2 hands over one CSV row per ``write`` call. The thread keeps the socket draining
    while the disk or the network works (hashlib, file writes and uploads release the GIL).
    The queue is bounded, so memory stays at a few chunks whatever the table size.
    """

    def __init__(self, target: ChunkTarget, name: str) -> None:
        self._target = target
        self._hash = Sha256Stream()
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._error: Exception | None = None
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUED_CHUNKS)
        self._thread = threading.Thread(target=self._drain, name=f"write {name}", daemon=True)
        self._thread.start()

    def write(self, row: bytes) -> None:
        self._pending.append(row)
        self._pending_bytes += len(row)
        if self._pending_bytes >= WRITE_CHUNK_BYTES:
            self._hand_over()

    def finish(self) -> tuple[int, str]:
        """Write what is left and make it durable; return (bytes written, sha256 hex)."""
        self._hand_over()
        self._stop_thread()
        self._raise_if_failed()
        try:
            self._target.complete()
        except Exception as exc:
            raise self._target.error_for(exc) from exc
        return self._hash.bytes, self._hash.hexdigest()

    def publish(self) -> None:
        try:
            self._target.publish()
        except Exception as exc:
            raise self._target.error_for(exc) from exc

    def abandon(self) -> None:
        """Stop after a failure and remove what was written."""
        self._stop_thread()
        self._target.discard()

    def _hand_over(self) -> None:
        if not self._pending:
            return
        chunk = b"".join(self._pending)
        self._pending = []
        self._pending_bytes = 0
        while True:
            self._raise_if_failed()
            try:
                self._chunks.put(chunk, timeout=0.5)
                return
            except queue.Full:
                continue

    def _drain(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            if self._error is not None:
                continue
            try:
                self._target.write_chunk(chunk)
                self._hash.update(chunk)
            except Exception as exc:
                self._error = exc

    def _stop_thread(self) -> None:
        if self._thread.is_alive():
            self._chunks.put(None)
            self._thread.join()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._target.error_for(self._error) from self._error


class SetFolder(Protocol):
    """A backup folder: ``<root>/vector_bak`` or ``<root>/<task_id>/vector_bak``.

    The layout and the crash-safety rules are the same on every store: a data file is written
    through ``open_writer`` (hashed on the way) and published; the manifest is written last,
    and until then the set is hidden by a ``.tmp`` name; deleting a set hides it first, so a
    half-deleted set is never mistaken for a complete one.
    """

    @property
    def capabilities(self) -> Capabilities: ...

    def locator(self, name: str) -> Path | str:
        """Where a file is, as an operator reads it: a path, or a URL."""

    def exists(self) -> bool: ...

    def prepare(self) -> None:
        """Create the folder if the store has folders."""

    def unprepare(self) -> None:
        """Remove the folder again if it is empty (after a dry run that had to create it)."""

    def entries(self) -> dict[str, FileEntry]:
        """One listing: name → size and modification time. Reads no file."""

    def names(self) -> list[str]: ...

    def fingerprint(self) -> str:
        """Changes whenever a file is added, removed or replaced; as cheap as one listing."""

    def size(self, name: str) -> int | None:
        """Bytes of the file, or None if it is not there."""

    def open_reader(self, name: str) -> BinaryIO: ...

    def open_writer(self, name: str) -> HashingWriter:
        """A hashing, streaming writer; ``finish`` makes it durable, ``publish`` visible."""

    def read_bytes(self, name: str) -> bytes | None: ...

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write a small file atomically: all of it or nothing."""

    def replace_bytes(self, name: str, data: bytes) -> None:
        """Replace a published small file atomically without hiding its set: at every instant,
        a crash included, the file reads whole, old or new (a rekey's manifest swap)."""

    def remove(self, name: str) -> None:
        """Delete a file; a missing file is fine."""

    def hide(self, name: str) -> None:
        """Replace ``name`` by ``name.tmp``, so scans skip its set from now on."""


class Root(Protocol):
    @property
    def capabilities(self) -> Capabilities: ...

    def exists(self) -> bool: ...

    def location_names(self) -> list[str]:
        """Names right under the root that may be locations (``vector_bak``, task ids), sorted."""

    def folder_at(self, relative: str | Path) -> SetFolder:
        """A folder given relative to the root; ``..`` and escapes are refused."""
