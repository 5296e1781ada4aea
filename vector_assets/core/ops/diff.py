"""The diff command: what differs between a set and the live tables, or between two sets, per
table and, where the layout has collections, per collection: rows only in the set, rows only in
the other side, rows changed, and a sample of keys of each.

Rows are matched by the table's primary key (of one column or several) and compared by the row
digests the incremental backups use (each column's binary send form, hashed on the server). The
live side's digests stream out of the server sorted by key into a spool file (memory stays
flat), and are walked once beside the set's:
- a set with a row index (every increment, and a full set in a location that uses increments) is
  compared as an increment compares, with that index: one digest scan of the live table;
- otherwise, or when a row missing from the live tables must be placed in its collection (a row
  index holds no collection), or against another set, the set's rows are first loaded into a
  temporary stage on the store's database (an increment with its chain applied) and digested there.
Everything runs in one REPEATABLE READ transaction that is rolled back: the live side is one
snapshot, and nothing is left behind.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from itertools import chain
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.errors import ColumnMismatchError, ConfigError
from vector_assets.core.layouts import layout_columns
from vector_assets.core.ops.restore.chain import apply_chain_to_stage
from vector_assets.core.ops.restore.load import copy_file_into
from vector_assets.core.ops.restore.plan import PlannedTable, plan_table, readable_chain, split_chain
from vector_assets.core.ops.restore.request import CollectionRestore
from vector_assets.core.pg.catalog import column_names, read_columns, table_exists, table_identifier
from vector_assets.core.pg.collections import collections_in
from vector_assets.core.pg.connection import connect, database_errors, rollback_quietly
from vector_assets.core.pg.row_digests import RowKey, copy_grouped_digests, row_key
from vector_assets.core.pg.table_changes import create_stage
from vector_assets.core.progress import ProgressReporter
from vector_assets.core.sets.catalog import BackupSet
from vector_assets.core.sets.copies import choose_copy
from vector_assets.core.sets.encryption import EncryptionKeys
from vector_assets.core.sets.manifest import RowIndex
from vector_assets.core.sets.row_index import (
    CHANGED,
    ONLY_OURS,
    ONLY_THEIRS,
    compare_grouped_digests,
    lines_of,
    read_row_index,
    unescape_key,
)
from vector_assets.core.sets.storage import Root
from vector_assets.core.stores import Store, TableRole, langchain_store
from vector_assets.core.units import count_of

LIVE = "live"
DEFAULT_SAMPLE = 5
MAX_SAMPLE = 100
NO_COLLECTION = "(no collection)"
ROW_INDEX, STAGED_ROWS = "row index", "staged rows"
SPOOL_IN_MEMORY_BYTES = 16 << 20
KINDS = (ONLY_OURS, ONLY_THEIRS, CHANGED)


@dataclass(frozen=True)
class DiffRequest:
    """Which set to compare (a partition key or timestamp) and with what: the live tables, or
    another set. The CLI, the Dagster op and the tests all build this."""

    dsn: str  # the store's database: the live side, and where sets are staged
    root: Root | Path | str
    key: str
    against: str = LIVE  # "live", or another set's key
    tables: tuple[str, ...] | None = None  # None: every table of the set
    sample: int = DEFAULT_SAMPLE  # keys shown of each kind, per table and per collection
    store: Store = field(default_factory=langchain_store)
    encryption: EncryptionKeys = EncryptionKeys()
    configured_root: str | None = None
    progress: ProgressReporter | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.key:
            raise ConfigError("diff needs a set: its timestamp or partition key")
        if not self.against:
            raise ConfigError(f"against must be {LIVE!r} or another set's timestamp or partition key")
        if self.against == self.key:
            raise ConfigError(f"against names the set itself ({self.key}); compare it with {LIVE!r} or another set")
        if not isinstance(self.sample, int) or not 0 <= self.sample <= MAX_SAMPLE:
            raise ConfigError(f"sample must be a whole number from 0 to {MAX_SAMPLE}, got {self.sample!r}")
        if self.tables is not None:
            object.__setattr__(self, "tables", self.store.select_tables(self.tables))


@dataclass
class RowDifferences:
    """Rows only in the set, only in the other side, and changed; the first keys of each, in key order."""

    only_in_set: int = 0
    only_in_other: int = 0
    changed: int = 0
    samples: dict[str, list[str]] = field(default_factory=lambda: {kind: [] for kind in KINDS})

    def add(self, kind: str, key: str, sample: int) -> None:
        if kind == ONLY_OURS:
            self.only_in_set += 1
        elif kind == ONLY_THEIRS:
            self.only_in_other += 1
        else:
            self.changed += 1
        if len(self.samples[kind]) < sample:
            self.samples[kind].append(key)

    @property
    def total(self) -> int:
        return self.only_in_set + self.only_in_other + self.changed

    def describe(self, other: str) -> str:
        return (f"{count_of(self.only_in_set, 'row')} only in the set, {self.only_in_other:,} only in {other}, "
                f"{self.changed:,} changed")

    def as_json(self) -> dict:
        return {"only_in_set": self.only_in_set, "only_in_other": self.only_in_other, "changed": self.changed,
                "sample_only_in_set": self.samples[ONLY_OURS], "sample_only_in_other": self.samples[ONLY_THEIRS],
                "sample_changed": self.samples[CHANGED]}


@dataclass
class TableDiff:
    table: str
    key: str | None  # the column rows are matched by
    rows_in_set: int = 0
    rows_in_other: int = 0
    differences: RowDifferences = field(default_factory=RowDifferences)
    collections: dict[str, RowDifferences] = field(default_factory=dict)  # by name; only those that differ
    skipped: str | None = None  # why this table could not be compared
    grouped: bool = False  # its rows belong to collections
    only_collection: str | None = None  # the figures are of this one collection's rows only
    set_read_from: str = ""  # ROW_INDEX or STAGED_ROWS: how the set's side was read

    def as_json(self) -> dict:
        return {"table": self.table, "key": self.key, "rows_in_set": self.rows_in_set, "rows_in_other": self.rows_in_other,
                **self.differences.as_json(), "skipped": self.skipped, "only_collection": self.only_collection,
                "set_read_from": self.set_read_from,
                "collections": {name: found.as_json() for name, found in self.collections.items()}}


@dataclass
class DiffResult:
    backup_set: BackupSet
    against: str  # "live", or the other set's key
    tables: list[TableDiff] = field(default_factory=list)
    duration_seconds: float = 0.0

    @property
    def other(self) -> str:
        return "the live tables" if self.against == LIVE else f"set {self.against}"

    @property
    def identical(self) -> bool:
        return all(table.differences.total == 0 and table.skipped is None for table in self.tables)

    def of_collection(self, name: str) -> DiffResult:
        """Only one collection's rows: what a collection restore would replace."""
        tables = [
            TableDiff(table.table, table.key, differences=table.collections.get(name, RowDifferences()),
                      grouped=True, only_collection=name)
            for table in self.tables if table.skipped is None and table.grouped
        ]
        return DiffResult(self.backup_set, self.against, tables, self.duration_seconds)

    def as_json(self) -> dict:
        return {"set": self.backup_set.key, "against": self.against, "identical": self.identical,
                "duration_seconds": round(self.duration_seconds, 3), "tables": [table.as_json() for table in self.tables]}


def restore_effect_lines(changes: DiffResult, done: bool = False) -> list[str]:
    """What a replacing restore would do (``done``: did) to the rows of its target, per table and
    collection, with the sampled keys: the one wording of the CLI's and the job's restores and
    dry runs."""
    verbs = ("brought back", "removed", "overwrote") if done else ("bring back", "remove", "overwrite")
    would = "" if done else "would "
    lines = []
    for table in changes.tables:
        if table.skipped:
            lines.append(f"{table.table}: not compared: {table.skipped}")
            continue
        label = f"{table.table} collection {table.only_collection}" if table.only_collection else table.table
        entries = [(label, table.differences)]
        entries += [(f"{table.table} collection {name}", found) for name, found in table.collections.items()]
        for label, found in entries:
            lines.append(f"{label}: {would}{verbs[0]} {count_of(found.only_in_set, 'row')} only in the set, {verbs[1]} "
                         f"{found.only_in_other:,} only in the target, {verbs[2]} {found.changed:,} changed")
            for kind, verb in zip((ONLY_OURS, ONLY_THEIRS, CHANGED), verbs):
                if found.samples[kind]:
                    lines.append(f"  {verb}: {', '.join(found.samples[kind])}")
    return lines


def run_diff(request: DiffRequest) -> DiffResult:
    started = time.monotonic()
    ours = _readable_set(request, request.key)
    theirs = None if request.against == LIVE else _readable_set(request, request.against)
    tables = request.tables or ours.backup_set.tables
    result = DiffResult(ours.backup_set, request.against)
    conn = connect(request.dsn)
    try:
        with database_errors(conn, "during the diff"), _rolled_back(conn) as cursor:
            for table in tables:
                result.tables.append(_diff_table(cursor, request, ours, theirs, table))
    finally:
        conn.close()
    result.duration_seconds = time.monotonic() - started
    return result


@dataclass(frozen=True)
class ReadableSet:
    """A set ready to stage: its base (decrypting where needed) and the increments of its chain."""

    backup_set: BackupSet
    base: BackupSet
    increments: list


def _readable_set(request: DiffRequest, key: str) -> ReadableSet:
    backup_set = choose_copy(request.root, None, key, configured_root=request.configured_root).backup_set
    base, increments = split_chain(backup_set)
    return ReadableSet(backup_set, readable_chain(base, increments, request.encryption.identity_file), increments)


@contextmanager
def _rolled_back(conn: psycopg2.extensions.connection) -> Iterator[psycopg2.extensions.cursor]:
    """One REPEATABLE READ transaction, never committed: the stages are temporary tables, and the
    live tables are read from one snapshot."""
    conn.set_session(isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ)
    try:
        with conn.cursor() as cursor:
            yield cursor
    finally:
        rollback_quietly(conn)
        if not conn.closed:
            conn.set_session(isolation_level="DEFAULT")


def _diff_table(
    cursor: psycopg2.extensions.cursor, request: DiffRequest, ours: ReadableSet, theirs: ReadableSet | None, table: str
) -> TableDiff:
    if table not in ours.backup_set.tables:
        return TableDiff(table, None, skipped=f"set {ours.backup_set.key} has no {table}")
    if theirs is not None and table not in theirs.backup_set.tables:
        return TableDiff(table, None, skipped=f"set {theirs.backup_set.key} has no {table}")
    if not table_exists(cursor, table):
        return TableDiff(table, None, skipped=f"the store's database has no table {table} to stage the set's rows in")
    key = row_key(cursor, table)
    if key is None:
        return TableDiff(table, None, skipped=f"{table} has no primary key to match rows by")
    our_plan = plan_table(ours.base, table, ours.increments)
    columns = our_plan.header
    _require_columns(cursor, table, columns, ours.backup_set.key)
    group = _collection_column(request.store, table, cursor)
    index = _usable_row_index(ours.backup_set, table, key) if theirs is None else None
    if index is not None:
        found = _against_row_index(cursor, request, ours, index, table, columns, key, group)
        if not (group and found.differences.only_in_set):
            return found
        # a row index holds no collection: which collection lost the rows is read from the set's own rows
    found = TableDiff(table, key.label, grouped=group is not None, set_read_from=STAGED_ROWS)
    with _spool() as our_lines, _spool() as their_lines:
        found.rows_in_set = _staged_digests(cursor, our_plan, key, group, our_lines, "diff_ours", request.progress)
        if theirs is None:
            found.rows_in_other = copy_grouped_digests(cursor, table, table_identifier(table), columns, key, group, their_lines)
        else:
            their_plan = plan_table(theirs.base, table, theirs.increments)
            if their_plan.header != columns:
                raise ColumnMismatchError(f"table {table}: set {theirs.backup_set.key} has columns {their_plan.header}, "
                                          f"set {ours.backup_set.key} {columns}; rows with other columns cannot be compared")
            found.rows_in_other = _staged_digests(cursor, their_plan, key, group, their_lines, "diff_theirs", request.progress)
        names = _collection_names(cursor, request.store, ours, theirs) if group else {}
        ours_read, theirs_read = _spooled_lines(our_lines), _spooled_lines(their_lines)
        _tally(found, ours_read, theirs_read, names, group is not None, request.sample, key)
    return found


def _usable_row_index(backup_set: BackupSet, table: str, key: RowKey) -> RowIndex | None:
    """The set's row index of the table (every row's digest at the set's snapshot, an increment's
    too), if it is keyed by the table's key."""
    entry = backup_set.manifest.tables.get(table) if backup_set.manifest else None
    index = entry.rows_index if entry is not None else None
    return index if index is not None and index.key == key.columns else None


def _against_row_index(
    cursor: psycopg2.extensions.cursor, request: DiffRequest, ours: ReadableSet, index: RowIndex, table: str,
    columns: list[str], key: RowKey, group: str | None,
) -> TableDiff:
    """The cheap way, as an increment compares: the live digests against the set's row index."""
    found = TableDiff(table, key.label, rows_in_set=index.rows, grouped=group is not None, set_read_from=ROW_INDEX)
    with _spool() as their_lines:
        found.rows_in_other = copy_grouped_digests(cursor, table, table_identifier(table), columns, key, group, their_lines)
        names = _collection_names(cursor, request.store, None, None) if group else {}
        ours_read = chain.from_iterable(read_row_index(ours.base.folder, index.file))
        _tally(found, ours_read, _spooled_lines(their_lines), names, group is not None, request.sample, key)
    return found


def _spooled_lines(spool) -> Iterator[bytes]:
    spool.seek(0)
    return lines_of(spool)


def _require_columns(cursor: psycopg2.extensions.cursor, table: str, columns: list[str], key: str) -> None:
    missing = [name for name in columns if name not in column_names(read_columns(cursor, table))]
    if missing:
        raise ColumnMismatchError(f"table {table} has no column {missing[0]!r}, which set {key} holds; "
                                  "rows with other columns cannot be compared")


def _collection_column(store: Store, table: str, cursor: psycopg2.extensions.cursor) -> str | None:
    """The column naming a vector row's collection, where the store's layout has collections."""
    reference = layout_columns(store.layout).collection_reference
    if not store.has_collections or table not in store.vector_tables or reference is None:
        return None
    return reference if reference in column_names(read_columns(cursor, table)) else None


@contextmanager
def _spool() -> Iterator[tempfile.SpooledTemporaryFile]:
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES) as spool:
        yield spool


def _staged_digests(
    cursor: psycopg2.extensions.cursor, plan: PlannedTable, key: RowKey, group: str | None, spool, name: str,
    progress: ProgressReporter | None,
) -> int:
    """The set's rows loaded into a stage (its chain applied), their digests spooled; the stage is
    gone again afterwards (a savepoint rolled back), so the other side can be staged too."""
    with _staged(cursor, plan, name, progress) as stage:
        return copy_grouped_digests(cursor, plan.table, stage, plan.header, key, group, spool)


@contextmanager
def _staged(
    cursor: psycopg2.extensions.cursor, plan: PlannedTable, name: str, progress: ProgressReporter | None = None
) -> Iterator[sql.Identifier]:
    """A temporary stage holding the set's rows of the table, its chain applied, for as long as it is needed."""
    cursor.execute("SAVEPOINT vector_assets_diff")
    stage = create_stage(cursor, plan.table, f"{name}_{plan.table.replace('.', '_')}")
    copy_file_into(cursor, plan, stage, progress=progress)
    if plan.increments:
        apply_chain_to_stage(cursor, plan, stage, progress)
    yield stage
    cursor.execute("ROLLBACK TO SAVEPOINT vector_assets_diff")


def _collection_names(
    cursor: psycopg2.extensions.cursor, store: Store, ours: ReadableSet | None, theirs: ReadableSet | None
) -> dict[str, str]:
    """Collection key -> name, from the sets' collection tables and the live one."""
    names: dict[str, str] = {}
    for table in store.tables_with_role(TableRole.COLLECTIONS):
        for readable in [side for side in (theirs, ours) if side is not None and table in side.backup_set.tables]:
            with _staged(cursor, plan_table(readable.base, table, readable.increments), "diff_names") as stage:
                names.update({c.uuid: c.name for c in collections_in(cursor, stage) if c.name is not None})
        if theirs is None and table_exists(cursor, table):
            names.update({c.uuid: c.name for c in collections_in(cursor, table_identifier(table)) if c.name is not None})
    return names


def _tally(
    found: TableDiff, ours: Iterator[bytes], theirs: Iterator[bytes], names: dict[str, str], grouped: bool, sample: int,
    matched_by: RowKey,
) -> None:
    for kind, key, group in compare_grouped_digests(ours, theirs, len(matched_by.columns)):
        text = _key_text(key, matched_by)
        found.differences.add(kind, text, sample)
        if grouped:
            collection = NO_COLLECTION if group in (None, b"\\N") else unescape_key(group).decode("utf-8")
            label = names.get(collection, collection)
            found.collections.setdefault(label, RowDifferences()).add(kind, text, sample)


def _key_text(escaped: bytes, key: RowKey) -> str:
    """A key as a sample shows it: a one-column key as its text; a key of several columns as
    its values in the key's order, in parentheses: (doc-7, 3)."""
    values = [unescape_key(field).decode("utf-8") for field in escaped.split(b"\t")]
    return values[0] if not key.composite else "(" + ", ".join(values) + ")"


RESTORED_ROWS = "restored rows"


@dataclass
class _TargetRows:
    """A replaced table as it was: its figures so far, its key and collection column, its digests."""

    found: TableDiff
    key: RowKey | None = None  # None: not compared
    group: str | None = None
    digests: tempfile.SpooledTemporaryFile | None = None


class ReplacedRows:
    """What a replacing restore replaces, without staging the set: in the restore's transaction,
    the target's row digests are spooled just before it replaces anything, and compared, once
    the set's rows are in (its chain applied), with the same tables' digests then. The tables
    hold exactly the set's rows by then, so the figures are the diff's of the set against the
    target, at the cost of two digest scans. A collection restore compares that collection's
    rows only (the target's under its old uuid, the restored ones under the new)."""

    def __init__(
        self, store: Store, backup_set: BackupSet, planned: list[PlannedTable],
        collection_of: Callable[[], CollectionRestore | None], sample: int = DEFAULT_SAMPLE,
    ) -> None:
        self.store, self.backup_set, self.planned, self.sample = store, backup_set, planned, sample
        self.collection_of = collection_of  # a collection restore's collection, once it is known
        self.result: DiffResult | None = None
        self._before: dict[str, _TargetRows] = {}
        self._names: dict[str, str] = {}
        self._seconds = 0.0

    def before(self, cursor: psycopg2.extensions.cursor) -> None:
        started = time.monotonic()
        collection = self.collection_of()
        if collection is not None and collection.renamed:
            return
        for plan in self._compared_plans(cursor, collection):
            self._before[plan.table] = self._target_rows(cursor, plan, collection)
        self._names = self._collection_names(cursor)
        self._seconds += time.monotonic() - started

    def after(self, cursor: psycopg2.extensions.cursor) -> None:
        started = time.monotonic()
        collection = self.collection_of()
        if collection is not None and collection.renamed:
            return
        names = {**self._collection_names(cursor), **self._names}
        restored_uuid = None if collection is None or collection.removed else collection.uuid
        result = DiffResult(self.backup_set, LIVE)
        for plan in [plan for plan in self.planned if plan.table in self._before]:
            target = self._before[plan.table]
            if target.key is not None:
                with _spool() as after:
                    relation = _rows_of(plan.table, target.group, restored_uuid, collection)
                    target.found.rows_in_set = copy_grouped_digests(
                        cursor, plan.table, relation, plan.header, target.key, target.group, after, within_transaction=True)
                    _tally(target.found, _spooled_lines(after), _spooled_lines(target.digests), names,
                           target.group is not None, self.sample, target.key)
            result.tables.append(target.found)
        self.close()
        result.duration_seconds = self._seconds + time.monotonic() - started
        self.result = result if collection is None else result.of_collection(collection.name)

    def close(self) -> None:
        for target in self._before.values():
            if target.digests is not None:
                target.digests.close()

    def _target_rows(
        self, cursor: psycopg2.extensions.cursor, plan: PlannedTable, collection: CollectionRestore | None
    ) -> _TargetRows:
        key = row_key(cursor, plan.table)
        group = _collection_column(self.store, plan.table, cursor)
        found = TableDiff(plan.table, key.label if key else None, grouped=group is not None, set_read_from=RESTORED_ROWS)
        if key is None:
            found.skipped = f"{plan.table} has no primary key to match rows by"
            return _TargetRows(found)
        target = _TargetRows(found, key, group, tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES))
        relation = _rows_of(plan.table, group, collection.replaced_uuid if collection else None, collection)
        found.rows_in_other = copy_grouped_digests(cursor, plan.table, relation, plan.header, key, group, target.digests,
                                                   within_transaction=True)
        return target

    def _compared_plans(self, cursor: psycopg2.extensions.cursor, collection: CollectionRestore | None) -> list[PlannedTable]:
        if collection is None:
            return self.planned
        return [plan for plan in self.planned if plan.table in self.store.vector_tables
                and _collection_column(self.store, plan.table, cursor) is not None]

    def _collection_names(self, cursor: psycopg2.extensions.cursor) -> dict[str, str]:
        return _collection_names(cursor, self.store, None, None) if self.store.has_collections else {}


def _rows_of(table: str, group: str | None, uuid: str | None, collection: CollectionRestore | None) -> sql.Composable:
    """The table, or for a collection restore only the rows of the collection's uuid (none when it has none)."""
    if collection is None:
        return table_identifier(table)
    if uuid is None:
        return sql.SQL("(SELECT * FROM {} WHERE false)").format(table_identifier(table))
    return sql.SQL("(SELECT * FROM {} WHERE {} = {})").format(table_identifier(table), sql.Identifier(group), sql.Literal(uuid))
