"""The inventory the sensor reports, kept up to date with the locations that changed.

``build_inventory`` lists every folder and makes an entry of every set, which at 10,000 sets
took most of a sensor tick that found one new set. The sensor's discovery has already taken
each folder's fingerprint, so this module remembers, per location, the fingerprint its lines
were made at and one ``InventoryLine`` per set, in one file under the root's state folder
(beside the set summaries). A tick lists again only the locations whose fingerprint differs, or
that the caller names (their legacy sets' rows were just counted); the others' lines are read
back. Partition keys are made again over every location (a repeated timestamp's suffix depends
on all of them), and the totals are added up over every line, so they are exact.

The file is a cache, trusted only as far as discovery trusts a fingerprint: missing, damaged,
of another version or written for another root, every location is listed, as a full rebuild.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from vector_assets.core.errors import BackupWriteError, VectorAssetsError
from vector_assets.core.sets.catalog import SkippedLocation, partition_keys
from vector_assets.core.sets.copies import where_copies_are
from vector_assets.core.sets.inventory import (
    Inventory,
    InventoryLine,
    displayed_root,
    entry_for,
    inventory_response,
    inventory_table_records,
    table_record,
)
from vector_assets.core.sets.legacy_rows import read_remembered, state_folder
from vector_assets.core.sets.manifest import ManifestReads
from vector_assets.core.sets.naming import Location
from vector_assets.core.sets.storage import Root
from vector_assets.core.sets.summaries import ListedLocation, list_locations, list_sets

STATE_FILE = "inventory_lines.json"
STATE_VERSION = 1
# The asset's table shows this many sets, the newest over every location; the totals count all.
NEWEST_SETS_SHOWN = 100


@dataclass(frozen=True)
class InventoryUpdateRequest:
    """Every location in scan order with the fingerprint the caller took of its folder (the
    sensor's discovery), and the labels of locations to list again whatever their fingerprint."""

    root: Root
    locations: tuple[tuple[Location, str | None], ...]
    list_again: frozenset[str] = frozenset()
    skipped: tuple[SkippedLocation, ...] = ()
    configured_root: str | None = None
    offsite_root: Root | None = None  # when set, each line says where its copies are
    manifests: ManifestReads | None = None  # manifests the caller read already: not read again
    newest_shown: int = NEWEST_SETS_SHOWN


class PlacedLine(NamedTuple):
    """A set's line with its key and location (``where_copies_are`` takes it as a placed set)."""

    key: str
    location: Location
    line: InventoryLine

    @property
    def timestamp(self) -> str:
        return self.line.timestamp


@dataclass(frozen=True)
class InventorySummary:
    """The totals over every set under the root and a table of the newest sets, as the
    inventory asset shows them; ``listed`` names the locations whose folders were listed."""

    root: str
    total_backup_sets: int
    global_backups: int
    total_locations: int
    total_bytes: int
    newest: tuple[dict[str, Any], ...]  # table records, newest first
    warnings: tuple[str, ...] = ()
    listed: tuple[str, ...] = field(default=(), compare=False)

    @property
    def task_backups(self) -> int:
        return self.total_backup_sets - self.global_backups

    @property
    def response(self) -> str:
        return inventory_response(self.root, self.total_backup_sets, self.total_locations)

    @classmethod
    def of(cls, inventory: Inventory, newest_shown: int = NEWEST_SETS_SHOWN) -> InventorySummary:
        """The same summary of a full inventory (``build_inventory``)."""
        records = inventory_table_records(inventory)
        return cls(
            root=inventory.root,
            total_backup_sets=inventory.total_backup_sets,
            global_backups=inventory.global_backups,
            total_locations=len(inventory.locations),
            total_bytes=sum(record["total_bytes"] for record in records),
            newest=tuple(heapq.nlargest(newest_shown, records, key=lambda r: (r["timestamp"], r["key"]))),
            warnings=inventory.warnings,
        )


def update_inventory(request: InventoryUpdateRequest) -> InventorySummary:
    """The inventory's summary, listing only the locations whose remembered lines do not hold
    them as their fingerprint shows them now (every location when nothing is remembered)."""
    root = request.root
    remembered = _read(root)
    stale = [
        location for location, fingerprint in request.locations
        if fingerprint is None or location.label in request.list_again
        or remembered.get(location.label, (None, {}))[0] != fingerprint
    ]
    present = [location.label for location, _ in request.locations]
    listed = {loc.location.label: loc for loc in list_locations(root, stale, request.manifests, present=present)}
    keyed = partition_keys([
        (location, listed[location.label].key_labels() if location.label in listed
         else [(ts, line.key_label) for ts, line in remembered[location.label][1].items()])
        for location, _ in request.locations
    ])
    lines = {label: kept for label, (_, kept) in remembered.items()} | _lines_of(root, listed, keyed)
    placed = [PlacedLine(key, location, lines[location.label][ts]) for key, location, ts in keyed]
    if listed or remembered.keys() != set(present):
        _write(root, {
            location.label: (fingerprint, lines[location.label]) for location, fingerprint in request.locations
        })
    copies = where_copies_are(placed, list_sets(request.offsite_root)) if request.offsite_root else {}
    return _summary(request, placed, copies, tuple(listed))


def _lines_of(
    root: Root, listed: Mapping[str, ListedLocation], keyed: list[tuple[str, Location, str]]
) -> dict[str, dict[str, InventoryLine]]:
    """Per listed location, its sets' lines by timestamp, made as ``build_inventory`` makes their entries."""
    legacy_rows = read_remembered(root) if any(None in loc.summaries.values() for loc in listed.values()) else {}
    lines: dict[str, dict[str, InventoryLine]] = {label: {} for label in listed}
    for key, location, ts in keyed:
        if location.label in listed:
            entry = entry_for(listed[location.label].listed_set(key, ts), root, legacy_rows)
            lines[location.label][ts] = InventoryLine.of(entry)
    return lines


def _summary(
    request: InventoryUpdateRequest, placed: list[PlacedLine], copies: Mapping[str, tuple[str, ...]],
    listed: tuple[str, ...],
) -> InventorySummary:
    newest = heapq.nlargest(request.newest_shown, placed, key=lambda p: (p.line.timestamp, p.key))
    return InventorySummary(
        root=displayed_root(request.root, request.configured_root),
        total_backup_sets=len(placed),
        global_backups=sum(1 for p in placed if p.location.task_id is None),
        total_locations=len({p.location for p in placed}),
        total_bytes=sum(p.line.total_bytes for p in placed),
        newest=tuple(table_record(p.key, p.location, p.line, copies.get(p.key, ())) for p in newest),
        warnings=tuple(f"{s.label} was not read: {s.reason}" for s in request.skipped),
        listed=listed,
    )


def _read(root: Root) -> dict[str, tuple[str | None, dict[str, InventoryLine]]]:
    """Per location label, the fingerprint its lines were made at and its lines by timestamp;
    empty when the file is missing, damaged, of another version or of another root."""
    try:
        data = json.loads(state_folder(root).read_bytes(STATE_FILE) or b"{}")
        if data.get("version") != STATE_VERSION or data.get("root") != str(root):
            return {}
        return {
            str(label): (fingerprint, {line.timestamp: line for line in map(_line_from_json, lines)})
            for label, (fingerprint, lines) in data["locations"].items()
        }
    except (OSError, ValueError, TypeError, KeyError, AttributeError, VectorAssetsError):
        return {}


def _line_from_json(line: list) -> InventoryLine:
    timestamp, kind, parent, rows, total_bytes, has_log = line
    rows = None if rows is None else {str(table): int(count) for table, count in rows.items()}
    return InventoryLine(str(timestamp), str(kind), None if parent is None else str(parent), rows,
                         int(total_bytes), bool(has_log))


def _write(root: Root, locations: Mapping[str, tuple[str | None, Mapping[str, InventoryLine]]]) -> None:
    """Remember the lines; a root that cannot be written to lists every location next time."""
    body = {
        "version": STATE_VERSION, "root": str(root),
        "locations": {label: [fingerprint, list(lines.values())] for label, (fingerprint, lines) in locations.items()},
    }
    try:
        folder = state_folder(root)
        folder.prepare()
        folder.write_bytes(STATE_FILE, json.dumps(body, separators=(",", ":")).encode())
    except (OSError, BackupWriteError, VectorAssetsError):
        pass
