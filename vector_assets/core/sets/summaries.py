"""Every set under a root as the list needs it, reading only the manifests that changed.

The list (``vector-assets list``, the inventory the sensor reports on every change) needs of
each set its kind and parent, its tables' files and rows, and the recipients it is encrypted
to: a few hundred bytes of a manifest that also holds the tables' definitions. Read from every
manifest, a tick that found one new set among n opened n files (on an object store, n GETs).

So each set's summary is remembered in one file under the root's state folder, with the
identity of the manifest it was read from as the folder's listing shows it (size, time and, in
an object store, ETag). A manifest listed as it was is not read again; one listed otherwise (a
rekey rewrites it) is. Each location's records are one JSON text in the file, parsed only when
that location is listed: the sensor lists only the folders that changed. The file is a cache:
lost, stale, unreadable or not writable, it costs reads, never a wrong answer. It holds the
sets under the root now, not the history.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vector_assets.core.errors import BackupWriteError, ManifestError, VectorAssetsError
from vector_assets.core.sets.catalog import (
    KEY_LABELS,
    SkippedLocation,
    backup_locations,
    bytes_of,
    complete_timestamps_in,
    files_of_set,
    partition_keys,
)
from vector_assets.core.sets.legacy_rows import state_folder
from vector_assets.core.sets.manifest import Manifest, ManifestReads
from vector_assets.core.sets.naming import Location, csv_file_name, manifest_file_name
from vector_assets.core.sets.roots import open_root
from vector_assets.core.sets.storage import FileEntry, Root, SetFolder
from vector_assets.core.tables import LEGACY_TABLES

SUMMARIES_FILE = "set_summaries.json"
SUMMARIES_VERSION = 2  # version 1 kept every set's record in one object, read whole


@dataclass(frozen=True)
class TableSummary:
    """One table of a set: its data files in load order, its other files (row index, deleted
    keys), its rows in the files and once the set (its chain) is restored."""

    table: str
    data_files: tuple[str, ...]
    other_files: tuple[str, ...]
    rows: int
    rows_after: int


@dataclass(frozen=True)
class SetSummary:
    """What the list shows of a set that has a manifest, read from it once."""

    kind: str
    parent: str | None
    recipients: tuple[str, ...]
    tables: tuple[TableSummary, ...]  # in load order

    @classmethod
    def of(cls, manifest: Manifest) -> SetSummary:
        tables = tuple(
            TableSummary(
                name, tuple(piece.file for piece in entry.pieces),
                tuple(extra.file for extra in (entry.rows_index, entry.deleted_keys) if extra is not None),
                entry.rows, entry.rows_after,
            )
            for name, entry in manifest.tables.items()
        )
        return cls(manifest.kind, manifest.parent if manifest.is_increment else None, manifest.recipients, tables)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "parent": self.parent, "recipients": list(self.recipients),
            "tables": [[t.table, list(t.data_files), list(t.other_files), t.rows, t.rows_after] for t in self.tables],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SetSummary:
        tables = tuple(
            TableSummary(str(name), tuple(data_files), tuple(other_files), int(rows), int(rows_after))
            for name, data_files, other_files, rows, rows_after in data["tables"]
        )
        return cls(str(data["kind"]), data["parent"], tuple(data["recipients"]), tables)


@dataclass(frozen=True)
class ListedSet:
    """A complete set as the list sees it: its key, where it is, its summary (None for a legacy
    set, which has no manifest) and its folder's listing."""

    key: str
    timestamp: str
    location: Location
    folder: SetFolder
    summary: SetSummary | None
    listing: Mapping[str, FileEntry] = field(compare=False, repr=False)

    @property
    def is_legacy(self) -> bool:
        return self.summary is None

    @property
    def tables(self) -> tuple[str, ...]:
        return LEGACY_TABLES if self.summary is None else tuple(t.table for t in self.summary.tables)

    def data_files(self, table: str) -> tuple[str, ...]:
        if self.summary is None:
            return (csv_file_name(table, self.timestamp),)
        return next(t.data_files for t in self.summary.tables if t.table == table)

    def file_name(self, table: str) -> str:
        """The table's file (its first part, when it is in parts)."""
        return self.data_files(table)[0]

    def table_files(self, table: str) -> tuple[str, ...]:
        """Every file of the table: its data files, then its row index and deleted keys."""
        if self.summary is None:
            return self.data_files(table)
        return next(t.data_files + t.other_files for t in self.summary.tables if t.table == table)

    def files(self) -> list[str]:
        """The set's files, as ``BackupSet.files_in`` counts them."""
        return files_of_set(self.timestamp, [name for table in self.tables for name in self.table_files(table)],
                            self.listing)

    def total_bytes(self) -> int:
        return bytes_of(self.files(), self.listing)

    def table_bytes(self, table: str) -> int | None:
        """The size of every file of the table; None when one is gone."""
        names = self.table_files(table)
        if any(name not in self.listing for name in names):
            return None
        return bytes_of(names, self.listing)


@dataclass(frozen=True)
class ListedLocation:
    """One location's complete sets as one listing of its folder shows them: each timestamp's
    summary, oldest first (None for a legacy set; a set whose manifest does not read is left out)."""

    location: Location
    folder: SetFolder
    listing: Mapping[str, FileEntry] = field(repr=False)
    summaries: dict[str, SetSummary | None]

    def key_labels(self) -> list[tuple[str, str | None]]:
        """(timestamp, the label its partition key carries), as ``partition_keys`` takes them."""
        return [(ts, KEY_LABELS.get(s.kind) if s else None) for ts, s in self.summaries.items()]

    def listed_set(self, key: str, timestamp: str) -> ListedSet:
        return ListedSet(key, timestamp, self.location, self.folder, self.summaries[timestamp], self.listing)


def list_sets(
    root: Root | Path | str, skipped: list[SkippedLocation] | None = None, manifests: ManifestReads | None = None
) -> list[ListedSet]:
    """Every complete set under the root with its partition key, oldest first, as ``scan_root``
    finds them (a set whose manifest does not read is left out); one listing per location, and
    a manifest read only when the remembered summaries do not hold it as it is listed now (and
    ``manifests``, what the caller read already, does not either)."""
    root = open_root(root)
    listed = {location.location: location for location in list_locations(root, backup_locations(root, skipped), manifests)}
    keyed = partition_keys([(location, listed_location.key_labels()) for location, listed_location in listed.items()])
    sets = [listed[location].listed_set(key, ts) for key, location, ts in keyed]
    return sorted(sets, key=lambda s: (s.timestamp, s.key))


def list_locations(
    root: Root | Path | str, locations: list[Location], manifests: ManifestReads | None = None,
    present: Collection[str] | None = None,
) -> list[ListedLocation]:
    """The complete sets of ``locations``, one listing each, reading a manifest only when the
    remembered summaries do not hold it as it is listed now. The remembered summaries of the
    other locations named in ``present`` (labels; by default none) are kept as they are, unread;
    those of any other location are dropped, so the file holds the sets under the root now."""
    root = open_root(root)
    manifests = ManifestReads() if manifests is None else manifests
    stored = _read(root)
    kept_labels = set(present or ()) - {location.label for location in locations}
    kept = {label: text for label, text in stored.items() if label in kept_labels}
    listed = []
    for location in locations:
        folder = location.folder(root)
        listing = folder.entries()
        remembered, records = _records(stored.get(location.label)), {}
        summaries: dict[str, SetSummary | None] = {}
        for timestamp, has_manifest in complete_timestamps_in(folder, list(listing)):
            if not has_manifest:
                summaries[timestamp] = None
                continue
            records[timestamp], summary = _record(
                folder, manifest_file_name(timestamp), listing, remembered.get(timestamp), manifests
            )
            if summary is not None:
                summaries[timestamp] = summary
        kept[location.label] = json.dumps(records, separators=(",", ":"))
        listed.append(ListedLocation(location, folder, listing, summaries))
    if kept != stored:
        _write(root, kept)
    return listed


def _record(
    folder: SetFolder, name: str, listing: Mapping[str, FileEntry], known: Any, manifests: ManifestReads
) -> tuple[dict[str, Any], SetSummary | None]:
    """The remembered record of a manifest and its summary if the manifest is still listed as
    it was; else both read from it now. None: the manifest does not read (it never vouches for
    a set, and is read again only once it changes)."""
    entry = listing[name]
    identity = [entry.size, entry.modified_ns, entry.version]
    if isinstance(known, dict) and known.get("manifest") == identity:
        try:
            return known, None if known["summary"] is None else SetSummary.from_json(known["summary"])
        except (KeyError, TypeError, ValueError):
            pass  # not a record this code wrote: read the manifest
    try:
        summary: SetSummary | None = SetSummary.of(manifests.read(folder, name, entry))
    except ManifestError:
        summary = None
    return {"manifest": identity, "summary": summary.to_json() if summary else None}, summary


def _read(root: Root) -> dict[str, str]:
    """Per location label, its records as one JSON text, read only when it is listed."""
    try:
        data = json.loads(state_folder(root).read_bytes(SUMMARIES_FILE) or b"{}")
    except (OSError, ValueError, VectorAssetsError):
        return {}
    if not isinstance(data, dict) or data.get("version") != SUMMARIES_VERSION or not isinstance(data.get("locations"), dict):
        return {}
    return {str(label): text for label, text in data["locations"].items() if isinstance(text, str)}


def _records(text: str | None) -> dict[str, Any]:
    """One location's records by timestamp; none when they do not read."""
    try:
        records = json.loads(text or "{}")
    except ValueError:
        return {}
    return records if isinstance(records, dict) else {}


def _write(root: Root, locations: dict[str, str]) -> None:
    """Remember the summaries; a root that cannot be written to reads the manifests next time."""
    try:
        folder = state_folder(root)
        folder.prepare()
        folder.write_bytes(SUMMARIES_FILE, json.dumps({"version": SUMMARIES_VERSION, "locations": locations},
                                                      separators=(",", ":")).encode())
    except (OSError, BackupWriteError, VectorAssetsError):
        pass
