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


def complete_sets_in(root: Path, location: Location) -> list[tuple[str, Manifest | None]]:
    """(timestamp, manifest or None) for each set of one location, oldest first.

    A set with a manifest counts even if a file has since gone missing: the manifest is
    published after its files, so that set was complete and is now damaged, which the checks
    must be able to report. A legacy set counts only with both CSV files present.
    """
    folder = location.folder(root)
    found = []
    for timestamp, names in sorted(timestamps_in_folder(folder).items()):
        if any(name.endswith(TMP_SUFFIX) for name in names):
            continue
        try:
            manifest = _manifest_if_present(folder, timestamp, names)
        except ManifestError:
            continue  # an unreadable manifest never vouches for a set
        legacy_files = [csv_file_name(table, timestamp) for table in MANAGED_TABLES]
        if manifest is not None or all(name in names for name in legacy_files):
            found.append((timestamp, manifest))
    return found


def _manifest_if_present(folder: Path, timestamp: str, names: set[str]) -> Manifest | None:
    name = manifest_file_name(timestamp)
    return Manifest.read(folder / name) if name in names else None


def scan_root(root: Path) -> list[BackupSet]:
    """Every complete set under the root, with its partition key, oldest first.

    Keys are timestamps. When one timestamp occurs in several locations, the first location
    (global, then task folders by name) keeps the bare timestamp and the others get
    ``<ts>__<task_id>``, so keys are stable from tick to tick.
    """
    root = Path(root)
    found: list[BackupSet] = []
    taken: set[str] = set()
    per_location = [(loc, complete_sets_in(root, loc)) for loc in backup_locations(root)]
    for location, sets in per_location:
        for timestamp, manifest in sets:
            key = timestamp if timestamp not in taken else f"{timestamp}__{location.task_id or 'global'}"
            taken.add(key)
            found.append(BackupSet(key, timestamp, location, location.folder(root), manifest))
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
