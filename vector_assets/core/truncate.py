"""The guarded truncate: back up, verify, and only then empty the tables, in one transaction.

The tables are locked in SHARE ROW EXCLUSIVE mode first: writers wait, readers go on. So a row
a concurrent writer commits is either committed before the lock (and in the backup) or after
our commit (and still in the table). Never lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.backup import BackupResult, SetTarget, free_timestamp, write_set
from vector_assets.core.backup_log import TruncateOutcome, rewrite_last_log_block
from vector_assets.core.backup_set import LOG_FILE_NAME, Location, count_csv_rows, sha256_of_file, validate_timestamp
from vector_assets.core.errors import (
    BackupWriteError,
    DatabaseUnreachableError,
    GuardedTruncateError,
    VectorAssetsError,
    VerificationError,
)
from vector_assets.core.postgres import connect, count_rows, describe_dsn
from vector_assets.core.tables import (
    EMBEDDING_TABLE,
    MANAGED_TABLES,
    require_embeddings_with_collections,
    validate_tables,
)

T = TypeVar("T")
LOCK_TIMEOUT = "60s"


@dataclass(frozen=True)
class TruncateRequest:
    """Back up both tables, then truncate ``tables`` (by default only the embeddings)."""

    dsn: str
    root: Path
    task_id: str | None = None
    tables: tuple[str, ...] = (EMBEDDING_TABLE,)
    timestamp: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "tables", validate_tables(self.tables))
        object.__setattr__(self, "root", Path(self.root))
        require_embeddings_with_collections(self.tables, "truncating")
        if self.timestamp is not None:
            validate_timestamp(self.timestamp)


@dataclass(frozen=True)
class TruncateResult:
    backup: BackupResult
    rows_before: dict[str, int]
    rows_after: dict[str, int]
    duration_seconds: float
    warnings: tuple[str, ...] = ()

    @property
    def truncated_tables(self) -> tuple[str, ...]:
        return tuple(self.rows_after)


def run_guarded_truncate(request: TruncateRequest) -> TruncateResult:
    """Lock, back up both tables, verify the files against the database, truncate, commit."""
    started = time.monotonic()
    location = Location(request.task_id)
    folder = location.folder(request.root)
    folder.mkdir(parents=True, exist_ok=True)
    conn = connect(request.dsn)
    try:
        with conn.cursor() as cursor:
            _step("lock", lambda: _lock_tables(cursor))
            rows_before = {table: count_rows(cursor, table) for table in MANAGED_TABLES}
            target = SetTarget(folder, location, free_timestamp(folder, request.timestamp), describe_dsn(request.dsn).as_dict())
            backup = _step("backup", lambda: write_set(cursor, target, MANAGED_TABLES))
            _step("verify", lambda: verify_against_database(cursor, backup))
            _step("truncate", lambda: _truncate(cursor, request.tables))
            rows_after = {table: count_rows(cursor, table) for table in request.tables}
            _step("commit", conn.commit)
    except BaseException:
        if not conn.closed:
            conn.rollback()
        raise
    finally:
        conn.close()
    outcomes = [TruncateOutcome(table, rows_before[table]) for table in request.tables]
    warnings = _note_truncate_in_log(folder, backup, location, outcomes)
    return TruncateResult(
        backup, {t: rows_before[t] for t in request.tables}, rows_after, time.monotonic() - started, warnings
    )


def _note_truncate_in_log(
    folder: Path, backup: BackupResult, location: Location, outcomes: list[TruncateOutcome]
) -> tuple[str, ...]:
    """After the commit a failure here (a full disk) must not read as "nothing was truncated":
    the set is complete and verified, only the human log's note is missing."""
    try:
        rewrite_last_log_block(folder, backup.manifest, location.task_id, outcomes)
    except BackupWriteError as error:
        return (f"the truncate committed, but {LOG_FILE_NAME} still says it was not performed: {error}",)
    return ()


def _step(name: str, action: Callable[[], T]) -> T:
    try:
        return action()
    except (VectorAssetsError, psycopg2.Error, OSError) as error:
        cause = error
        if isinstance(error, psycopg2.OperationalError):
            cause = DatabaseUnreachableError(str(error).strip())
        raise GuardedTruncateError(name, cause) from error


def _lock_tables(cursor: psycopg2.extensions.cursor) -> None:
    cursor.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
    cursor.execute(
        sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(
            sql.SQL(", ").join(map(sql.Identifier, MANAGED_TABLES))
        )
    )


def verify_against_database(cursor: psycopg2.extensions.cursor, backup: BackupResult) -> None:
    """Each file's rows equal the table's rows now (under the lock), and its sha256 is as recorded."""
    for table, entry in backup.manifest.tables.items():
        path = backup.folder / entry.file
        in_database = count_rows(cursor, table)
        in_file = count_csv_rows(path)
        if not in_database == in_file == entry.rows:
            raise VerificationError(
                f"{table}: database has {in_database} rows, {path.name} has {in_file}, manifest says {entry.rows}"
            )
        if sha256_of_file(path) != entry.sha256:
            raise VerificationError(f"{path.name} sha256 changed after it was written")


def _truncate(cursor: psycopg2.extensions.cursor, tables: tuple[str, ...]) -> None:
    # One statement: the foreign key forbids truncating collections on their own.
    cursor.execute(sql.SQL("TRUNCATE TABLE {}").format(sql.SQL(", ").join(map(sql.Identifier, tables))))
