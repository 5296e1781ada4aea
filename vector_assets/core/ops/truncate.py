"""The guarded truncate: back up, verify, and only then empty the tables, in one transaction.

The tables are locked in SHARE ROW EXCLUSIVE mode first: writers wait, readers go on. So a row
a concurrent writer commits is either committed before the lock (and in the backup) or after
our commit (and still in the table). Never lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import psycopg2
import psycopg2.extensions

from vector_assets.core.errors import (
    BackupWriteError,
    GuardedTruncateError,
    ObjectStoreError,
    VectorAssetsError,
    VerificationError,
)
from vector_assets.core.hashing import HashingReader
from vector_assets.core.pg.catalog import count_rows
from vector_assets.core.pg.connection import (
    connect,
    database_errors,
    describe_dsn,
    rollback_quietly,
)
from vector_assets.core.pg.table_changes import (
    lock_against_writers,
    truncate_with_brief_waits,
)
from vector_assets.core.progress import ProgressReporter
from vector_assets.core.sets.age_streams import decrypting
from vector_assets.core.sets.backup_log import TruncateOutcome, rewrite_last_log_block
from vector_assets.core.sets.encryption import EncryptionKeys, IdentityFile
from vector_assets.core.sets.formats import CSV, count_rows_in_stream, set_format
from vector_assets.core.sets.manifest import PRE_TRUNCATE
from vector_assets.core.sets.naming import LOG_FILE_NAME, Location, validate_timestamp
from vector_assets.core.sets.roots import open_root, writing_to
from vector_assets.core.sets.storage import Root, SetFolder
from vector_assets.core.sets.writer import BackupResult, SetTarget, free_timestamp, write_set
from vector_assets.core.stores import Store, langchain_store
from vector_assets.core.units import count_of

T = TypeVar("T")


@dataclass(frozen=True)
class TruncateRequest:
    """Back up both tables, then truncate ``tables`` (by default only the embeddings).

    ``dry_run`` does everything the real run does (lock, back up, verify, truncate) and fails
    where it would fail; only the commit is left out, and the set it wrote is discarded."""

    dsn: str
    root: Root | Path | str
    task_id: str | None = None
    tables: tuple[str, ...] | None = None  # None: the store's vector tables
    timestamp: str | None = None
    dry_run: bool = False
    format: str = CSV.name  # of the safety set; written on the locked transaction's own connection
    progress: ProgressReporter | None = field(default=None, compare=False)
    store: Store = field(default_factory=langchain_store)
    encryption: EncryptionKeys = EncryptionKeys()  # the safety set's recipients; the identity reads it back

    def __post_init__(self) -> None:
        set_format(self.format)
        tables = self.store.vector_tables if self.tables is None else self.tables
        object.__setattr__(self, "tables", self.store.select_tables(tables))
        object.__setattr__(self, "root", open_root(self.root))
        self.store.require_vectors_with_collections(self.tables, "truncating")
        if self.timestamp is not None:
            validate_timestamp(self.timestamp)


@dataclass(frozen=True)
class TruncateResult:
    """What was removed and the verified set holding it; on a dry run, what would be (no set)."""

    backup: BackupResult | None
    rows_before: dict[str, int]
    rows_after: dict[str, int]
    duration_seconds: float
    warnings: tuple[str, ...] = ()
    dry_run: bool = False
    folder: SetFolder | None = None

    @property
    def truncated_tables(self) -> tuple[str, ...]:
        return tuple(self.rows_after)

    def summary(self, set_key: str | None = None, how_to_apply: str = "run with --apply") -> str:
        """One line for the CLI and the run's log: what a dry run did and would remove, or what
        was backed up (``set_key``: its partition key, else its timestamp) and truncated."""
        if self.dry_run or self.backup is None:
            tables = ", ".join(f"{t}: {count_of(rows, 'row')}" for t, rows in self.rows_before.items())
            return (f"dry run: backed up both tables into a new set in {self.folder}, verified it, and would remove "
                    f"{tables}; rolled back and the set discarded, nothing changed; {how_to_apply} to truncate")
        tables = ", ".join(
            f"{t}: {self.rows_before[t]:,} -> {count_of(self.rows_after[t], 'row')}" for t in self.truncated_tables
        )
        return (f"backup performed: yes (set {set_key or self.backup.timestamp} in {self.backup.folder}, verified); "
                f"truncate performed: yes; {tables}")


def run_guarded_truncate(request: TruncateRequest) -> TruncateResult:
    """Lock, back up both tables, verify the files against the database, truncate, commit."""
    started = time.monotonic()
    location = Location(request.task_id)
    folder = location.folder(request.root)
    request.encryption.recipients_for(folder)  # refuses a plaintext safety set beside encrypted ones, before the lock
    existed = folder.exists()
    with writing_to(folder):
        folder.prepare()
    if request.dry_run:
        try:
            return _rehearse(request, folder, location, started)
        finally:
            if not existed:
                folder.unprepare()
    written: list[BackupResult] = []
    conn = connect(request.dsn)
    try:
        with database_errors(conn, "during the truncate"), conn.cursor() as cursor:
            rows_before, rows_after = _lock_back_up_verify_truncate(conn, cursor, request, folder, location, written)
            _step(conn, "commit", conn.commit)
    except BaseException:
        rollback_quietly(conn)
        raise
    finally:
        conn.close()
    backup = written[0]
    outcomes = [TruncateOutcome(table, rows_before[table]) for table in request.tables]
    warnings = _note_truncate_in_log(folder, backup, location, outcomes)
    return TruncateResult(
        backup, {t: rows_before[t] for t in request.tables}, rows_after, time.monotonic() - started, warnings,
        folder=folder,
    )


def _lock_back_up_verify_truncate(
    conn: psycopg2.extensions.connection, cursor: psycopg2.extensions.cursor, request: TruncateRequest,
    folder: SetFolder, location: Location, written: list[BackupResult],
) -> tuple[dict[str, int], dict[str, int]]:
    """Every step but the commit; the set is appended to ``written`` as soon as it exists."""
    _step(conn, "lock", lambda: lock_against_writers(cursor, request.store.table_names))
    rows_before = {table: count_rows(cursor, table) for table in request.store.table_names}
    target = SetTarget(
        folder, location, free_timestamp(folder, request.timestamp), describe_dsn(request.dsn).as_dict(),
        kind=PRE_TRUNCATE, format=request.format, progress=request.progress,
        encrypt_to=request.encryption.recipients_for(folder), store=request.store.name, layout=request.store.layout,
        data_checks=request.store.data_check_plan(),
    )
    written.append(_step(conn, "backup", lambda: write_set(cursor, target, request.store.table_names)))
    _step(conn, "verify", lambda: verify_against_database(cursor, written[-1], request.encryption.identity_file))
    _step(conn, "truncate", lambda: truncate_with_brief_waits(cursor, request.tables))
    return rows_before, {table: count_rows(cursor, table) for table in request.tables}


def _rehearse(request: TruncateRequest, folder: SetFolder, location: Location, started: float) -> TruncateResult:
    """The dry run: every step of the real run, the same errors, then a rollback instead of the
    commit; the set it wrote and its log block are discarded."""
    log_before = folder.read_bytes(LOG_FILE_NAME)
    written: list[BackupResult] = []
    conn = connect(request.dsn)
    try:
        with database_errors(conn, "during the truncate"), conn.cursor() as cursor:
            rows_before, rows_after = _lock_back_up_verify_truncate(conn, cursor, request, folder, location, written)
    finally:
        rollback_quietly(conn)  # the commit is what a dry run leaves out
        conn.close()
        for backup in written:
            backup.discard(log_before)
    return TruncateResult(
        None, {t: rows_before[t] for t in request.tables}, rows_after, time.monotonic() - started,
        dry_run=True, folder=folder,
    )


def _note_truncate_in_log(
    folder: SetFolder, backup: BackupResult, location: Location, outcomes: list[TruncateOutcome]
) -> tuple[str, ...]:
    """After the commit a failure here (a full disk) must not read as "nothing was truncated":
    the set is complete and verified, only the human log's note is missing."""
    try:
        rewrite_last_log_block(folder, backup.manifest, location.task_id, outcomes)
    except (BackupWriteError, ObjectStoreError) as error:
        return (f"the truncate committed, but {LOG_FILE_NAME} still says it was not performed: {error}",)
    return ()


def _step(conn: psycopg2.extensions.connection, name: str, action: Callable[[], T]) -> T:
    try:
        with database_errors(conn, f"during the truncate's step '{name}'"):
            return action()
    except (VectorAssetsError, psycopg2.Error, OSError) as error:
        raise GuardedTruncateError(name, error) from error


def verify_against_database(
    cursor: psycopg2.extensions.cursor, backup: BackupResult, identity_file: IdentityFile | None = None
) -> None:
    """Each table's files hold the table's rows now (under the lock), and each file's sha256 is
    as recorded. An encrypted set is read through the identity; without it, its stored bytes are
    checked and its rows are those its COPY counted."""
    folder = backup.folder
    plaintext = not backup.manifest.encrypted or (identity_file is not None and identity_file.path is not None)
    if backup.manifest.encrypted and plaintext:
        folder = decrypting(backup.folder, [backup.manifest], identity_file)
    for table, entry in backup.manifest.tables.items():
        in_database = count_rows(cursor, table)
        in_files = 0
        for piece in entry.pieces:
            with folder.open_reader(piece.file) as handle:
                reader = HashingReader(handle)
                if plaintext:
                    in_files += count_rows_in_stream(piece.file, reader)
                else:
                    in_files += piece.rows
                    while reader.read(1 << 20):
                        pass
            expected = (piece.plain_bytes, piece.plain_sha256) if plaintext else (piece.bytes, piece.sha256)
            if (reader.hash.bytes, reader.hexdigest()) != expected:
                raise VerificationError(f"{backup.folder.locator(piece.file)}: size or sha256 changed after it was written")
        if not in_database == in_files == entry.rows:
            raise VerificationError(
                f"{table}: database has {count_of(in_database, 'row')}, {entry.file} has {in_files}, manifest says {entry.rows}"
            )

