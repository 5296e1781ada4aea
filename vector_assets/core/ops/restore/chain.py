"""Restoring an increment: its chain's base set is loaded as any set is, then each increment is
applied in order (changed rows upserted, deleted keys deleted), all in the restore's one
transaction. At the end every table must hold exactly the rows and the content digest the
increment's manifest records; otherwise the restore rolls back.

The chain applies to the tables in place (``apply_chain_in_place``) or to one table's stage
(``apply_chain_to_stage``); it is planned with the tables (``plan.split_chain``, ``plan.plan_increments``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.errors import BackupFileError
from vector_assets.core.hashing import HashingReader
from vector_assets.core.ops.restore.load import add_keys_back, add_unique_indexes_back, copy_file_into
from vector_assets.core.ops.restore.plan import PlannedFile, PlannedIncrement, PlannedTable
from vector_assets.core.ops.restore.request import RestoreRequest, TableRestore
from vector_assets.core.pg.catalog import table_identifier
from vector_assets.core.pg.copy import copy_in
from vector_assets.core.pg.indexes import (
    SavedIndex,
    SavedKey,
    drop_foreign_keys,
    drop_unique_constraints,
    drop_unique_indexes,
)
from vector_assets.core.pg.row_changes import (
    AppliedChanges,
    analyze,
    create_key_stage,
    delete_keys,
    drop_stage,
    upsert_rows,
)
from vector_assets.core.pg.row_digests import content_digest
from vector_assets.core.pg.table_changes import create_stage
from vector_assets.core.progress import ProgressReporter
from vector_assets.core.sets.formats import CSV_ZST, DecodingReader
from vector_assets.core.sets.manifest import RowIndex
from vector_assets.core.sets.storage import SetFolder
from vector_assets.core.units import count_of

TEXT_COPY_OPTIONS = "FORMAT text"


def apply_increment(
    cursor: psycopg2.extensions.cursor,
    table: str,
    relation: sql.Composable,
    increment: PlannedIncrement,
    columns: list[str],
    load_changed: Callable[[list, sql.Identifier, SetFolder], int],
    *,
    upserts: bool = True,
    deletes: bool = True,
) -> AppliedChanges:
    """Upsert one increment's changed rows of a table into ``relation`` (the table or a stage),
    then delete its deleted keys; either step alone when the caller orders them across tables."""
    applied = AppliedChanges()
    if upserts:
        changed = create_stage(cursor, table, name=f"increment_{increment.timestamp}_{table}")
        rows = load_changed(increment.changed, changed, increment.folder)
        if rows != sum(file.rows or 0 for file in increment.changed):
            raise BackupFileError(f"increment {increment.timestamp}: {table}'s changed rows do not match its manifest")
        analyze(cursor, changed)
        applied = upsert_rows(cursor, relation, changed, columns, increment.key)
        drop_stage(cursor, changed)
    if deletes:
        keys = create_key_stage(cursor, f"increment_{increment.timestamp}_{table}_deleted", increment.key)
        _load_deleted_keys(cursor, increment, keys)
        analyze(cursor, keys)
        applied.deleted = delete_keys(cursor, relation, keys, increment.key)
        drop_stage(cursor, keys)
    return applied


def _load_deleted_keys(cursor: psycopg2.extensions.cursor, increment: PlannedIncrement, keys: sql.Identifier) -> None:
    name = increment.deleted.file
    try:
        with increment.folder.open_reader(name) as handle:
            reader = HashingReader(handle)
            decoded = DecodingReader(CSV_ZST, reader, name)
            rows = copy_in(cursor, keys, list(increment.key.columns), decoded, options=TEXT_COPY_OPTIONS)
    except psycopg2.Error as error:  # a damaged file's own error is raised by copy_in, not caught here
        if isinstance(error, psycopg2.OperationalError):
            raise
        raise BackupFileError(f"{name} is not a deleted keys file: {str(error).strip()}") from None
    if reader.hexdigest() != increment.deleted.plain_sha256 or rows != increment.deleted.rows:
        raise BackupFileError(f"{name} does not match its manifest (sha256 or row count); nothing was restored")


def verify_final(cursor: psycopg2.extensions.cursor, table: str, relation: sql.Composable, columns: list[str],
                 final: RowIndex, timestamp: str) -> int:
    """The rows and content digest the increment's manifest records, or a refusal; returns the rows."""
    rows, digest = content_digest(cursor, table, relation, columns)
    if rows != final.rows or digest != final.content_digest:
        raise BackupFileError(
            f"table {table} after applying the chain up to {timestamp} has {count_of(rows, 'row')} and content digest {digest}; "
            f"the manifest says {count_of(final.rows, 'row')} and {final.content_digest}; nothing was restored"
        )
    return rows


def apply_chain_in_place(
    cursor: psycopg2.extensions.cursor, plans: list[PlannedTable], outcomes: dict[str, TableRestore],
    request: RestoreRequest,
) -> None:
    """Each increment across the tables in turn: its deleted keys, then its changed rows.

    An increment holds the rows as they are at its two ends, never the order of the writes in
    between: a collection deleted and created again under its name with a new uuid, two names
    swapped, a key taken by another row. So the foreign keys between the tables, the unique
    constraints and the unique indexes are off while the chain applies (this transaction
    emptied or created the tables, so it holds them), and come back after the last increment,
    checking every row at once. The primary keys stay: each increment keys its rows by them.
    """
    if not plans or not plans[0].increments:
        return
    started = time.monotonic()
    keys, unique_indexes = _relax_for_the_chain(cursor, [plan.table for plan in plans])
    for step in range(len(plans[0].increments)):
        for plan in reversed(plans):
            apply_increment(cursor, plan.table, table_identifier(plan.table), plan.increments[step], plan.header,
                            partial(_load_files, cursor, plan, request.progress), upserts=False)
        for plan in plans:
            apply_increment(cursor, plan.table, table_identifier(plan.table), plan.increments[step], plan.header,
                            partial(_load_files, cursor, plan, request.progress), deletes=False)
    for plan in plans:
        outcomes[plan.table].rows_loaded = verify_final(
            cursor, plan.table, table_identifier(plan.table), plan.header, plan.final, plan.increments[-1].timestamp
        )
    add_keys_back(cursor, keys)
    add_unique_indexes_back(cursor, unique_indexes)
    for plan in plans:
        outcomes[plan.table].duration_seconds += (time.monotonic() - started) / len(plans)


def _relax_for_the_chain(cursor: psycopg2.extensions.cursor, held: list[str]) -> tuple[list[SavedKey], list[SavedIndex]]:
    """Foreign keys between the held tables first (they may rely on a unique constraint), then
    unique constraints and unique indexes."""
    foreign = [key for table in held for key in drop_foreign_keys(cursor, table, held=tuple(held))]
    unique = [key for table in held for key in drop_unique_constraints(cursor, table)]
    indexes = [index for table in held for index in drop_unique_indexes(cursor, table)]
    return unique + foreign, indexes


def apply_chain_to_stage(
    cursor: psycopg2.extensions.cursor, plan: PlannedTable, stage: sql.Identifier, progress: ProgressReporter | None
) -> int:
    """A stage holds one table, with no foreign key to keep: its increments apply one after the other."""
    for increment in plan.increments:
        apply_increment(cursor, plan.table, stage, increment, plan.header, partial(_load_files, cursor, plan, progress))
    return verify_final(cursor, plan.table, stage, plan.header, plan.final, plan.increments[-1].timestamp)


def _load_files(
    cursor: psycopg2.extensions.cursor, plan: PlannedTable, progress: ProgressReporter | None,
    files: list[PlannedFile], relation: sql.Identifier, folder: SetFolder,
) -> int:
    """An increment's changed rows, loaded like a set's files (sha256 checked on the same read)."""
    return copy_file_into(cursor, replace(plan, files=files, folder=folder), relation, progress=progress)
