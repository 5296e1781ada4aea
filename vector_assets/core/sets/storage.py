"""Local-disk storage of sets, crash-safe: write ``*.tmp``, fsync, rename, fsync the folder.

A crash at any point leaves either the old state or the complete new file, never a file
that looks complete but is not. Deleting a set hides it first (one file renamed to ``.tmp``),
so a half-deleted set is never mistaken for a complete or a damaged one.
"""

from __future__ import annotations

import errno
import os
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from vector_assets.core.errors import BackupWriteError, PruneError
from vector_assets.core.hashing import Sha256Stream
from vector_assets.core.sets.naming import (
    LOG_FILE_NAME,
    manifest_file_name,
    set_file_names,
    tmp_name,
)

WRITE_CHUNK_BYTES = 1 << 20
QUEUED_CHUNKS = 8
# fdatasync now and then so the final fsync does not stall on the whole file at once.
SYNC_EVERY_BYTES = 64 << 20


def tmp_path_for(final_path: Path) -> Path:
    return final_path.with_name(tmp_name(final_path.name))


def fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp_path: Path, final_path: Path) -> None:
    """Rename a fully written, fsynced tmp file into place and make the rename durable."""
    os.replace(tmp_path, final_path)
    fsync_folder(final_path.parent)


def write_tmp_file(final_path: Path, data: bytes) -> Path:
    """Write and fsync ``<final>.tmp``; the caller publishes it when the time comes."""
    tmp_path = tmp_path_for(final_path)
    try:
        with open(tmp_path, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        remove_quietly(tmp_path)
        raise BackupWriteError(describe_os_error(exc, final_path)) from exc
    return tmp_path


def write_bytes_atomically(final_path: Path, data: bytes) -> None:
    tmp_path = write_tmp_file(final_path, data)
    try:
        publish(tmp_path, final_path)
    except OSError as exc:
        remove_quietly(tmp_path)
        raise BackupWriteError(describe_os_error(exc, final_path)) from exc


def remove_quietly(path: Path) -> None:
    """Best-effort cleanup after a failure: an error here must not hide the failure itself."""
    try:
        path.unlink()
    except OSError:
        pass


def describe_os_error(exc: OSError, path: Path) -> str:
    if exc.errno == errno.ENOSPC:
        return f"disk full while writing {path}"
    return f"cannot write {path}: {exc.strerror or exc}"


@contextmanager
def writing_under(path: Path) -> Iterator[None]:
    """Any OS error while writing under ``path`` (permission, read-only file system, a missing
    mount, a file where a folder should be) becomes a BackupWriteError naming the path."""
    try:
        yield
    except OSError as exc:
        raise BackupWriteError(describe_os_error(exc, Path(exc.filename) if exc.filename else path)) from exc


def prepare_folder(folder: Path) -> Path:
    """Create a set's folder (and the root above it) if needed; a failure names the path."""
    with writing_under(folder):
        folder.mkdir(parents=True, exist_ok=True)
    return folder


class HashingFileWriter:
    """A file-like sink for ``COPY ... TO STDOUT``: gathers rows into chunks, and hashes and
    writes them on a thread.

    psycopg2 hands over one CSV row per ``write`` call. The thread keeps the socket draining
    while the disk works (hashlib and file writes release the GIL). The queue is bounded, so
    memory stays at a few chunks whatever the table size.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        with writing_under(path):
            self._handle = open(path, "wb", buffering=0)
        self._hash = Sha256Stream()
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._unsynced = 0
        self._error: OSError | None = None
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUED_CHUNKS)
        self._thread = threading.Thread(target=self._drain, name=f"write {path.name}", daemon=True)
        self._thread.start()

    def write(self, row: bytes) -> None:
        self._pending.append(row)
        self._pending_bytes += len(row)
        if self._pending_bytes >= WRITE_CHUNK_BYTES:
            self._hand_over()

    def finish(self) -> tuple[int, str]:
        """Write what is left, fsync, close; return (bytes written, sha256 hex)."""
        self._hand_over()
        self._stop_thread()
        self._raise_if_failed()
        try:
            os.fsync(self._handle.fileno())
        except OSError as exc:
            raise BackupWriteError(describe_os_error(exc, self.path)) from exc
        finally:
            self._handle.close()
        return self._hash.bytes, self._hash.hexdigest()

    def abandon(self) -> None:
        """Stop after a failure and delete the partial file."""
        self._stop_thread()
        self._handle.close()
        remove_quietly(self.path)

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
                self._write_all(chunk)
                self._hash.update(chunk)
                self._unsynced += len(chunk)
                if self._unsynced >= SYNC_EVERY_BYTES:
                    os.fdatasync(self._handle.fileno())
                    self._unsynced = 0
            except OSError as exc:
                self._error = exc

    def _write_all(self, chunk: bytes) -> None:
        """An unbuffered write stops short when the disk fills; the next write raises ENOSPC.

        Ignoring the short count would hash and count bytes that never reached the file.
        """
        view = memoryview(chunk)
        while view:
            view = view[self._handle.write(view):]

    def _stop_thread(self) -> None:
        if self._thread.is_alive():
            self._chunks.put(None)
            self._thread.join()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise BackupWriteError(describe_os_error(self._error, self.path)) from self._error


def file_size(path: Path) -> int:
    """Bytes of the file itself (a symlink is not followed); 0 if it went away meanwhile."""
    try:
        return path.lstat().st_size
    except FileNotFoundError:
        return 0


def delete_files(folder: Path, names: list[str], marker_source: str, label: str) -> int:
    """Delete a set's files so that no step leaves a complete-looking or damaged-looking set.

    First ``marker_source`` (the manifest, or a legacy set's collection CSV) is renamed to
    ``*.tmp``: scans skip any timestamp with a ``.tmp`` file, so from then on the set is neither
    listed nor reported as damaged. Then the other files go, then the ``.tmp``; the folder is
    fsynced after each step. Returns the bytes freed.
    """
    freed = sum(file_size(folder / name) for name in names)
    marker = folder / tmp_name(marker_source)
    _step(label, folder / marker_source, "nothing was deleted", lambda: os.replace(folder / marker_source, marker))
    hidden = "the set is hidden from scans by " + marker.name + "; remove its remaining files by hand"
    for name in names:
        if name != marker_source:
            _step(label, folder / name, hidden, lambda path=folder / name: path.unlink(missing_ok=True))
    _step(label, marker, hidden, lambda: marker.unlink(missing_ok=True))
    return freed


def discard_set(folder: Path, timestamp: str, log_before: bytes | None, data_files: tuple[str, ...] = ()) -> None:
    """Remove a set written moments ago that is not needed after all, and its log block.
    ``data_files`` names its files in the newer formats, which no fixed name list holds."""
    candidates = set(set_file_names(timestamp)) | set(data_files) | {tmp_name(name) for name in data_files}
    names = sorted(name for name in candidates if (folder / name).exists())
    if names:
        marker = manifest_file_name(timestamp) if manifest_file_name(timestamp) in names else names[0]
        delete_files(folder, names, marker, timestamp)
    log = folder / LOG_FILE_NAME
    if log_before is None:
        remove_quietly(log)
    else:
        write_bytes_atomically(log, log_before)


def read_log(folder: Path) -> bytes | None:
    try:
        return (folder / LOG_FILE_NAME).read_bytes()
    except FileNotFoundError:
        return None


def _step(label: str, path: Path, state: str, action: Callable[[], object]) -> None:
    """Run one file operation and make it durable before the next one starts."""
    try:
        action()
        fsync_folder(path.parent)
    except OSError as exc:
        raise PruneError(
            f"cannot delete {path.name} of set {label} in {path.parent}: {exc.strerror or exc}; {state}"
        ) from exc

