"""Opening a root by what the operator wrote, and what every command does to a set's files
through any root.

``open_root`` picks the storage driver by the root's scheme (``DRIVERS``): a path or a
``file://`` URL is a folder on disk, ``s3://``, ``gs://``, ``az://`` and their kin go to an object
store. Deleting a set hides it first, so a half-deleted set is never mistaken for a complete one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from vector_assets.core.errors import BackupWriteError, ConfigError, PruneError, VectorAssetsError
from vector_assets.core.sets.disk_store import DiskRoot, path_of_file_url
from vector_assets.core.sets.naming import (
    LOG_FILE_NAME,
    manifest_file_name,
    set_file_names,
    tmp_name,
)
from vector_assets.core.sets.object_store import PROVIDERS, ObjectRoot
from vector_assets.core.sets.storage import Root, SetFolder, describe_os_error

# A root's scheme → the driver that opens it. A root without a scheme is a path on disk.
DRIVERS: dict[str, Callable[[str], Root]] = {
    "file": DiskRoot.open,
    **dict.fromkeys(PROVIDERS, ObjectRoot.open),
}
SCHEME = re.compile(r"\s*([A-Za-z][A-Za-z0-9+.-]*)://")


def scheme_of(text: str) -> str | None:
    """The URL scheme a root starts with, lower case, or None for a path."""
    match = SCHEME.match(text)
    return match.group(1).lower() if match else None


def open_root(root: Root | Path | str) -> Root:
    """A root from what the operator wrote: ``s3://bucket/prefix`` (gs://, az://, file://…), else a path."""
    if isinstance(root, Path):
        return DiskRoot(root)
    if not isinstance(root, str):
        return root
    scheme = scheme_of(root)
    if scheme is None:
        return DiskRoot(Path(root))
    if scheme not in DRIVERS:
        raise ConfigError(f"root {root.strip()!r}: no storage driver for {scheme}://; "
                          f"use a path or one of {', '.join(f'{name}://' for name in DRIVERS)}")
    return DRIVERS[scheme](root)


def local_folder(root: str) -> Path | None:
    """The folder a root names on this machine, or None for any other root."""
    scheme = scheme_of(root)
    if scheme is None:
        return Path(root)
    return path_of_file_url(root.strip()) if scheme == "file" else None


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
