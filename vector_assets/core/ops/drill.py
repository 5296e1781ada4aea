"""The restore drill: prove a set restores, by restoring it somewhere harmless and comparing.

The set is restored with the restore command itself into a scratch schema of a scratch
database on the same server, then each table is exported again and compared with the set's
file: the row count, and the sha256 of the export against the file's. A freshly loaded table
is read back in load order, so an identical export means every row came back exactly. The
scratch database is dropped whatever happens.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path


from vector_assets.core.errors import ColumnMismatchError, VectorAssetsError
from vector_assets.core.hashing import HashingSink
from vector_assets.core.ops.restore import RestoreRequest, RestoreResult, run_restore
from vector_assets.core.pg.catalog import Column, column_names, count_rows, read_columns, table_exists, table_identifier
from vector_assets.core.pg.connection import connect, database_errors
from vector_assets.core.pg.copy import copy_out
from vector_assets.core.pg.ddl import TableDefinition, read_table_definition
from vector_assets.core.pg.index_builds import IndexBuildSettings
from vector_assets.core.pg.row_digests import content_digest
from vector_assets.core.pg.collections import COLLECTION_REFERENCE
from vector_assets.core.pg.search_quality import IndexRecall, RecallRequest, measure_recall
from vector_assets.core.pg.scratch import (
    create_database,
    create_scratch_tables,
    drop_database,
    scratch_dsn,
)
from vector_assets.core.progress import CopyEstimate, ProgressReporter, writer_for
from vector_assets.core.rto import DEFAULT_RTO_TARGETS, RtoTarget, target_seconds, verdict
from vector_assets.core.sets.age_streams import decrypting
from vector_assets.core.sets.catalog import BackupSet, SetCatalog
from vector_assets.core.sets.copies import choose_copy
from vector_assets.core.sets.csv_files import header_of
from vector_assets.core.sets.encryption import EncryptionKeys
from vector_assets.core.sets.formats import content_sha256, format_of_file, rows_in
from vector_assets.core.sets.manifest import TableFile
from vector_assets.core.sets.roots import open_root
from vector_assets.core.sets.storage import Root
from vector_assets.core.stores import Store, langchain_store
from vector_assets.core.units import count_of, human_duration, human_size

SCRATCH_DATABASE_PREFIX = "vector_assets_drill_"
PASSED, WARNING, FAILED = "passed", "warning", "failed"
RECALL_MARGIN = 0.2  # below the target by more than this is an error, not a warning


@dataclass(frozen=True)
class RecallSettings:
    """How the drill measures search quality: queries sampled per table (per collection where
    the layout has them), k, the recall it expects, and pgvector's iterative scans as the store
    sets them."""

    queries: int = 100
    k: int = 10
    target: float = 0.90
    iterative_scan: str = "off"
    seed: str = "vector_assets"

    def verdict(self, recall: float) -> str:
        if recall >= self.target:
            return PASSED
        return WARNING if recall >= round(self.target - RECALL_MARGIN, 6) else FAILED


@dataclass(frozen=True)
class DrillRequest:
    """Which set to drill (a partition key; None means the newest), and the server to drill on."""

    dsn: str
    root: Root | Path | str
    key: str | None = None
    configured_root: str | None = None
    offsite_root: Root | Path | str | None = None  # drill the offsite copy when the local one is missing or damaged
    progress: ProgressReporter | None = field(default=None, compare=False)
    rto_targets: tuple[RtoTarget, ...] = DEFAULT_RTO_TARGETS
    index_builds: IndexBuildSettings = IndexBuildSettings()
    store: Store = field(default_factory=langchain_store)
    recall: RecallSettings = RecallSettings()
    encryption: EncryptionKeys = EncryptionKeys()  # the identity an encrypted set is read with


@dataclass
class TableDrill:
    table: str
    rows_in_set: int
    rows_restored: int
    set_sha256: str
    restored_sha256: str
    by: str = "sha256"  # an increment's chain is compared by content digest instead

    @property
    def passed(self) -> bool:
        return self.rows_in_set == self.rows_restored and self.set_sha256 == self.restored_sha256

    @property
    def message(self) -> str:
        chain = self.by != "sha256"
        if self.passed and chain:
            return f"{self.table}: {count_of(self.rows_restored, 'row')} restored from the chain, with the content digest its manifest records"
        if self.passed:
            return f"{self.table}: {count_of(self.rows_restored, 'row')} restored and exported again byte for byte"
        if self.rows_in_set != self.rows_restored:
            return f"{self.table}: the set has {count_of(self.rows_in_set, 'row')}, the scratch restore has {self.rows_restored:,}"
        source = "the increment's row index" if chain else "the file"
        return f"{self.table}: the restored rows differ from {source} ({self.by} {self.restored_sha256} != {self.set_sha256})"


@dataclass(frozen=True)
class RecoveryTime:
    """How long the restore took, index builds included, against the target for the set's size."""

    restore_seconds: float
    bytes: int
    target_seconds: float

    @property
    def verdict(self) -> str:
        return verdict(self.restore_seconds, self.target_seconds)

    @property
    def message(self) -> str:
        return (
            f"restored {human_size(self.bytes)} in {human_duration(self.restore_seconds)}, "
            f"{self.verdict} of {human_duration(self.target_seconds)}"
        )


@dataclass
class DrillResult:
    backup_set: BackupSet
    scratch_database: str
    tables: list[TableDrill] = field(default_factory=list)
    restore: RestoreResult | None = None
    recovery_time: RecoveryTime | None = None
    scratch_dropped: bool = False
    duration_seconds: float = 0.0
    read_from_offsite: str | None = None  # why the offsite copy was drilled, if it was
    recall: list[IndexRecall] = field(default_factory=list)  # one per vector index of the restored tables
    recall_settings: RecallSettings = RecallSettings()
    recall_seconds: float = 0.0
    live_compared: str = ""  # why the exact answers were or were not compared with the live tables

    @property
    def passed(self) -> bool:
        """Every row came back; search quality is its own check, which warns or fails on its own."""
        return bool(self.tables) and all(table.passed for table in self.tables)

    def recall_of(self, table: str) -> list[IndexRecall]:
        return [measured for measured in self.recall if measured.table == table]

    @property
    def recall_verdict(self) -> str:
        """The worst index's: passed, warning or failed (passed when there is no index to measure)."""
        verdicts = {self.recall_settings.verdict(measured.recall) for measured in self.recall}
        return next((verdict for verdict in (FAILED, WARNING) if verdict in verdicts), PASSED)

    def as_json(self) -> dict:
        """The whole result as plain values, for ``vector-assets drill --json`` and other tools."""
        recovery = self.recovery_time
        return {
            "set": self.backup_set.key, "location": self.backup_set.location.label, "passed": self.passed,
            "duration_seconds": round(self.duration_seconds, 3), "scratch_dropped": self.scratch_dropped,
            "tables": [{"table": t.table, "rows_in_set": t.rows_in_set, "rows_restored": t.rows_restored,
                        "identical": t.passed, "compared_by": t.by} for t in self.tables],
            "rto": None if recovery is None else {
                "restore_seconds": round(recovery.restore_seconds, 3), "target_seconds": recovery.target_seconds,
                "bytes": recovery.bytes, "verdict": recovery.verdict,
            },
            "search_recall": {
                "verdict": self.recall_verdict, "target": self.recall_settings.target, "k": self.recall_settings.k,
                "iterative_scan": self.recall_settings.iterative_scan, "seconds": round(self.recall_seconds, 3),
                "indexes": [{"table": i.table, "index": i.index, "method": i.method, "queries": i.queries,
                             "recall": round(i.recall, 4), "p50_ms": round(i.p50_ms, 3), "p95_ms": round(i.p95_ms, 3),
                             "short_answers": i.short_answers, "live_queries": i.live_queries,
                             "live_differences": i.live_differences} for i in self.recall],
                "live": self.live_compared,
            },
        }


def run_drill(request: DrillRequest) -> DrillResult:
    started = time.monotonic()
    chosen = choose_copy(request.root, request.offsite_root, request.key, configured_root=request.configured_root)
    backup_set = chosen.backup_set
    readable = decrypting(backup_set.folder, [backup_set.manifest], request.encryption.identity_file)
    readable.unlock()  # a missing or wrong identity fails before a scratch database exists
    result = DrillResult(backup_set, f"{SCRATCH_DATABASE_PREFIX}{uuid.uuid4().hex[:12]}", read_from_offsite=chosen.note)
    columns = table_columns(request.dsn, backup_set)
    with scratch_database(request.dsn, result) as scratch_dsn:
        create_scratch_tables(scratch_dsn, tables_without_definitions(backup_set, columns),
                              source_definitions(request.dsn, request.store, backup_set, columns))
        result.restore = run_restore(RestoreRequest(
            target_dsn=scratch_dsn, root=request.root, timestamp=backup_set.key, tables=backup_set.tables,
            truncate_before_restore=any(table in backup_set.tables for table in request.store.vector_tables),
            configured_root=request.configured_root, offsite_root=request.offsite_root, store=request.store,
            safety_backup=False,  # the scratch tables are new and empty
            progress=request.progress, index_builds=request.index_builds, encryption=request.encryption,
        ))
        result.recovery_time = recovery_time(result.restore, request.rto_targets)
        result.tables = [
            compare_table(scratch_dsn, replace(backup_set, folder=readable), table, columns[table], request.progress)
            for table in backup_set.tables
        ]
        measure_search_quality(scratch_dsn, request, backup_set, result, live_dsn=_live_dsn(request, backup_set, result))
    result.duration_seconds = time.monotonic() - started
    return result


def measure_search_quality(
    dsn: str, request: DrillRequest, backup_set: BackupSet, result: DrillResult, live_dsn: str | None = None
) -> None:
    """recall@k of each vector index the restore rebuilt, in the scratch database; with
    ``live_dsn``, each exact answer compared with the live table's."""
    started = time.monotonic()
    settings = request.recall
    collection_column = COLLECTION_REFERENCE if request.store.has_collections else None
    with ExitStack() as stack:
        conn = stack.enter_context(closing(connect(dsn)))
        live = _live_connection(live_dsn, result)
        if live is not None:
            stack.enter_context(closing(live))
        with database_errors(conn, "measuring search quality in the drill"), conn.cursor() as cursor:
            for table in [t for t in request.store.vector_tables if t in backup_set.tables]:
                live_cursor = _live_cursor(live, table, read_columns(cursor, table), result)
                result.recall += measure_recall(cursor, RecallRequest(
                    table, settings.queries, settings.k, settings.seed, collection_column, settings.iterative_scan,
                ), live_cursor)
        conn.rollback()
        if live is not None:
            live.rollback()
    result.recall_settings = settings
    result.recall_seconds = time.monotonic() - started


def _live_dsn(request: DrillRequest, backup_set: BackupSet, result: DrillResult) -> str | None:
    """The live database, when the drilled set is the newest (older sets should answer otherwise)."""
    try:
        newest = SetCatalog(open_root(request.root)).newest().key
    except VectorAssetsError:  # the local root lost its sets, and the offsite copy was drilled
        newest = None
    if backup_set.key != newest:
        result.live_compared = "not compared with the live tables: not the newest set under the root"
        return None
    return request.dsn


def _live_connection(live_dsn: str | None, result: DrillResult):
    """A connection to the live database, or None when there is none to compare with or it does not answer."""
    if live_dsn is None:
        return None
    try:
        live = connect(live_dsn)
    except VectorAssetsError as error:
        result.live_compared = f"not compared with the live tables: {error}"
        return None
    result.live_compared = "compared with the live tables: the newest set"
    return live


def _live_cursor(live, table: str, columns: list[Column], result: DrillResult):
    """A cursor on the live table when it has the restored table's columns, else None."""
    if live is None:
        return None
    cursor = live.cursor()
    if not table_exists(cursor, table) or read_columns(cursor, table) != columns:
        result.live_compared = f"not compared with the live tables: {table} is not there as the set has it"
        return None
    return cursor


def tables_without_definitions(backup_set: BackupSet, columns: dict[str, list[Column]]) -> dict[str, list[Column]]:
    """The tables the drill must create bare: a set that records its tables' definitions has
    them created by the restore, keys and constraints included, so a set that drills restores."""
    manifest = backup_set.manifest
    with_definitions = {
        table for table in backup_set.tables
        if manifest is not None and manifest.tables[table].definition is not None
    }
    if with_definitions != set(backup_set.tables):
        return columns  # one definition missing: none is used, so no foreign key points nowhere
    return {}


def source_definitions(
    dsn: str, store: Store, backup_set: BackupSet, columns: dict[str, list[Column]]
) -> dict[str, TableDefinition]:
    """For a set that records no definitions (a legacy set): the source tables' own, keys and
    constraints included, when the set holds every table of the store (a foreign key may point at another) and
    each table's columns are the file's; else none (bare tables)."""
    if not tables_without_definitions(backup_set, columns) or set(backup_set.tables) != set(store.table_names):
        return {}
    conn = connect(dsn)
    try:
        with database_errors(conn, "during the drill"), conn.cursor() as cursor:
            if any(column_names(read_columns(cursor, t)) != column_names(columns[t]) for t in backup_set.tables):
                return {}
            return {table: read_table_definition(cursor, table) for table in backup_set.tables}
    finally:
        conn.close()


def recovery_time(restore: RestoreResult, targets: tuple[RtoTarget, ...]) -> RecoveryTime:
    set_bytes = sum(table.bytes for table in restore.tables)
    return RecoveryTime(restore.duration_seconds, set_bytes, target_seconds(targets, set_bytes))


def table_columns(dsn: str, backup_set: BackupSet) -> dict[str, list[Column]]:
    """Each table's columns in file order: the manifest's, or for a legacy set, which records
    no types, the file header's names with the source table's types."""
    if backup_set.manifest is not None:
        return {table: backup_set.manifest.tables[table].columns for table in backup_set.tables}
    conn = connect(dsn)
    try:
        with database_errors(conn, "during the drill"), conn.cursor() as cursor:
            return {table: _legacy_columns(backup_set, table, read_columns(cursor, table)) for table in backup_set.tables}
    finally:
        conn.close()


def _legacy_columns(backup_set: BackupSet, table: str, source: list[Column]) -> list[Column]:
    types = {column.name: column.type for column in source}
    header = header_of(backup_set.folder, backup_set.file_name(table))
    unknown = [name for name in header if name not in types]
    if unknown:
        raise ColumnMismatchError(
            f"{backup_set.file_name(table)} has columns {unknown} that the source table {table} lacks; "
            "a legacy set's column types are taken from the source table"
        )
    return [Column(name, types[name]) for name in header]


def _compare_chain_table(dsn: str, table: str, columns: list[Column], entry: TableFile) -> TableDrill:
    """An increment's chain, restored, holds the rows and content digest of the increment's row
    index: every row of the table at the increment's snapshot, by its digest."""
    conn = connect(dsn)
    try:
        with database_errors(conn, "during the drill"), conn.cursor() as cursor:
            rows, digest = content_digest(cursor, table, table_identifier(table), column_names(columns))
        conn.rollback()
    finally:
        conn.close()
    expected = entry.rows_index
    return TableDrill(table, expected.rows, rows, expected.content_digest, digest, by="content digest")


@contextmanager
def scratch_database(dsn: str, result: DrillResult) -> Iterator[str]:
    """A new database on the same server, with pgvector; its DSN puts the scratch schema first."""
    admin = connect(dsn)
    admin.autocommit = True
    try:
        create_database(admin, result.scratch_database)
        try:
            yield scratch_dsn(dsn, result.scratch_database)
        finally:
            drop_database(admin, result.scratch_database)
            result.scratch_dropped = True
    finally:
        admin.close()


def compare_table(
    dsn: str, backup_set: BackupSet, table: str, columns: list[Column], progress: ProgressReporter | None = None
) -> TableDrill:
    entry = backup_set.manifest.tables[table] if backup_set.manifest else None
    if entry is not None and backup_set.manifest.is_increment:
        return _compare_chain_table(dsn, table, columns, entry)
    names = [name for name, _ in backup_set.data_files(table)]
    set_sha256 = content_sha256(backup_set.folder.open_reader, names)
    rows_in_set = entry.rows if entry is not None else rows_in(backup_set.folder, names[0])
    fmt = format_of_file(names[0])
    conn = connect(dsn)
    try:
        with database_errors(conn, "during the drill"), conn.cursor() as cursor:
            cursor.execute("SET synchronize_seqscans = off")  # read from the first page, in load order
            rows_restored = count_rows(cursor, table)
            sink = HashingSink()
            counted, meter = writer_for(progress, sink, CopyEstimate("drill export", table, rows_restored, None))
            copy_out(cursor, table, column_names(columns), counted, fmt.copy_options)
            if meter is not None:
                meter.finish(rows_restored)
        conn.rollback()
    finally:
        conn.close()
    return TableDrill(table, rows_in_set, rows_restored, set_sha256, sink.hexdigest())

