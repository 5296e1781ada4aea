"""The restore command: load a set into the same or another database, in one transaction.

Checked before the transaction starts: the set's files, headers and row counts, the pgvector
extension on the target, and the columns by name and type. Each file's sha256 is checked on
the same read that feeds COPY, before anything commits. Then, in one transaction:
optional TRUNCATE, COPY collections before embeddings, compare row counts, commit. Any error
rolls back, so the tables are exactly as before.
"""

from __future__ import annotations

import csv
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.backup_set import BackupSet, count_csv_rows, read_csv_header
from vector_assets.core.errors import (
    BackupFileError,
    ColumnMismatchError,
    ConfigError,
    DatabaseUnreachableError,
    ExtensionMissingError,
    IncompleteBackupSetError,
    RestoreConflictError,
    RestoreLoadError,
)
from vector_assets.core.postgres import (
    Column,
    connect,
    count_rows,
    describe_dsn,
    read_columns,
    redact,
    server_versions,
)
from vector_assets.core.scan import locate_set
from vector_assets.core.tables import (
    EMBEDDING_TABLE,
    MANAGED_TABLES,
    require_embeddings_with_collections,
    validate_tables,
)
from vector_assets.core.vector_indexes import drop_secondary_indexes, recreate_indexes

ON_CONFLICT_CHOICES = ("error", "skip")
INDEX_BUILD_MEMORY = "512MB"
COPY_READ_BYTES = 1 << 20


@dataclass(frozen=True)
class RestoreRequest:
    """Which set, which tables, how, and into which database (a DSN from the environment)."""

    target_dsn: str
    root: Path
    timestamp: str
    backup_path: str | None = None
    tables: tuple[str, ...] = MANAGED_TABLES
    truncate_before_restore: bool = False
    dry_run: bool = False
    on_conflict: str = "error"
    configured_root: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "tables", validate_tables(self.tables))
        object.__setattr__(self, "root", Path(self.root))
        if self.on_conflict not in ON_CONFLICT_CHOICES:
            raise ConfigError(f"on_conflict {self.on_conflict!r} must be one of {', '.join(ON_CONFLICT_CHOICES)}")
        if self.truncate_before_restore:
            require_embeddings_with_collections(self.tables, "truncating before restore")


@dataclass
class TableRestore:
    table: str
    file: str
    bytes: int
    rows_in_set: int
    rows_before: int = 0
    rows_truncated: int = 0
    rows_loaded: int = 0
    rows_skipped: int = 0
    conflicts: int = 0
    first_conflict: str | None = None
    duration_seconds: float = 0.0


@dataclass
class RestoreResult:
    backup_set: BackupSet
    dry_run: bool
    truncated: bool
    tables: list[TableRestore] = field(default_factory=list)
    indexes_rebuilt: list[str] = field(default_factory=list)
    duration_seconds: float = 0.0


@dataclass(frozen=True)
class PlannedTable:
    table: str
    path: Path
    header: list[str]
    rows_in_set: int
    sha256: str | None  # from the manifest; checked on the one read that feeds COPY


def run_restore(request: RestoreRequest) -> RestoreResult:
    started = time.monotonic()
    backup_set = locate_set(request.root, request.timestamp, request.backup_path, request.configured_root)
    planned = [plan_table(backup_set, table) for table in request.tables]
    conn = connect(request.target_dsn)
    try:
        check_target(conn, backup_set, planned)
        result = RestoreResult(backup_set, request.dry_run, request.truncate_before_restore)
        _load_in_one_transaction(conn, request, planned, result)
    except psycopg2.OperationalError as error:  # lost while checking the target
        raise lost_target_error(request.target_dsn, error) from None
    finally:
        conn.close()
    result.duration_seconds = time.monotonic() - started
    return result


def plan_table(backup_set: BackupSet, table: str) -> PlannedTable:
    """Check one table's file before touching the database: present, intact, parseable header."""
    if table not in backup_set.tables:
        raise IncompleteBackupSetError(f"set {backup_set.key} has no {table} file")
    path = backup_set.csv_path(table)
    if not path.is_file():
        raise IncompleteBackupSetError(f"set {backup_set.key} is missing {path.name} in {backup_set.folder}")
    entry = backup_set.manifest.tables.get(table) if backup_set.manifest else None
    try:
        header = read_csv_header(path)
        rows = entry.rows if entry is not None else count_csv_rows(path)
    except (csv.Error, UnicodeDecodeError) as error:
        raise BackupFileError(f"{path.name} is not valid CSV: {error}") from None
    if entry is not None and header != [column.name for column in entry.columns]:
        raise ColumnMismatchError(f"{path.name} header {header} differs from the manifest's columns")
    return PlannedTable(table, path, header, rows, entry.sha256 if entry is not None else None)


def check_target(conn: psycopg2.extensions.connection, backup_set: BackupSet, planned: list[PlannedTable]) -> None:
    """The target has pgvector and every table has the set's columns, by name and by type."""
    with conn.cursor() as cursor:
        if server_versions(cursor)[1] is None:
            raise ExtensionMissingError("the target database has no 'vector' extension (CREATE EXTENSION vector)")
        for plan in planned:
            _compare_columns(plan, read_columns(cursor, plan.table), backup_set)
    conn.rollback()


def _compare_columns(plan: PlannedTable, target: list[Column], backup_set: BackupSet) -> None:
    target_names = [column.name for column in target]
    missing = [name for name in plan.header if name not in target_names]
    extra = [name for name in target_names if name not in plan.header]
    if missing or extra:
        raise ColumnMismatchError(
            f"table {plan.table}: set columns not in the target: {missing or 'none'}; "
            f"target columns not in the set: {extra or 'none'}"
        )
    entry = backup_set.manifest.tables.get(plan.table) if backup_set.manifest else None
    target_types = {column.name: column.type for column in target}
    for column in entry.columns if entry else []:
        if target_types[column.name] != column.type:
            raise ColumnMismatchError(
                f"table {plan.table} column {column.name}: the set has {column.type}, the target has {target_types[column.name]}"
            )


def _load_in_one_transaction(
    conn: psycopg2.extensions.connection, request: RestoreRequest, planned: list[PlannedTable], result: RestoreResult
) -> None:
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql.SQL("SET LOCAL maintenance_work_mem = {}").format(sql.Literal(INDEX_BUILD_MEMORY)))
            outcomes = {plan.table: _outcome(cursor, plan) for plan in planned}
            dropped = []
            if request.truncate_before_restore:
                _truncate(cursor, planned, outcomes)
                if EMBEDDING_TABLE in outcomes:
                    dropped = drop_secondary_indexes(cursor, EMBEDDING_TABLE)
            for plan in planned:
                _load_table(cursor, plan, outcomes[plan.table], request)
            result.indexes_rebuilt = recreate_indexes(cursor, dropped)
            result.tables = list(outcomes.values())
        conn.rollback() if request.dry_run else conn.commit()
    except psycopg2.OperationalError as error:
        _rollback_quietly(conn)
        raise lost_target_error(request.target_dsn, error) from None
    except BaseException:
        _rollback_quietly(conn)
        raise


def lost_target_error(dsn: str, error: psycopg2.OperationalError) -> DatabaseUnreachableError:
    """Retryable, naming the target so the operator knows which server to look at; no password."""
    target = describe_dsn(dsn)
    return DatabaseUnreachableError(
        f"lost the target database {target.database!r} on {target.host}:{target.port} during the restore: "
        f"{redact(str(error).strip(), dsn)}"
    )


def _outcome(cursor: psycopg2.extensions.cursor, plan: PlannedTable) -> TableRestore:
    return TableRestore(
        plan.table, plan.path.name, plan.path.stat().st_size, plan.rows_in_set, rows_before=count_rows(cursor, plan.table)
    )


def _truncate(cursor: psycopg2.extensions.cursor, planned: list[PlannedTable], outcomes: dict[str, TableRestore]) -> None:
    names = [plan.table for plan in planned]
    cursor.execute(sql.SQL("TRUNCATE TABLE {}").format(sql.SQL(", ").join(map(sql.Identifier, names))))
    for name in names:
        outcomes[name].rows_truncated = outcomes[name].rows_before


def _load_table(cursor: psycopg2.extensions.cursor, plan: PlannedTable, outcome: TableRestore, request: RestoreRequest) -> None:
    started = time.monotonic()
    if request.truncate_before_restore:
        # FREEZE is allowed because the table was truncated in this transaction; it spares
        # the later hint-bit rewrite of every loaded page.
        outcome.rows_loaded = copy_file_into(cursor, plan, sql.Identifier(plan.table), freeze=True)
    else:
        _append_through_stage(cursor, plan, outcome, request)
    if outcome.rows_loaded + outcome.rows_skipped != plan.rows_in_set:
        raise BackupFileError(
            f"{plan.path.name}: loaded {outcome.rows_loaded} and skipped {outcome.rows_skipped} rows, "
            f"but the set has {plan.rows_in_set}"
        )
    outcome.duration_seconds = time.monotonic() - started


def copy_file_into(cursor: psycopg2.extensions.cursor, plan: PlannedTable, table: sql.Composable, freeze: bool = False) -> int:
    """COPY the file in, hashing it on the same read; a sha256 mismatch raises before commit.

    Hashing while loading reads a large set once instead of twice. Because the whole restore
    is one transaction, a mismatch found here still leaves the tables exactly as before.
    """
    options = "FORMAT csv, HEADER, ENCODING 'UTF8'" + (", FREEZE" if freeze else "")
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (" + options + ")").format(
        table, sql.SQL(", ").join(map(sql.Identifier, plan.header))
    )
    try:
        with open(plan.path, "rb") as handle:
            reader = HashingReader(handle)
            cursor.copy_expert(statement, reader, size=COPY_READ_BYTES)
    except psycopg2.DataError as error:
        raise BackupFileError(f"loading {plan.path.name} into {plan.table} failed: {str(error).strip()}") from None
    except psycopg2.OperationalError:
        raise
    except psycopg2.Error as error:
        raise RestoreLoadError(f"loading {plan.path.name} into {plan.table} failed: {str(error).strip()}") from None
    if plan.sha256 is not None and reader.hexdigest() != plan.sha256:
        raise BackupFileError(f"{plan.path.name} sha256 does not match the manifest; nothing was restored")
    return cursor.rowcount


class HashingReader:
    """A file wrapper for ``copy_expert`` that hashes what COPY reads."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        self._digest.update(chunk)
        return chunk

    def readline(self, size: int = -1) -> bytes:
        line = self._handle.readline(size)
        self._digest.update(line)
        return line

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def _append_through_stage(
    cursor: psycopg2.extensions.cursor, plan: PlannedTable, outcome: TableRestore, request: RestoreRequest
) -> None:
    """Load into a temporary copy first, so conflicts can be named or skipped before inserting."""
    stage = sql.Identifier(f"restore_stage_{plan.table}")
    cursor.execute(
        sql.SQL("CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP").format(stage, sql.Identifier(plan.table))
    )
    copy_file_into(cursor, plan, stage)
    key = primary_key(cursor, plan.table)
    outcome.conflicts, outcome.first_conflict = _conflicts(cursor, plan.table, stage, key)
    if outcome.conflicts and request.on_conflict == "error" and not request.dry_run:
        raise RestoreConflictError(
            f"table {plan.table}: {outcome.conflicts} rows of {plan.path.name} already exist; "
            f"first conflicting {', '.join(key)} = {outcome.first_conflict} (use on_conflict: skip, or truncate_before_restore)"
        )
    columns = sql.SQL(", ").join(map(sql.Identifier, plan.header))
    try:
        cursor.execute(
            sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
                sql.Identifier(plan.table), columns, columns, stage
            )
        )
    except psycopg2.IntegrityError as error:
        raise RestoreConflictError(f"table {plan.table}: {str(error).strip()}") from None
    outcome.rows_loaded = cursor.rowcount
    outcome.rows_skipped = plan.rows_in_set - outcome.rows_loaded


def primary_key(cursor: psycopg2.extensions.cursor, table: str) -> list[str]:
    cursor.execute(
        """
        SELECT a.attname FROM pg_index i
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
        WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)
        """,
        (sql.Identifier(table).as_string(cursor),),
    )
    return [name for (name,) in cursor.fetchall()]


def _conflicts(
    cursor: psycopg2.extensions.cursor, table: str, stage: sql.Identifier, key: list[str]
) -> tuple[int, str | None]:
    if not key:
        return 0, None
    join = sql.SQL(" AND ").join(
        sql.SQL("s.{0} = t.{0}").format(sql.Identifier(column)) for column in key
    )
    key_text = sql.SQL(" || ', ' || ").join(sql.SQL("s.{}::text").format(sql.Identifier(c)) for c in key)
    cursor.execute(
        sql.SQL("SELECT count(*), min({}) FROM {} s JOIN {} t ON {}").format(key_text, stage, sql.Identifier(table), join)
    )
    count, first = cursor.fetchone()
    return int(count), first


def _rollback_quietly(conn: psycopg2.extensions.connection) -> None:
    if not conn.closed:
        try:
            conn.rollback()
        except psycopg2.Error:
            pass


