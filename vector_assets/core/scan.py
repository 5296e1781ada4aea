"""Finding backup sets under a root: the global folder and every task folder.

A set is listed when no ``.tmp`` file for its timestamp is left in the folder and either its
manifest is published or, for a legacy set, both CSV files are present.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from vector_assets.core.atomic_files import TMP_SUFFIX
from vector_assets.core.backup_set import (
    BACKUP_FOLDER_NAME,
    TASK_ID_PATTERN,
    BackupSet,
    Location,
    Manifest,
    csv_file_name,
    manifest_file_name,
    resolve_inside_root,
    validate_timestamp,
)
from vector_assets.core.errors import BackupSetNotFoundError, ManifestError
from vector_assets.core.tables import MANAGED_TABLES

_SET_FILE = re.compile(
    r"^(?:(?P<table>" + "|".join(MANAGED_TABLES) + r")_|vector_backup_)(?P<ts>\d{8}_\d{6})\.(?:csv|json)"
)


def backup_locations(root: Path) -> list[Location]:
    """The global location first, then task locations sorted by name; only those that exist."""
    root = Path(root)
    found: list[Location] = []
    if (root / BACKUP_FOLDER_NAME).is_dir():
        found.append(Location())
    if root.is_dir():
        for child in sorted(root.iterdir()):
            if TASK_ID_PATTERN.match(child.name) and (child / BACKUP_FOLDER_NAME).is_dir():
                found.append(Location(child.name))
    return found


def timestamps_in_folder(folder: Path) -> dict[str, set[str]]:
    """Map each timestamp seen in a folder to the names present for it (tmp files included)."""
    names: dict[str, set[str]] = defaultdict(set)
    for entry in folder.iterdir():
        match = _SET_FILE.match(entry.name)
        if match:
            names[match.group("ts")].add(entry.name)
    return names


def complete_timestamps_in(folder: Path) -> list[tuple[str, bool]]:
    """(timestamp, has a manifest) for each set that looks complete by its file names alone.

    No file is read, so a sensor can call this on every tick. A timestamp with any ``.tmp``
    file is still being written. With a manifest the set was complete once (the manifest is
    published last); a legacy set needs both CSV files.
    """
    complete = []
    for timestamp, names in sorted(timestamps_in_folder(folder).items()):
        if any(name.endswith(TMP_SUFFIX) for name in names):
            continue
        has_manifest = manifest_file_name(timestamp) in names
        if has_manifest or all(csv_file_name(table, timestamp) in names for table in MANAGED_TABLES):
            complete.append((timestamp, has_manifest))
    return complete


def complete_sets_in(root: Path, location: Location) -> list[tuple[str, Manifest | None]]:
    """(timestamp, manifest or None) for each set of one location, oldest first.

    A set with a manifest counts even if a file has since gone missing: that set was complete
    and is now damaged, which the checks must be able to report. An unreadable manifest
    never vouches for a set.
    """
    folder = location.folder(root)
    found = []
    for timestamp, has_manifest in complete_timestamps_in(folder):
        try:
            manifest = Manifest.read(folder / manifest_file_name(timestamp)) if has_manifest else None
        except ManifestError:
            continue
        found.append((timestamp, manifest))
    return found


def partition_keys(timestamps_by_location: list[tuple[Location, list[str]]]) -> list[tuple[str, Location, str]]:
    """(key, location, timestamp) for every set; locations in scan order (global, then tasks).

    Keys are timestamps. When one timestamp occurs in several locations, the first location
    keeps the bare timestamp and the others get ``<ts>__<task_id>``, so keys are the same on
    every tick for the same folders.
    """
    taken: set[str] = set()
    keyed = []
    for location, timestamps in timestamps_by_location:
        for timestamp in timestamps:
            key = timestamp if timestamp not in taken else f"{timestamp}__{location.task_id or 'global'}"
            taken.add(key)
            keyed.append((key, location, timestamp))
    return keyed


def scan_root(root: Path) -> list[BackupSet]:
    """Every complete set under the root, with its partition key, oldest first."""
    root = Path(root)
    per_location = [(location, dict(complete_sets_in(root, location))) for location in backup_locations(root)]
    keyed = partition_keys([(location, list(sets)) for location, sets in per_location])
    manifests = {(location, timestamp): manifest for location, sets in per_location for timestamp, manifest in sets.items()}
    found = [
        BackupSet(key, timestamp, location, location.folder(root), manifests[(location, timestamp)])
        for key, location, timestamp in keyed
    ]
    return sorted(found, key=lambda backup_set: (backup_set.timestamp, backup_set.key))


def find_set(root: Path, key: str) -> BackupSet:
    for backup_set in scan_root(root):
        if backup_set.key == key:
            return backup_set
    raise BackupSetNotFoundError(f"no complete backup set with key {key!r} under {root}")


def locate_set(root: Path, timestamp: str, backup_path: str | None = None, configured_root: str | None = None) -> BackupSet:
    """The set a restore asks for: by partition key, or by timestamp within ``backup_path``.

    ``backup_path`` is relative to the root (``task_…/vector_bak`` or ``./vector_bak``). The
    seed's form, the configured root followed by the location, is accepted too.
    """
    sets = scan_root(root)
    if backup_path is None:
        matches = [s for s in sets if s.key == timestamp] or [s for s in sets if s.timestamp == timestamp]
        if len({s.folder for s in matches}) > 1:
            where = ", ".join(s.location.label for s in matches)
            raise BackupSetNotFoundError(f"timestamp {timestamp} exists in {where}; give backup_path to choose one")
        if not matches:
            validate_timestamp(timestamp.split("__")[0])
            raise BackupSetNotFoundError(f"no complete backup set {timestamp!r} under {root}")
        return matches[0]
    validate_timestamp(timestamp)
    folder = resolve_inside_root(root, _relative_to_configured_root(backup_path, configured_root))
    for backup_set in sets:
        if backup_set.folder == folder and backup_set.timestamp == timestamp:
            return backup_set
    raise BackupSetNotFoundError(f"no complete backup set {timestamp} in {backup_path!r} (looked in {folder})")


def _relative_to_configured_root(backup_path: str, configured_root: str | None) -> str:
    path_parts = [part for part in Path(backup_path).parts if part != "."]
    if configured_root:
        root_parts = [part for part in Path(configured_root).parts if part != "."]
        if root_parts and path_parts[: len(root_parts)] == root_parts:
            path_parts = path_parts[len(root_parts):]
    return str(Path(*path_parts)) if path_parts else "."
