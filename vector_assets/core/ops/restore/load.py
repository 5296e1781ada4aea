"""The in-place load, step by step: tables created from the set's definitions, truncated, their
indexes and keys dropped for the load and added back after it; the set's files copied in with
each file's sha256 checked on the same read; then the indexes built and the sequences advanced."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.errors import (
    BackupFileError,
    RestoreConflictError,
    RestoreLoadError,
)
from vector_assets.core.hashing import HashingReader
from vector_assets.core.ops.restore.plan import PlannedFile, PlannedTable
from vector_assets.core.ops.restore.request import RestoreRequest, RestoreResult, TableRestore
from vector_assets.core.pg.connection import connection_lost, server_gone
from vector_assets.core.pg.copy import copy_in
from vector_assets.core.pg.ddl import create_table
from vector_assets.core.pg.index_builds import BuildWatch, IndexBuild
from vector_assets.core.pg.indexes import (
    SavedIndex,
    SavedKey,
    add_constraint,
    drop_foreign_keys,
    drop_primary_key,
    drop_secondary_indexes,
    recreate_indexes,
)
from vector_assets.core.pg.store_tables import UserTrigger, hold_triggers
from vector_assets.core.pg.table_changes import (
    advance_owned_sequences,
    truncate_with_brief_waits,
)
from vector_assets.core.progress import CopyEstimate, ProgressReporter, reader_for
from vector_assets.core.sets.collection_filter import CollectionFilter, CollectionRows
from vector_assets.core.sets.formats import DecodingReader


def finish_tables(
    conn: psycopg2.extensions.connection,
    cursor: psycopg2.extensions.cursor,
    request: RestoreRequest,
    planned: list[PlannedTable],
    to_build: list,
    outcomes: dict[str, TableRestore],
    result: RestoreResult,
) -> None:
    """Build the indexes, advance the sequences, and record what each table went through."""
    result.index_builds = _rebuild(conn, cursor, request, to_build, outcomes)
    result.indexes_rebuilt = [build.name for build in result.index_builds]
    result.sequences_advanced = [seq for plan in planned for seq in advance_owned_sequences(cursor, plan.table)]
    result.tables = list(outcomes.values())


def _rebuild(
    conn: psycopg2.extensions.connection,
    cursor: psycopg2.extensions.cursor,
    request: RestoreRequest,
    dropped: list,
    outcomes: dict[str, TableRestore],
) -> list[IndexBuild]:
    """Build the dropped indexes, sized for the rows now in the table and watched if asked."""
    rows = sum(outcomes[table].rows_loaded for table in request.store.vector_tables if table in outcomes)
    watch = BuildWatch(request.target_dsn, conn.get_backend_pid(), request.progress) if request.progress else None
    return recreate_indexes(cursor, dropped, rows, request.index_builds, watch)


def hold_target_triggers(
    cursor: psycopg2.extensions.cursor, request: RestoreRequest, planned: list[PlannedTable], result: RestoreResult
) -> list[UserTrigger]:
    """The tables' own triggers, off while the rows load unless the request lets them fire."""
    if request.fire_triggers:
        return []
    held = hold_triggers(cursor, [plan.table for plan in planned])
    result.triggers_held = [f"{trigger.table}.{trigger.name}" for trigger in held]
    return held


def truncate_tables(cursor: psycopg2.extensions.cursor, planned: list[PlannedTable], outcomes: dict[str, TableRestore]) -> None:
    """Empty the planned tables, recording their rows before as truncated."""
    names = [plan.table for plan in planned]
    truncate_with_brief_waits(cursor, names)
    for name in names:
        outcomes[name].rows_truncated = outcomes[name].rows_before


def create_tables(cursor: psycopg2.extensions.cursor, to_create: list[PlannedTable]) -> list[str]:
    """Create the tables the target lacks from the set's definitions (and pgvector, if it is missing)."""
    if to_create:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
    for plan in to_create:
        try:
            create_table(cursor, plan.definition)
        except psycopg2.OperationalError:
            raise
        except psycopg2.Error as error:
            raise RestoreLoadError(
                f"creating table {plan.table} from the set's definition failed: {str(error).strip()}; nothing was restored"
            ) from None
    return [plan.table for plan in to_create]


def drop_for_the_load(
    cursor: psycopg2.extensions.cursor, vector_tables: tuple[str, ...], emptied: list[str]
) -> tuple[list[SavedIndex], list[SavedKey]]:
    """Indexes and keys of the vector tables that this transaction emptied or created, dropped
    so the load does not maintain them row by row; the keys come back right after it."""
    indexes: list[SavedIndex] = []
    keys: list[SavedKey] = []
    for table in [table for table in emptied if table in vector_tables]:  # load order: parents' keys first
        indexes += drop_secondary_indexes(cursor, table)
        primary_key = drop_primary_key(cursor, table)
        keys += ([primary_key] if primary_key else []) + drop_foreign_keys(cursor, table, held=tuple(emptied))
    return indexes, keys


KEY_KINDS = {"PRIMARY KEY": "primary key", "UNIQUE": "unique constraint", "FOREIGN KEY": "foreign key"}


def add_keys_back(
    cursor: psycopg2.extensions.cursor, keys: list[SavedKey], planned: list[PlannedTable] = ()
) -> None:
    """The keys dropped for the load, back; a repeated or missing key in the set is named here,
    with the file it came from when the table was loaded from one."""
    labels = {plan.table: plan.label for plan in planned}
    for key in keys:
        kind = next((kind for prefix, kind in KEY_KINDS.items() if key.definition.startswith(prefix)), "constraint")
        with _named_conflict(key.table, f"{labels.get(key.table, key.table)} cannot have {kind} {key.name}"):
            add_constraint(cursor, key)


def add_unique_indexes_back(cursor: psycopg2.extensions.cursor, indexes: list[SavedIndex]) -> None:
    """The unique indexes dropped for the load, back; a row that breaks one is named here."""
    for index in indexes:
        with _named_conflict(index.table, f"the restored rows cannot have unique index {index.name}"):
            recreate_indexes(cursor, [index])


@contextmanager
def _named_conflict(table: str, what: str) -> Iterator[None]:
    try:
        yield
    except (psycopg2.IntegrityError, psycopg2.DataError) as error:
        detail = (error.diag.message_detail or error.diag.message_primary or str(error)).strip()
        raise RestoreConflictError(f"table {table}: {what} ({detail}); nothing was restored") from None


def copy_file_into(
    cursor: psycopg2.extensions.cursor,
    plan: PlannedTable,
    table: sql.Composable,
    freeze: bool = False,
    progress: ProgressReporter | None = None,
    only: CollectionRows | None = None,
) -> int:
    """COPY the table's files in, hashing each on the same read; a sha256 mismatch raises
    before commit. With ``only``, just that collection's rows reach COPY (each file's rows are
    still all read, hashed and counted against the manifest).

    Hashing while loading reads a large set once instead of twice. Because the whole restore
    is one transaction, a mismatch found here still leaves the tables exactly as before.
    """
    return sum(_copy_one_file(cursor, plan, file, table, freeze, progress, only) for file in plan.files)


def _copy_one_file(
    cursor: psycopg2.extensions.cursor,
    plan: PlannedTable,
    file: PlannedFile,
    table: sql.Composable,
    freeze: bool,
    progress: ProgressReporter | None,
    only: CollectionRows | None,
) -> int:
    name = file.name
    try:
        with plan.folder.open_reader(name) as handle:
            reader = HashingReader(handle)
            source, meter = reader_for(progress, reader, CopyEstimate("restore", plan.table, file.rows, file.bytes))
            decoded = DecodingReader(file.format, source, name)
            if only is None:
                rows = copy_in(cursor, table, plan.header, decoded, freeze=freeze, options=file.format.copy_options)
            else:
                with CollectionFilter(file.format, decoded, name, only) as filtered:
                    rows = copy_in(cursor, table, plan.header, filtered, freeze=freeze, options=file.format.copy_options)
    except psycopg2.Error as error:  # a damaged file's own error is raised by copy_in, not caught here
        if connection_lost(cursor.connection) or server_gone(error):
            raise  # the connection died: the caller's database_errors says so, retryable
        raise _load_error(name, plan.table, error) from None
    if file.sha256 is not None and reader.hexdigest() != file.sha256:
        raise BackupFileError(f"{name} sha256 does not match the manifest; nothing was restored")
    if only is not None:
        _require_filtered(name, file, filtered, rows)
    if meter is not None:
        meter.finish(rows)
    return rows


def _require_filtered(name: str, file: PlannedFile, walked: CollectionFilter, rows: int) -> None:
    """COPY loaded exactly the rows the filter passed, and every row of the file was walked
    (where the filter counts them: the file's sha256 has been checked whole in any case)."""
    if walked.rows_read not in (None, file.rows):
        raise BackupFileError(f"{name}: {walked.rows_read} rows read where the manifest says {file.rows}; nothing was restored")
    if rows != walked.rows_passed:
        raise BackupFileError(
            f"{name}: COPY loaded {rows} rows of the {walked.rows_passed} of the collection; nothing was restored"
        )


def _load_error(name: str, table: str, error: psycopg2.Error) -> Exception:
    reason = " ".join(str(error).split())  # the server's DETAIL and CONTEXT lines, on the one line
    if isinstance(error, psycopg2.DataError):
        return BackupFileError(f"loading {name} into {table} failed: {reason}")
    if isinstance(error, psycopg2.OperationalError):
        return error
    return RestoreLoadError(f"loading {name} into {table} failed: {reason}")
