"""Restoring an increment: its chain's base set is loaded as any set is, then each increment is
applied in order (changed rows upserted, deleted keys deleted), all in the restore's one
transaction. At the end every table must hold exactly the rows and the content digest the
increment's manifest records; otherwise the restore rolls back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.errors import BackupFileError, BrokenChainError, IncompleteBackupSetError
from vector_assets.core.hashing import HashingReader
from vector_assets.core.pg.copy import copy_in
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
from vector_assets.core.sets.catalog import BackupSet
from vector_assets.core.sets.chains import ChainLink, chain_of
from vector_assets.core.sets.formats import CSV_ZST, DecodingReader
from vector_assets.core.sets.manifest import FilePart, RowIndex
from vector_assets.core.sets.roots import SetFolder
from vector_assets.core.units import count_of

TEXT_COPY_OPTIONS = "FORMAT text"


@dataclass(frozen=True)
class PlannedIncrement:
    """One increment's part of a table: the changed rows (files like a set's) and the deleted keys."""

    timestamp: str
    folder: SetFolder
    changed: list  # PlannedFile, in load order
    deleted: FilePart
    key: str
    key_type: str


def split_chain(backup_set: BackupSet) -> tuple[BackupSet, list[ChainLink]]:
    """(the base set to load first, the increments to apply after it, oldest first)."""
    if backup_set.manifest is None or not backup_set.manifest.is_increment:
        return backup_set, []
    links = chain_of(backup_set.folder, backup_set.timestamp, backup_set.manifest)
    base = links[0]
    base_set = BackupSet(base.timestamp, base.timestamp, backup_set.location, backup_set.folder, base.manifest)
    return base_set, links[1:]


def plan_increments(
    folder: SetFolder, table: str, links: list[ChainLink], plan_file: Callable[[str, FilePart], object]
) -> tuple[list[PlannedIncrement], RowIndex | None]:
    """The table's part of each increment, its files checked present; and what the table must
    hold at the end (the newest increment's row index)."""
    planned = []
    for link in links:
        entry = link.manifest.tables.get(table)
        if entry is None or entry.rows_index is None or entry.deleted_keys is None:
            raise BrokenChainError(f"increment {link.timestamp} in {folder} has no {table} changes; the chain cannot be restored")
        if folder.size(entry.deleted_keys.file) is None:
            raise IncompleteBackupSetError(f"increment {link.timestamp} is missing {entry.deleted_keys.file} in {folder}")
        key_type = next(column.type for column in entry.columns if column.name == entry.rows_index.key)
        changed = [plan_file(piece.file, piece) for piece in entry.pieces]
        planned.append(PlannedIncrement(link.timestamp, folder, changed, entry.deleted_keys, entry.rows_index.key, key_type))
    final = links[-1].manifest.tables[table].rows_index if links else None
    return planned, final


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
        keys = create_key_stage(cursor, f"increment_{increment.timestamp}_{table}_deleted", increment.key_type)
        _load_deleted_keys(cursor, increment, keys)
        analyze(cursor, keys)
        applied.deleted = delete_keys(cursor, relation, keys, increment.key)
        drop_stage(cursor, keys)
    return applied


def _load_deleted_keys(cursor: psycopg2.extensions.cursor, increment: PlannedIncrement, keys: sql.Identifier) -> None:
    name = increment.deleted.file
    decoded = None
    try:
        with increment.folder.open_reader(name) as handle:
            reader = HashingReader(handle)
            decoded = DecodingReader(CSV_ZST, reader, name)
            rows = copy_in(cursor, keys, ["key"], decoded, options=TEXT_COPY_OPTIONS)
    except psycopg2.Error as error:
        if decoded is not None and decoded.failure is not None:
            raise decoded.failure from None
        if isinstance(error, psycopg2.OperationalError):
            raise
        raise BackupFileError(f"{name} is not a deleted keys file: {str(error).strip()}") from None
    if reader.hexdigest() != increment.deleted.sha256 or rows != increment.deleted.rows:
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
