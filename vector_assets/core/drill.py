"""The restore drill: prove a set restores, by restoring it somewhere harmless and comparing.

The set is restored with the restore command itself into a scratch schema of a scratch
database on the same server, then each table is exported again and compared with the set's
file: the row count, and the sha256 of the export against the file's. A freshly loaded table
is read back in load order, so an identical export means every row came back exactly. The
scratch database is dropped whatever happens.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.backup_set import BackupSet, count_csv_rows, read_csv_header, sha256_of_file
from vector_assets.core.errors import BackupSetNotFoundError, ColumnMismatchError, ConfigError, DatabaseUnreachableError
from vector_assets.core.postgres import Column, column_list, connect, count_rows, read_columns
from vector_assets.core.restore import RestoreRequest, RestoreResult, run_restore
from vector_assets.core.scan import find_set, scan_root
from vector_assets.core.tables import EMBEDDING_TABLE

SCRATCH_DATABASE_PREFIX = "vector_assets_drill_"
SCRATCH_SCHEMA = "vector_drill"


@dataclass(frozen=True)
class DrillRequest:
    """Which set to drill (a partition key; None means the newest), and the server to drill on."""

    dsn: str
    root: Path
    key: str | None = None
    configured_root: str | None = None


@dataclass
class TableDrill:
    table: str
    rows_in_set: int
    rows_restored: int
    set_sha256: str
    restored_sha256: str

    @property
    def passed(self) -> bool:
        return self.rows_in_set == self.rows_restored and self.set_sha256 == self.restored_sha256

    @property
    def message(self) -> str:
        if self.passed:
            return f"{self.table}: {self.rows_restored:,} rows restored and exported again byte for byte"
        if self.rows_in_set != self.rows_restored:
            return f"{self.table}: the set has {self.rows_in_set:,} rows, the scratch restore has {self.rows_restored:,}"
        return f"{self.table}: the restored rows differ from the file (sha256 {self.restored_sha256} != {self.set_sha256})"


@dataclass
class DrillResult:
    backup_set: BackupSet
    scratch_database: str
    tables: list[TableDrill] = field(default_factory=list)
    restore: RestoreResult | None = None
    scratch_dropped: bool = False
    duration_seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return bool(self.tables) and all(table.passed for table in self.tables)


def run_drill(request: DrillRequest) -> DrillResult:
    started = time.monotonic()
    backup_set = choose_set(request.root, request.key)
    result = DrillResult(backup_set, f"{SCRATCH_DATABASE_PREFIX}{uuid.uuid4().hex[:12]}")
    columns = table_columns(request.dsn, backup_set)
    with scratch_database(request.dsn, result) as scratch_dsn:
        create_scratch_tables(scratch_dsn, columns)
        result.restore = run_restore(RestoreRequest(
            target_dsn=scratch_dsn, root=request.root, timestamp=backup_set.key, tables=backup_set.tables,
            truncate_before_restore=EMBEDDING_TABLE in backup_set.tables, configured_root=request.configured_root,
        ))
        result.tables = [compare_table(scratch_dsn, backup_set, table, columns[table]) for table in backup_set.tables]
    result.duration_seconds = time.monotonic() - started
    return result


def choose_set(root: Path, key: str | None) -> BackupSet:
    if key:
        return find_set(root, key)
    sets = scan_root(root)
    if not sets:
        raise BackupSetNotFoundError(f"no complete backup set under {root} to drill")
    return sets[-1]


def table_columns(dsn: str, backup_set: BackupSet) -> dict[str, list[Column]]:
    """Each table's columns in file order: the manifest's, or for a legacy set, which records
    no types, the file header's names with the source table's types."""
    if backup_set.manifest is not None:
        return {table: backup_set.manifest.tables[table].columns for table in backup_set.tables}
    conn = connect(dsn)
    try:
        with conn.cursor() as cursor:
            return {table: _legacy_columns(backup_set, table, read_columns(cursor, table)) for table in backup_set.tables}
    finally:
        conn.close()


def _legacy_columns(backup_set: BackupSet, table: str, source: list[Column]) -> list[Column]:
    types = {column.name: column.type for column in source}
    header = read_csv_header(backup_set.csv_path(table))
    unknown = [name for name in header if name not in types]
    if unknown:
        raise ColumnMismatchError(
            f"{backup_set.csv_path(table).name} has columns {unknown} that the source table {table} lacks; "
            "a legacy set's column types are taken from the source table"
        )
    return [Column(name, types[name]) for name in header]


@contextmanager
def scratch_database(dsn: str, result: DrillResult) -> Iterator[str]:
    """A new database on the same server, with pgvector; its DSN puts the scratch schema first."""
    admin = connect(dsn)
    admin.autocommit = True
    try:
        _create_database(admin, result.scratch_database)
        try:
            yield scratch_dsn(dsn, result.scratch_database)
        finally:
            with admin.cursor() as cursor:
                cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(result.scratch_database)))
            result.scratch_dropped = True
    finally:
        admin.close()


def _create_database(admin: psycopg2.extensions.connection, name: str) -> None:
    try:
        with admin.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg2.errors.InsufficientPrivilege:
        raise ConfigError(
            "the restore drill needs to create a scratch database on the pgvector server; "
            "grant CREATEDB to the role in VECTOR_ASSETS_PG_DSN"
        ) from None
    except psycopg2.OperationalError as error:
        raise DatabaseUnreachableError(f"could not create the scratch database: {str(error).strip()}") from None


def scratch_dsn(dsn: str, database: str) -> str:
    params = psycopg2.extensions.parse_dsn(dsn)
    params["dbname"] = database
    # Unqualified table names then resolve to the scratch schema, so the restore command runs as is.
    params["options"] = f"{params.get('options', '')} -c search_path={SCRATCH_SCHEMA},public".strip()
    return psycopg2.extensions.make_dsn(**params)


def create_scratch_tables(dsn: str, columns: dict[str, list[Column]]) -> None:
    conn = connect(dsn)
    try:
        with conn.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")
            cursor.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCRATCH_SCHEMA)))
            for table, table_columns_ in columns.items():
                definition = sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(column.name), sql.SQL(column.type)) for column in table_columns_
                )
                cursor.execute(sql.SQL("CREATE TABLE {}.{} ({})").format(
                    sql.Identifier(SCRATCH_SCHEMA), sql.Identifier(table), definition
                ))
        conn.commit()
    finally:
        conn.close()


class _HashingSink:
    """A write-only file for ``copy_expert`` that keeps only the sha256 of what it is given."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()

    def write(self, chunk: bytes | str) -> int:
        data = chunk.encode("utf-8") if isinstance(chunk, str) else chunk
        self.digest.update(data)
        return len(data)


def compare_table(dsn: str, backup_set: BackupSet, table: str, columns: list[Column]) -> TableDrill:
    entry = backup_set.manifest.tables[table] if backup_set.manifest else None
    set_sha256 = entry.sha256 if entry else sha256_of_file(backup_set.csv_path(table))
    rows_in_set = entry.rows if entry else count_csv_rows(backup_set.csv_path(table))
    conn = connect(dsn)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SET synchronize_seqscans = off")  # read from the first page, in load order
            rows_restored = count_rows(cursor, table)
            sink = _HashingSink()
            statement = sql.SQL("COPY {} ({}) TO STDOUT WITH (FORMAT csv, HEADER, ENCODING 'UTF8')").format(
                sql.Identifier(table), column_list(columns)
            )
            cursor.copy_expert(statement.as_string(cursor), sink)
        conn.rollback()
    finally:
        conn.close()
    return TableDrill(table, rows_in_set, rows_restored, set_sha256, sink.digest.hexdigest())

