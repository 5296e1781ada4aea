"""Roots and folders: the one storage interface every command goes through.

A root is a local folder (``DiskRoot``) or an object-store URL (``ObjectRoot``,
``s3://bucket/prefix``). Its backup folders (``SetFolder``) list, read, write, hide and delete
files by name; the layout and the crash-safety rules are the same on both:

- a data file is written through ``open_writer`` (hashed on the way) and published; the
  manifest is written last, and until then the set is hidden by a ``.tmp`` name;
- deleting a set hides it first, so a half-deleted set is never mistaken for a complete one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

from vector_assets.core.errors import BackupWriteError, PruneError, VectorAssetsError
from vector_assets.core.sets.naming import (
    LOG_FILE_NAME,
    manifest_file_name,
    set_file_names,
    tmp_name,
)
from vector_assets.core.sets.object_store import ObjectRoot, is_object_store_url
from vector_assets.core.sets.storage import (
    DiskRoot,
    FileEntry,
    HashingWriter,
    describe_os_error,
)


class SetFolder(Protocol):
    """A backup folder: ``<root>/vector_bak`` or ``<root>/<task_id>/vector_bak``."""

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

    def remove(self, name: str) -> None:
        """Delete a file; a missing file is fine."""

    def hide(self, name: str) -> None:
        """Replace ``name`` by ``name.tmp``, so scans skip its set from now on."""


class Root(Protocol):
    def exists(self) -> bool: ...

    def location_names(self) -> list[str]:
        """Names right under the root that may be locations (``vector_bak``, task ids), sorted."""

    def folder_at(self, relative: str | Path) -> SetFolder:
        """A folder given relative to the root; ``..`` and escapes are refused."""


def open_root(root: Root | Path | str) -> Root:
    """A root from what the operator wrote: ``s3://bucket/prefix`` (or gs://, az://), else a path."""
    if isinstance(root, str) and is_object_store_url(root):
        return ObjectRoot.open(root)
    if isinstance(root, (str, Path)):
        return DiskRoot(Path(root))
    return root


def files_visible_when_written(folder: SetFolder) -> bool:
    """True where a data file appears under its final name as soon as it is written (an
    object store), so a set in progress needs a marker to stay hidden."""
    return bool(getattr(folder, "files_visible_when_written", False))


def delete_files(folder: SetFolder, names: list[str], marker_source: str, label: str) -> int:
    """Delete a set's files so that no step leaves a complete-looking or damaged-looking set.

    First ``marker_source`` (the manifest, or a legacy set's collection CSV) is hidden behind a
    ``.tmp`` name: scans skip any timestamp with a ``.tmp`` file, so from then on the set is
    neither listed nor reported as damaged. Then the other files go, then the ``.tmp``.
    Returns the bytes freed.
    """
    entries = folder.entries()
    freed = sum(entries[name].size for name in names if name in entries)
    marker = tmp_name(marker_source)
    _step(label, folder, marker_source, "nothing was deleted", lambda: folder.hide(marker_source))
    hidden = f"the set is hidden from scans by {marker}; remove its remaining files by hand"
    for name in names:
        if name not in (marker_source, marker):
            _step(label, folder, name, hidden, lambda name=name: folder.remove(name))
    _step(label, folder, marker, hidden, lambda: folder.remove(marker))
    return freed


def discard_set(folder: SetFolder, timestamp: str, log_before: bytes | None, data_files: tuple[str, ...] = ()) -> None:
    """Remove a set written moments ago that is not needed after all, and its log block.
    ``data_files`` names its files in the newer formats, which no fixed name list holds."""
    present = set(folder.names())
    candidates = set(set_file_names(timestamp)) | set(data_files) | {tmp_name(name) for name in data_files}
    names = sorted(name for name in candidates if name in present)
    if names:
        marker = manifest_file_name(timestamp) if manifest_file_name(timestamp) in names else names[0]
        delete_files(folder, names, marker, timestamp)
    if log_before is None:
        folder.remove(LOG_FILE_NAME)
    else:
        folder.write_bytes(LOG_FILE_NAME, log_before)


@contextmanager
def writing_to(folder: SetFolder) -> Iterator[None]:
    """Any OS error while writing into a folder on disk (permission, read-only file system, a
    full disk, a file where a folder should be) becomes a BackupWriteError naming the path."""
    try:
        yield
    except OSError as exc:
        path = Path(exc.filename) if exc.filename else Path(str(folder))
        raise BackupWriteError(describe_os_error(exc, path)) from exc


def remove_quietly(folder: SetFolder, name: str) -> None:
    """Best-effort cleanup after a failure: an error here must not hide the failure itself."""
    try:
        folder.remove(name)
    except (OSError, VectorAssetsError):
        pass


def _step(label: str, folder: SetFolder, name: str, state: str, action) -> None:
    """Run one file operation; each is durable before the next one starts."""
    try:
        action()
    except (OSError, VectorAssetsError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PruneError(f"cannot delete {name} of set {label} in {folder}: {reason}; {state}") from exc
