"""The inventory: which complete sets exist under the root, in the shape of the earlier tooling's list API (``GET /restore/list``).

The earlier tooling's ``GET /restore/list`` answered with ``backup_locations`` (global first, then task
folders newest first), each with its ``backups`` newest first, and a ``summary``. We keep that
shape so existing clients of the list API can read ours, and add per set what only we know:
the partition key, whether the set is legacy, its kind and parent (an increment restores on top
of its parent), its row counts (in its files, and in the tables once it is restored) and its
total bytes.

Listing is cheap on purpose: it never opens a data file, and reads a manifest only when it is
new or changed (``summaries.py``). Sizes come from one listing per folder and count every file
of a set, as prune does; row counts come from the manifest; a legacy set's are the ones the
sensor counted once, else ``None``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from vector_assets.core.errors import InvalidTaskIdError
from vector_assets.core.sets.catalog import KEY_LABELS, SkippedLocation, bytes_of
from vector_assets.core.sets.copies import where_copies_are
from vector_assets.core.sets.legacy_rows import read_remembered, remembered_rows
from vector_assets.core.sets.manifest import ManifestReads
from vector_assets.core.sets.naming import LOG_FILE_NAME, TIMESTAMP_FORMAT, Location
from vector_assets.core.sets.roots import open_root, scheme_of
from vector_assets.core.sets.storage import Root
from vector_assets.core.sets.summaries import ListedSet, list_sets
from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE
from vector_assets.core.units import count_of, human_size

# The earlier tooling's rule for its task_id query parameter; it keeps paths like "../x" out.
TASK_ID_FILTER_PATTERN = re.compile(r"[A-Za-z0-9_]+")
BACKUP_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class InventoryRequest:
    """Which locations to list. ``task_id`` wins over ``global_only``, as in the earlier tooling.

    ``configured_root`` is the root as the operator wrote it (``./data_pipeline/training_data``);
    it is what ``relative_path`` shows, so the path can be handed back to a restore unchanged.
    """

    root: Root | Path | str
    global_only: bool = False
    task_id: str | None = None
    configured_root: str | None = None
    offsite_root: Root | Path | str | None = None  # when set, each entry says where its copies are
    current_recipients: tuple[str, ...] = ()  # when set, a set encrypted to none of them is listed as needing a retired key
    manifests: ManifestReads | None = None  # manifests the caller read already (the sensor's tick): not read again

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", open_root(self.root))
        if self.task_id is not None:
            validate_task_id_filter(self.task_id)

    def includes(self, location: Location) -> bool:
        if self.task_id is not None:
            return location.task_id == self.task_id
        if self.global_only:
            return location.task_id is None
        return True


def validate_task_id_filter(task_id: str) -> str:
    if not isinstance(task_id, str) or not TASK_ID_FILTER_PATTERN.fullmatch(task_id):
        raise InvalidTaskIdError(
            f"task id {task_id!r} is not valid: it may contain only letters, digits and underscores"
        )
    return task_id


@dataclass(frozen=True)
class InventoryEntry:
    """One complete set as the list shows it. ``sizes`` is None per table whose file is gone."""

    key: str
    timestamp: str
    legacy: bool
    files: Mapping[str, str]
    sizes: Mapping[str, int | None]
    rows: Mapping[str, int] | None
    log_file: str | None
    copies: tuple[str, ...] = ()  # "local", "offsite"; empty when no offsite root is configured
    kind: str = "legacy"  # full, incremental, pre_restore, pre_truncate; legacy without a manifest
    parent: str | None = None  # an increment's parent set, in the same location
    rows_after: Mapping[str, int] | None = None  # the tables' rows once the set (its chain) is restored
    set_files: tuple[str, ...] = ()  # every file of the set (manifest, row indexes, deleted keys included)
    total_bytes: int = 0  # their bytes: what prune frees
    encrypted_to: tuple[str, ...] = ()  # the recipients (public keys) whose identity the set needs; empty: plaintext
    needs_retired_key: bool = False  # encrypted to none of the recipients new sets are encrypted to

    @property
    def is_increment(self) -> bool:
        return self.parent is not None

    @property
    def has_log(self) -> bool:
        return self.log_file is not None

    @property
    def backup_date(self) -> str:
        return datetime.strptime(self.timestamp, TIMESTAMP_FORMAT).strftime(BACKUP_DATE_FORMAT)

    def size_text(self, table: str) -> str | None:
        size = self.sizes.get(table)
        return None if size is None else human_size(size)

    def to_json(self) -> dict[str, Any]:
        """The earlier tooling's fields first, then ours."""
        return {
            "timestamp": self.timestamp,
            "collection_file": self.files.get(COLLECTION_TABLE),
            "embedding_file": self.files.get(EMBEDDING_TABLE),
            "collection_size": self.size_text(COLLECTION_TABLE),
            "embedding_size": self.size_text(EMBEDDING_TABLE),
            "backup_date": self.backup_date,
            "has_log": self.has_log,
            "log_file": self.log_file,
            "key": self.key,
            "legacy": self.legacy,
            "rows": dict(self.rows) if self.rows is not None else None,
            "total_bytes": self.total_bytes,
            "file_count": len(self.set_files),
            "kind": self.kind,
            "parent": self.parent,
            "rows_after": dict(self.rows_after) if self.rows_after is not None else None,
            **({"copies": list(self.copies)} if self.copies else {}),
            **({"encrypted_to": list(self.encrypted_to)} if self.encrypted_to else {}),
            **({"needs_retired_key": True} if self.needs_retired_key else {}),
        }

    def format_line(self) -> str:
        parts = [f"  {self.key}  {self.backup_date}", ", ".join(self._table_texts())]
        parts.append(f"{human_size(self.total_bytes)} total")
        if self.is_increment:
            parts.append(f"incremental on {self.parent}")
        elif self.kind not in ("full", "legacy"):
            parts.append(self.kind)
        if self.legacy:
            parts.append("legacy" if self.rows else "legacy, rows not counted yet")
        if self.copies:
            parts.append("copies: " + " + ".join(self.copies))
        if self.encrypted_to:
            parts.append("encrypted to " + ", ".join(short_key(key) for key in self.encrypted_to))
        if self.needs_retired_key:
            parts.append("needs a retired key (rekey it)")
        return "  ".join(parts)

    def _table_texts(self) -> list[str]:
        texts = []
        for table in self.files:
            short = table.removeprefix("langchain_pg_")
            size = self.size_text(table) or "file missing"
            rows = f" ({count_of(self.rows[table], 'row')})" if self.rows and table in self.rows else ""
            if self.is_increment and rows and self.rows_after and table in self.rows_after:
                rows = f" ({count_of(self.rows[table], 'row')}, {self.rows_after[table]:,} after)"
            texts.append(f"{short} {size}{rows}")
        return texts


@dataclass(frozen=True)
class InventoryLocation:
    """One backup folder and its sets, newest first."""

    location: Location
    relative_path: str
    backups: tuple[InventoryEntry, ...]

    @property
    def kind(self) -> str:
        return "global" if self.location.task_id is None else "task"

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.kind}
        if self.location.task_id is not None:
            body["task_id"] = self.location.task_id
        body["relative_path"] = self.relative_path
        body["backups"] = [entry.to_json() for entry in self.backups]
        return body

    def format_heading(self) -> str:
        name = "global" if self.location.task_id is None else f"task {self.location.task_id}"
        return f"{name}: {self.relative_path}"


@dataclass(frozen=True)
class Inventory:
    """The answer to an ``InventoryRequest``: locations in the earlier tooling's order, and when we looked."""

    root: str
    scanned_at: datetime
    locations: tuple[InventoryLocation, ...] = field(default_factory=tuple)
    warnings: tuple[str, ...] = ()  # locations that were not read, and why

    @property
    def total_backup_sets(self) -> int:
        return sum(len(location.backups) for location in self.locations)

    @property
    def global_backups(self) -> int:
        return sum(len(location.backups) for location in self.locations if location.kind == "global")

    @property
    def task_backups(self) -> int:
        return self.total_backup_sets - self.global_backups

    @property
    def response(self) -> str:
        return inventory_response(self.root, self.total_backup_sets, len(self.locations))

    def to_json(self) -> dict[str, Any]:
        scan_time = self.scanned_at.isoformat(timespec="seconds")
        body = {
            "response": self.response,
            "backup_locations": [location.to_json() for location in self.locations],
            "summary": {
                "total_locations": len(self.locations),
                "total_backup_sets": self.total_backup_sets,
                "global_backups": self.global_backups,
                "task_backups": self.task_backups,
                "scan_time": scan_time,
            },
            "timestamp": scan_time,
        }
        if self.warnings:  # ours; the earlier tooling's shape is kept when there is nothing to warn about
            body["warnings"] = list(self.warnings)
        return body

    def format_text(self) -> str:
        """For a terminal: each location with its sets newest first, then the counts."""
        lines: list[str] = []
        for location in self.locations:
            lines.append(location.format_heading())
            lines.extend(entry.format_line() for entry in location.backups)
            lines.append("")
        if not self.locations:
            lines += [self.response, ""]
        lines.append(
            f"{count_of(len(self.locations), 'location')}, {count_of(self.total_backup_sets, 'backup set')} "
            f"({self.global_backups} global, {self.task_backups} task)"
        )
        lines += [f"warning: {warning}" for warning in self.warnings]
        return "\n".join(lines)


def build_inventory(request: InventoryRequest, now: datetime | None = None) -> Inventory:
    """List the complete sets the request asks for.

    The whole root is scanned even when one location is asked for: partition keys depend on
    every location (a repeated timestamp gets a ``__<task_id>`` suffix), and the keys shown
    must be the ones Dagster and a restore accept.
    """
    shown_root = displayed_root(request.root, request.configured_root)
    grouped: dict[Location, list[InventoryEntry]] = {}
    skipped: list[SkippedLocation] = []
    local_sets = list_sets(request.root, skipped, request.manifests)
    copies = where_copies_are(local_sets, list_sets(request.offsite_root)) if request.offsite_root else {}
    legacy_rows = read_remembered(request.root) if any(s.is_legacy for s in local_sets) else {}
    for backup_set in local_sets:
        if request.includes(backup_set.location):
            entry = entry_for(backup_set, request.root, legacy_rows)
            retired = bool(request.current_recipients and entry.encrypted_to) and not (
                set(entry.encrypted_to) & set(request.current_recipients)
            )
            grouped.setdefault(backup_set.location, []).append(
                replace(entry, copies=copies.get(backup_set.key, ()), needs_retired_key=retired)
            )
    locations = [
        InventoryLocation(location, posixpath.join(shown_root, location.label), _newest_first(entries))
        for location, entries in grouped.items()
    ]
    scanned_at = now or datetime.now()
    if scanned_at.tzinfo is None:
        scanned_at = scanned_at.astimezone()  # the earlier tooling's scan_time carries its UTC offset
    warnings = tuple(f"{s.label} was not read: {s.reason}" for s in skipped)
    return Inventory(root=shown_root, scanned_at=scanned_at, locations=_listing_order(locations), warnings=warnings)


def entry_for(listed: ListedSet, root: Root, legacy_rows: dict | None = None) -> InventoryEntry:
    """One set's line, from its summary and its folder's listing; ``legacy_rows``: the
    remembered counts (``legacy_rows.read_remembered``), when the caller has read them."""
    summary = listed.summary
    if summary is None:
        rows = remembered_rows(root, listed, listed.listing, legacy_rows)
        rows_after = rows
    else:
        rows = {table.table: table.rows for table in summary.tables}
        rows_after = {table.table: table.rows_after for table in summary.tables}
    set_files = tuple(listed.files())
    return InventoryEntry(
        key=listed.key,
        timestamp=listed.timestamp,
        legacy=listed.is_legacy,
        files={table: listed.file_name(table) for table in listed.tables},
        sizes={table: listed.table_bytes(table) for table in listed.tables},
        rows=rows,
        log_file=LOG_FILE_NAME if LOG_FILE_NAME in listed.listing else None,
        kind=summary.kind if summary is not None else "legacy",
        parent=summary.parent if summary is not None else None,
        rows_after=rows_after,
        set_files=set_files,
        total_bytes=bytes_of(set_files, listed.listing),
        encrypted_to=summary.recipients if summary is not None else (),
    )


def short_key(recipient: str) -> str:
    """A recipient as a list line shows it: enough to tell keys apart (age1 and 6 + the last 6)."""
    return f"{recipient[:10]}…{recipient[-6:]}"


class InventoryLine(NamedTuple):
    """What the inventory asset shows of a set and adds to its totals, without its key (which
    depends on every location); the sensor keeps one per set between ticks (``inventory_state``)."""

    timestamp: str
    kind: str
    parent: str | None
    rows: dict[str, int] | None
    total_bytes: int
    has_log: bool

    @classmethod
    def of(cls, entry: InventoryEntry) -> InventoryLine:
        rows = dict(entry.rows) if entry.rows is not None else None
        return cls(entry.timestamp, entry.kind, entry.parent, rows, entry.total_bytes, entry.has_log)

    @property
    def key_label(self) -> str | None:
        return KEY_LABELS.get(self.kind)


def table_record(
    key: str, location: Location, line: InventoryLine, copies: tuple[str, ...] = ()
) -> dict[str, str | int | bool | None]:
    """One flat row for ``dg.MetadataValue.table``."""
    rows = line.rows or {}
    return {
        "key": key,
        "location": location.task_id or "global",
        "timestamp": line.timestamp,
        "backup_date": datetime.strptime(line.timestamp, TIMESTAMP_FORMAT).strftime(BACKUP_DATE_FORMAT),
        "legacy": line.kind == "legacy",
        "kind": line.kind,
        "parent": line.parent,
        "collection_rows": rows.get(COLLECTION_TABLE),
        "embedding_rows": rows.get(EMBEDDING_TABLE),
        "total_size": human_size(line.total_bytes),
        "total_bytes": line.total_bytes,
        "has_log": line.has_log,
        "copies": ", ".join(copies) or "local",
    }


def inventory_table_records(inventory: Inventory) -> list[dict[str, str | int | bool | None]]:
    """One flat row per set, in the inventory's order."""
    return [
        table_record(entry.key, location.location, InventoryLine.of(entry), entry.copies)
        for location in inventory.locations for entry in location.backups
    ]


def displayed_root(root: Root | Path, configured_root: str | None) -> str:
    """The root as the earlier tooling showed it: ``./data_pipeline/training_data``, absolute if so given,
    or the object store's URL."""
    text = (configured_root or str(root)).rstrip("/") or "/"
    if text.startswith("/") or text == "." or text.startswith(("./", "../")) or scheme_of(text) is not None:
        return text
    return f"./{text}"


def _newest_first(entries: list[InventoryEntry]) -> tuple[InventoryEntry, ...]:
    return tuple(sorted(entries, key=lambda entry: (entry.timestamp, entry.key), reverse=True))


def _listing_order(locations: list[InventoryLocation]) -> tuple[InventoryLocation, ...]:
    """Global first, then task folders newest first by the time in their name."""
    global_locations = [loc for loc in locations if loc.location.task_id is None]
    task_locations = [loc for loc in locations if loc.location.task_id is not None]
    task_locations.sort(key=lambda loc: _task_time(loc.location.task_id or ""), reverse=True)
    return tuple(global_locations + task_locations)


def _task_time(task_id: str) -> tuple[str, str]:
    """``task_20250721_213627`` and ``manual_…`` sort together by their time."""
    _, _, when = task_id.partition("_")
    return when, task_id


def inventory_response(root: str, sets: int, locations: int) -> str:
    """The inventory's one-line description, for the whole inventory and the sensor's summary alike."""
    if not locations:
        return f"no backup sets found under {root}"
    return f"found {count_of(sets, 'backup set')} in {count_of(locations, 'location')}"
