"""The set catalog: finding complete sets under a root, and the one way to look a set up.

A set is listed when no ``.tmp`` file for its timestamp is left in the folder (its published
manifest's own ``.tmp`` excepted: a crash's leftover beside a complete set) and either its
manifest is published or, for a legacy set, both CSV files are present. Partition keys are
timestamps; when one timestamp occurs in several locations, the first location in scan order
(global, then task folders by name) keeps the bare timestamp and the others get
``<ts>__<task_id>``.
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from vector_assets.core.errors import (
    BackupSetNotFoundError,
    ManifestError,
    PathOutsideRootError,
)
from vector_assets.core.sets.describe import kind_text
from vector_assets.core.sets.manifest import (
    INCREMENTAL,
    PRE_RESTORE,
    PRE_TRUNCATE,
    SAFETY_KINDS,
    FilePart,
    Manifest,
    ManifestReads,
    RowIndex,
)
from vector_assets.core.sets.naming import (
    BACKUP_FOLDER_NAME,
    LOG_FILE_NAME,
    TASK_ID_PATTERN,
    TMP_SUFFIX,
    Location,
    csv_file_name,
    is_rekeyed_file_of,
    manifest_file_name,
    set_file_names,
    set_timestamp_of,
    tmp_name,
    validate_timestamp,
)
from vector_assets.core.sets.roots import open_root
from vector_assets.core.sets.storage import FileEntry, Root, SetFolder
from vector_assets.core.tables import LEGACY_TABLES


@dataclass(frozen=True)
class BackupSet:
    """A complete set under the root. ``key`` is its partition key in Dagster."""

    key: str
    timestamp: str
    location: Location
    folder: SetFolder
    manifest: Manifest | None

    @property
    def is_legacy(self) -> bool:
        return self.manifest is None

    @property
    def tables(self) -> tuple[str, ...]:
        if self.manifest is not None:
            return tuple(self.manifest.tables)  # in the order they were written: load order
        return LEGACY_TABLES

    def file_name(self, table: str) -> str:
        """The table's file (its first part, when it is in parts)."""
        return self.data_files(table)[0][0]

    def csv_path(self, table: str) -> Path | str:
        """Where the table's file is, for people: a path on disk, a URL in an object store."""
        return self.folder.locator(self.file_name(table))

    def data_files(self, table: str) -> list[tuple[str, FilePart | None]]:
        """The table's files in load order, each with what the manifest says of it (None for a
        legacy set, whose one CSV file nothing describes)."""
        if self.manifest is None:
            return [(csv_file_name(table, self.timestamp), None)]
        return [(piece.file, piece) for piece in self.manifest.tables[table].pieces]

    @property
    def manifest_path(self) -> Path | str:
        return self.folder.locator(manifest_file_name(self.timestamp))

    @property
    def log_path(self) -> Path | str:
        return self.folder.locator(LOG_FILE_NAME)

    def stored_files(self, table: str) -> list[tuple[str, FilePart | RowIndex | None]]:
        """Every file of the table in the set, with what the manifest records of it: the data
        files, then the row index and an increment's deleted keys. An increment restores only
        with its deleted keys, and the next increment compares with the row index."""
        files: list[tuple[str, FilePart | RowIndex | None]] = list(self.data_files(table))
        if self.manifest is not None:
            entry = self.manifest.tables[table]
            files += [(extra.file, extra) for extra in (entry.rows_index, entry.deleted_keys) if extra is not None]
        return files

    def all_stored_files(self) -> list[str]:
        return [name for table in self.tables for name, _ in self.stored_files(table)]

    def table_bytes(self, table: str, listing: Mapping[str, FileEntry] | None = None) -> int | None:
        """The size of every file of the table (data files and parts, row index, deleted keys);
        None when one is gone (the checks report it). ``listing`` is the folder's, when known."""
        listing = self.folder.entries() if listing is None else listing
        names = [name for name, _ in self.stored_files(table)]
        if any(name not in listing for name in names):
            return None
        return sum(listing[name].size for name in names)

    def files_in(self, listing: Mapping[str, FileEntry] | None = None) -> list[str]:
        """The files of the folder that belong to the set (see ``files_of_set``)."""
        listing = self.folder.entries() if listing is None else listing
        return files_of_set(self.timestamp, self.all_stored_files(), listing)

    def total_bytes(self, listing: Mapping[str, FileEntry] | None = None) -> int:
        """The set's size as every command reports it (list, the inventory, prune, the checks,
        the metadata): the bytes of ``files_in``. What prune frees."""
        listing = self.folder.entries() if listing is None else listing
        return bytes_of(self.files_in(listing), listing)


def files_of_set(timestamp: str, stored_files: Iterable[str], listing: Mapping[str, FileEntry]) -> list[str]:
    """The one definition of a set's files, which its size counts and prune deletes: the files
    its manifest lists (data files and parts, row indexes, an increment's deleted keys), its
    manifest, any name a set of its timestamp can have (a legacy set's CSVs), what is left of any
    of them being written (``.tmp``), and the files a stopped rekey wrote for it, as far as the
    folder's listing holds them. A file that is gone counts for nothing; an operator's own file
    beside the set is never one."""
    own = set(set_file_names(timestamp)) | set(stored_files)
    candidates = own | {tmp_name(name) for name in own} | {name for name in listing if is_rekeyed_file_of(name, timestamp)}
    return sorted(name for name in candidates if name in listing)


def bytes_of(names: Iterable[str], listing: Mapping[str, FileEntry]) -> int:
    return sum(listing[name].size for name in names)


@dataclass(frozen=True)
class SkippedLocation:
    """A backup folder that is not read, and why (one that resolves outside the root)."""

    label: str
    reason: str


def is_safety_set(manifest: Manifest | None) -> bool:
    """A set a restore or a guarded truncate wrote of what it was about to replace or remove."""
    return manifest is not None and manifest.kind in SAFETY_KINDS


@dataclass(frozen=True)
class NewestBackup:
    """The newest complete set of a folder that is not a safety set: its manifest, or None for a
    legacy set or (with ``error``) for a manifest that does not read."""

    timestamp: str
    manifest: Manifest | None
    error: ManifestError | None = None


def newest_backup_in(folder: SetFolder, names: list[str] | None = None) -> NewestBackup | None:
    """What an increment builds on, and what says whether a location uses increments.
    ``names``: the folder's listing, when the caller has just taken it."""
    for timestamp, has_manifest in reversed(complete_timestamps_in(folder, names)):
        if not has_manifest:
            return NewestBackup(timestamp, None)
        try:
            manifest = Manifest.read(folder, manifest_file_name(timestamp))
        except ManifestError as error:
            return NewestBackup(timestamp, None, error)
        if not is_safety_set(manifest):
            return NewestBackup(timestamp, manifest)
    return None


def backup_locations(root: Root, skipped: list[SkippedLocation] | None = None) -> list[Location]:
    """The global location first, then task locations sorted by name; only those that exist."""
    return list(backup_folders(root, skipped))


def backup_folders(root: Root, skipped: list[SkippedLocation] | None = None) -> dict[Location, SetFolder]:
    """Each location (as ``backup_locations`` orders them) with its folder.

    A location that resolves outside the root (a symlink) is never read through. It is left
    out, so it cannot stop the others, and added to ``skipped`` for the caller to report.
    """
    names = root.location_names()
    candidates: list[Location] = [Location()] if BACKUP_FOLDER_NAME in names else []
    candidates += [Location(name) for name in names if TASK_ID_PATTERN.fullmatch(name)]
    found = {}
    for location in candidates:
        try:
            found[location] = location.folder(root)
        except PathOutsideRootError as error:
            if skipped is not None:
                skipped.append(SkippedLocation(location.label, str(error)))
    return found


def timestamps_in_folder(folder: SetFolder, names: list[str] | None = None) -> dict[str, set[str]]:
    """Map each timestamp seen in a folder to the names present for it (tmp files included)."""
    by_timestamp: dict[str, set[str]] = defaultdict(set)
    for name in folder.names() if names is None else names:
        timestamp = set_timestamp_of(name)
        if timestamp is not None:
            by_timestamp[timestamp].add(name)
    return by_timestamp


def published_timestamps(folder: SetFolder, names: list[str] | None = None) -> set[str]:
    """Timestamps with at least one published file; stale ``.tmp`` leftovers do not count."""
    return {
        timestamp
        for timestamp, present in timestamps_in_folder(folder, names).items()
        if any(not name.endswith(TMP_SUFFIX) for name in present)
    }


def complete_timestamps_in(folder: SetFolder, names: list[str] | None = None) -> list[tuple[str, bool]]:
    """(timestamp, has a manifest) for each set that looks complete by its file names alone.

    No file is read, so a sensor can call this on every tick. A timestamp with any ``.tmp``
    file is still being written, or being deleted, unless that file is its published manifest's
    own (see ``_left_beside_its_manifest``). With a manifest the set was complete once (the
    manifest is published last); a legacy set needs both CSV files.
    """
    complete = []
    for timestamp, present in sorted(timestamps_in_folder(folder, names).items()):
        has_manifest = manifest_file_name(timestamp) in present
        if any(name.endswith(TMP_SUFFIX) and not (has_manifest and _left_beside_its_manifest(timestamp, name))
               for name in present):
            continue
        if has_manifest or all(csv_file_name(table, timestamp) in present for table in LEGACY_TABLES):
            complete.append((timestamp, has_manifest))
    return complete


def _left_beside_its_manifest(timestamp: str, name: str) -> bool:
    """A published manifest's ``.tmp`` beside it hides nothing: whatever left it, every file of the
    set is still there. On disk it is a rewrite of the manifest cut short (an earlier version's
    rekey swapped it so); there a set is hidden by renaming its manifest, so the two never stand
    together otherwise. In an object store it is the marker a backup or a replica writes before its
    first upload and removes after the manifest, left by a crash between the two; or a prune's
    marker, written just before it deletes the manifest, which goes before any other file. A set
    being written has its marker and no manifest yet, one being deleted no manifest any more: both
    stay hidden."""
    return name == tmp_name(manifest_file_name(timestamp))


def complete_sets_in(root: Root, location: Location) -> list[tuple[str, Manifest | None]]:
    """(timestamp, manifest or None) for each set of one location, oldest first.

    A set with a manifest counts even if a file has since gone missing: that set was complete
    and is now damaged, which the checks must be able to report. An unreadable manifest
    never vouches for a set.
    """
    folder = location.folder(root)
    found = []
    for timestamp, has_manifest in complete_timestamps_in(folder):
        try:
            manifest = Manifest.read(folder, manifest_file_name(timestamp)) if has_manifest else None
        except ManifestError:
            continue
        found.append((timestamp, manifest))
    return found


# A set that is not a plain backup says so in its partition key, so the Launchpad's partition
# picker (which shows keys only) tells a safety set or an increment from a full backup.
KEY_LABELS = {PRE_RESTORE: "pre_restore", PRE_TRUNCATE: "pre_truncate", INCREMENTAL: "incremental"}


def key_label(manifest: Manifest | None) -> str | None:
    """The label a set's partition key carries: its kind, unless it is a full or legacy set."""
    return KEY_LABELS.get(manifest.kind) if manifest is not None else None


def partition_keys(
    sets_by_location: list[tuple[Location, list[tuple[str, str | None]]]],
) -> list[tuple[str, Location, str]]:
    """(key, location, timestamp) for every set, from (timestamp, key label) per location;
    locations in scan order (global, then tasks). A key is the timestamp, then ``__<label>``
    for a safety set or an increment, then ``__<task id>`` when another location has it too."""
    taken: set[str] = set()
    keyed = []
    for location, sets in sets_by_location:
        for timestamp, label in sets:
            key = f"{timestamp}__{label}" if label else timestamp
            key = key if key not in taken else f"{key}__{location.task_id or 'global'}"
            taken.add(key)
            keyed.append((key, location, timestamp))
    return keyed


def read_set(
    root: Root, key: str, location: Location, timestamp: str, manifests: ManifestReads | None = None
) -> BackupSet:
    """One set whose identity is already known (the sensor's discovery), read without a scan;
    its manifest through ``manifests`` when given (read once for a whole tick)."""
    folder = location.folder(root)
    name = manifest_file_name(timestamp)
    listing = folder.entries()
    if name not in listing:
        return BackupSet(key, timestamp, location, folder, None)
    manifest = manifests.read(folder, name, listing[name]) if manifests else Manifest.read(folder, name)
    return BackupSet(key, timestamp, location, folder, manifest)


def scan_root(root: Root | Path | str, skipped: list[SkippedLocation] | None = None) -> list[BackupSet]:
    """Every complete set under the root, with its partition key, oldest first."""
    root = open_root(root)
    per_location = [
        (location, dict(complete_sets_in(root, location))) for location in backup_locations(root, skipped)
    ]
    keyed = partition_keys([
        (location, [(ts, key_label(manifest)) for ts, manifest in sets.items()]) for location, sets in per_location
    ])
    manifests = {(loc, ts): manifest for loc, sets in per_location for ts, manifest in sets.items()}
    found = [
        BackupSet(key, timestamp, location, location.folder(root), manifests[(location, timestamp)])
        for key, location, timestamp in keyed
    ]
    return sorted(found, key=lambda backup_set: (backup_set.timestamp, backup_set.key))


def set_at(root: Root | Path | str, folder: SetFolder, timestamp: str) -> BackupSet | None:
    """The complete set of ``timestamp`` in ``folder``, keyed as ``scan_root`` keys it, reading
    only the manifests of that timestamp: a new set is registered without reading every set's."""
    root = open_root(root)
    same_timestamp = []
    for candidate in backup_locations(root):
        complete = dict(complete_timestamps_in(candidate.folder(root)))
        if timestamp not in complete:
            continue
        try:
            manifest = Manifest.read(candidate.folder(root), manifest_file_name(timestamp)) if complete[timestamp] else None
        except ManifestError:
            continue
        same_timestamp.append((candidate, manifest))
    keyed = partition_keys([(candidate, [(timestamp, key_label(manifest))]) for candidate, manifest in same_timestamp])
    manifests = dict(same_timestamp)
    return next((BackupSet(key, timestamp, found, found.folder(root), manifests[found])
                 for key, found, _ in keyed if found.folder(root) == folder), None)


class SetCatalog:
    """Every complete set under a root, scanned once: the one way to look a set up.

    ``configured_root`` is the root as the operator wrote it; the earlier tooling's ``backup_path``
    starts with it, and a lookup accepts that form too.
    """

    def __init__(self, root: Root | Path | str, configured_root: str | None = None) -> None:
        self.root = open_root(root)
        self.configured_root = configured_root
        self.skipped: list[SkippedLocation] = []
        self.sets = scan_root(self.root, self.skipped)

    def get(self, key: str) -> BackupSet:
        """The set with this partition key. A key made before keys carried their set's kind (a
        safety set's or an increment's bare timestamp) still finds its set by the timestamp."""
        return self._by_key_or_timestamp(key)

    def newest(self) -> BackupSet:
        """The newest backup ("latest"): a restore's or a truncate's safety set only when there is
        nothing else, so restoring "latest" twice never restores what the first restore replaced."""
        if not self.sets:
            raise BackupSetNotFoundError(f"no complete backup set under {self.root}")
        backups = [backup_set for backup_set in self.sets if not is_safety_set(backup_set.manifest)]
        return (backups or self.sets)[-1]

    def locate(self, timestamp: str, backup_path: str | None = None) -> BackupSet:
        """A restore's lookup: by partition key, or by timestamp within ``backup_path``
        (``task_…/vector_bak`` or ``./vector_bak``, relative to the root)."""
        if backup_path is None:
            return self._by_key_or_timestamp(timestamp)
        validate_timestamp(timestamp)
        folder = self.root.folder_at(self._relative_to_root(backup_path))
        found = self.at(folder, timestamp)
        if found is None:
            raise BackupSetNotFoundError(f"no complete backup set {timestamp} in {backup_path!r} (looked in {folder})")
        return found

    def at(self, folder: SetFolder, timestamp: str) -> BackupSet | None:
        """The set of this timestamp in this folder, if it is complete."""
        return next((s for s in self.sets if s.folder == folder and s.timestamp == timestamp), None)

    def _by_key_or_timestamp(self, wanted: str) -> BackupSet:
        matches = [s for s in self.sets if s.key == wanted] or [s for s in self.sets if s.timestamp == wanted]
        if len({s.folder for s in matches}) > 1:
            where = ", ".join(s.location.label for s in matches)
            raise BackupSetNotFoundError(f"timestamp {wanted} exists in {where}; give backup_path to choose one")
        if not matches:
            validate_timestamp(wanted.split("__")[0])
            raise BackupSetNotFoundError(f"no complete backup set {wanted!r} under {self.root}{self._nearest(wanted)}")
        return matches[0]

    def _nearest(self, wanted: str) -> str:
        """The closest keys, backups before safety sets (restoring one of those is rarely what a
        mistyped key meant), each with what kind of set it is."""
        backups = [s for s in self.sets if not is_safety_set(s.manifest)] or self.sets
        by_key = {s.key: s for s in backups}
        nearest = difflib.get_close_matches(wanted, list(by_key), n=3, cutoff=0.5) or [s.key for s in backups[-3:][::-1]]
        return f"; nearest existing: {', '.join(f'{key} ({kind_text(by_key[key].manifest)})' for key in nearest)}" if nearest else ""

    def _relative_to_root(self, backup_path: str) -> str:
        path_parts = [part for part in PurePosixPath(backup_path).parts if part != "."]
        if self.configured_root:
            root_parts = [part for part in PurePosixPath(self.configured_root).parts if part != "."]
            if root_parts and path_parts[: len(root_parts)] == root_parts:
                path_parts = path_parts[len(root_parts):]
        return str(Path(*path_parts)) if path_parts else "."
