"""A set's copies: in the local root and, with ``VECTOR_ASSETS_OFFSITE_ROOT``, in a second root.

A restore, the drill and the checks read the local copy when it is there and its files have
the sizes its manifest records; otherwise the offsite copy, and they say so. After the local
root is lost entirely, every set is read from the offsite root.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from vector_assets.core.errors import BackupSetNotFoundError, ObjectStoreError
from vector_assets.core.sets.catalog import BackupSet, SetCatalog
from vector_assets.core.sets.naming import Location
from vector_assets.core.sets.storage import Root

LOCAL = "local"
OFFSITE = "offsite"


@dataclass(frozen=True)
class ChosenCopy:
    backup_set: BackupSet
    offsite: bool = False
    note: str | None = None  # why the offsite copy is read


def copy_problem(backup_set: BackupSet) -> str | None:
    """What makes a copy unusable that one listing shows: a missing file, or a size that
    differs from the manifest's. A changed byte shows later, when its sha256 is checked."""
    listing = backup_set.folder.entries()
    for table in backup_set.tables:
        for name, piece in backup_set.stored_files(table):
            if name not in listing:
                return f"{name} is missing"
            if piece is not None and listing[name].size != piece.bytes:
                return f"{name} has {listing[name].size} bytes, its manifest says {piece.bytes}"
    return None


def choose_copy(
    root: Root | Path | str,
    offsite: Root | Path | str | None,
    key: str | None,
    backup_path: str | None = None,
    configured_root: str | None = None,
) -> ChosenCopy:
    """The local copy of a set (``key`` None: the newest) if it is intact, else the offsite one."""
    try:
        local = _find(SetCatalog(root, configured_root), key, backup_path)
        problem = copy_problem(local)
    except (BackupSetNotFoundError, ObjectStoreError, OSError) as error:
        if offsite is None:
            raise
        local, problem = None, str(error)
    if problem is None or offsite is None:
        return ChosenCopy(local)
    remote = _find(SetCatalog(offsite), key, backup_path)
    return ChosenCopy(remote, True, f"the local copy cannot be read ({problem}); reading the offsite copy in {remote.folder}")


def _find(catalog: SetCatalog, key: str | None, backup_path: str | None) -> BackupSet:
    return catalog.locate(key, backup_path) if key else catalog.newest()


class PlacedSet(Protocol):
    key: str
    location: Location
    timestamp: str


def where_copies_are(local: Sequence[PlacedSet], offsite: Sequence[PlacedSet]) -> dict[str, tuple[str, ...]]:
    """Per local partition key: ``("local",)`` or ``("local", "offsite")``; sets only offsite too."""
    offsite_places = {(s.location, s.timestamp) for s in offsite}
    copies = {s.key: (LOCAL, OFFSITE) if (s.location, s.timestamp) in offsite_places else (LOCAL,) for s in local}
    local_places = {(s.location, s.timestamp) for s in local}
    copies.update({s.key: (OFFSITE,) for s in offsite if (s.location, s.timestamp) not in local_places})
    return copies
