"""Incremental backups: the parent, the row index every indexed set carries, and an increment's
files (the rows added or changed since the parent, and the keys deleted since then).

An increment's parent is the newest complete set in the same location, whatever its kind. It is
usable when its manifest reads, it has an intact row index for every table, its own chain is
whole, and every table still has the parent's key and columns. Otherwise the backup is a full
one, and the manifest's ``fallback`` says why.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import psycopg2.extensions

from vector_assets.core.errors import BrokenChainError
from vector_assets.core.pg.catalog import Column, column_names, read_columns
from vector_assets.core.pg.row_digests import RowKey, copy_row_digests, row_key
from vector_assets.core.sets.age_streams import decrypting, encryption_of, open_set_writer
from vector_assets.core.sets.catalog import NewestBackup
from vector_assets.core.sets.chains import chain_of
from vector_assets.core.sets.encryption import EncryptionKeys, IdentityFile, Recipients, name_for
from vector_assets.core.sets.formats import CSV_ZST, EncodingSink
from vector_assets.core.sets.manifest import FilePart, Manifest, RowIndex
from vector_assets.core.sets.naming import (
    data_file_name,
    deleted_keys_file_name,
    row_index_file_name,
    tmp_name,
)
from vector_assets.core.sets.row_index import (
    MergeCounts,
    RowIndexMerge,
    key_batches,
    read_row_index,
    row_index_sha256,
)
from vector_assets.core.sets.storage import HashingWriter, SetFolder

# Keys per COPY of an increment's rows (and so per part file): bounds the statement's size.
KEYS_PER_PART = 100_000


@dataclass(frozen=True)
class Parent:
    timestamp: str
    manifest: Manifest


@dataclass(frozen=True)
class ParentChoice:
    parent: Parent | None
    fallback: str | None  # why there is no usable parent


def choose_parent(
    folder: SetFolder, tables: tuple[str, ...], newest: NewestBackup | None, identity_file: IdentityFile
) -> ParentChoice:
    """The newest complete set in the folder that is not a safety set (``newest``, from
    ``newest_backup_in``), if an increment can be built on it. A restore's or a truncate's safety
    set carries no row index (it is written under the restore's locks, where every second counts)
    and is skipped: an increment on the set before it still restores to exactly the tables as they
    are, since its merge compares with that set's index, not with the database."""
    if newest is None:
        return ParentChoice(None, f"no earlier set in {folder} to build an increment on")
    timestamp, manifest = newest.timestamp, newest.manifest
    if newest.error is not None:
        return ParentChoice(None, f"the newest set {timestamp} cannot be a parent: {newest.error}")
    if manifest is None:
        return ParentChoice(None, f"the newest set {timestamp} is a legacy set, which has no row index")
    if manifest.encrypted and identity_file.path is None:
        return ParentChoice(
            None, f"the newest set {timestamp} is encrypted, and reading its row index needs the identity ({identity_file.source} is not set)"
        )
    try:
        chain_of(folder, timestamp, manifest)
    except BrokenChainError as error:
        return ParentChoice(None, f"the newest set {timestamp} cannot be a parent: {error}")
    for table in tables:
        problem = _row_index_problem(folder, manifest, table)
        if problem:
            return ParentChoice(None, f"the newest set {timestamp} cannot be a parent: {problem}")
    return ParentChoice(Parent(timestamp, manifest), None)


def _row_index_problem(folder: SetFolder, manifest: Manifest, table: str) -> str | None:
    entry = manifest.tables.get(table)
    if entry is None:
        return f"it has no {table}"
    if entry.rows_index is None:
        return f"it has no row index for {table}"
    stored = row_index_sha256(folder, entry.rows_index.file)
    if stored is None:
        return f"its row index {entry.rows_index.file} is missing"
    if stored != entry.rows_index.sha256:
        return f"its row index {entry.rows_index.file} is damaged (sha256 does not match its manifest)"
    return None


def schema_problem(cursor: psycopg2.extensions.cursor, parent: Parent, tables: tuple[str, ...]) -> str | None:
    """Why the tables no longer match the parent (another key or other columns), if they do not."""
    for table in tables:
        entry = parent.manifest.tables[table]
        key = row_key(cursor, table)
        if key is None or key.columns != entry.rows_index.key:
            return f"table {table}'s primary key is not the parent's ({', '.join(entry.rows_index.key)})"
        if read_columns(cursor, table) != entry.columns:
            return f"table {table}'s columns changed since the parent set {parent.timestamp}"
    return None


@dataclass
class IndexedTable:
    """What one table of an indexed set wrote besides its data files."""

    rows_index: RowIndex
    counts: MergeCounts
    writers: list[HashingWriter] = field(default_factory=list)
    deleted_keys: FilePart | None = None
    key: RowKey | None = None  # the primary key the rows were compared by


def write_row_index(
    cursor: psycopg2.extensions.cursor, folder: SetFolder, timestamp: str, table: str, key: RowKey,
    columns: list[Column], written: list[str], recipients: Recipients | None,
) -> IndexedTable:
    """The row index of a set that is no increment: every row's key and digest."""
    name = name_for(row_index_file_name(table, timestamp), recipients)
    written += [tmp_name(name), name]
    writer = open_set_writer(folder, name, recipients)
    try:
        merge = RowIndexMerge(writer)
        copy_row_digests(cursor, table, column_names(columns), key, merge)
        counts = merge.finish()
        byte_count, sha256 = writer.finish()
    except BaseException:
        writer.abandon()
        raise
    index = RowIndex(name, counts.rows, byte_count, sha256, key.columns, counts.content_digest, encryption_of(writer))
    return IndexedTable(index, counts, [writer])


def write_changes(
    cursor: psycopg2.extensions.cursor, folder: SetFolder, timestamp: str, table: str, parent: Parent,
    columns: list[Column], written: list[str], spool: BinaryIO, keys: EncryptionKeys, recipients: Recipients | None,
) -> IndexedTable:
    """Merge the table's digests with the parent's index: the new index, the deleted keys, and
    the keys to export spooled (escaped, one a line) for the set writer to export."""
    key = row_key(cursor, table)
    parent_index = parent.manifest.tables[table].rows_index
    index_name = name_for(row_index_file_name(table, timestamp), recipients)
    deleted_name = name_for(deleted_keys_file_name(table, timestamp), recipients)
    written += [tmp_name(index_name), index_name, tmp_name(deleted_name), deleted_name]
    index_writer = open_set_writer(folder, index_name, recipients)
    deleted_writer = open_set_writer(folder, deleted_name, recipients)
    parent_folder = decrypting(folder, [parent.manifest], keys.identity_file)
    try:
        deleted = EncodingSink(CSV_ZST, deleted_writer)
        merge = RowIndexMerge(index_writer, read_row_index(parent_folder, parent_index.file), spool, deleted)
        copy_row_digests(cursor, table, column_names(columns), key, merge)
        counts = merge.finish()
        deleted.finish()
        index_bytes, index_sha256 = index_writer.finish()
        deleted_bytes, deleted_sha256 = deleted_writer.finish()
    except BaseException:
        index_writer.abandon()
        deleted_writer.abandon()
        raise
    index = RowIndex(index_name, counts.rows, index_bytes, index_sha256, key.columns, counts.content_digest,
                     encryption_of(index_writer))
    deleted_part = FilePart(deleted_name, counts.deleted, deleted_bytes, deleted_sha256, encryption_of(deleted_writer))
    return IndexedTable(index, counts, [index_writer, deleted_writer], deleted_part, key)


def changed_row_files(table: str, timestamp: str, format_name: str, rows: int, recipients: Recipients | None) -> list[str]:
    """One data file for the rows to export, or parts of KEYS_PER_PART keys each."""
    parts = max(1, math.ceil(rows / KEYS_PER_PART))
    if parts == 1:
        return [name_for(data_file_name(table, timestamp, format_name, changes=True), recipients)]
    return [name_for(data_file_name(table, timestamp, format_name, part, changes=True), recipients)
            for part in range(1, parts + 1)]


def key_batches_for(spool: BinaryIO, files: int) -> Iterator[list[tuple[str, ...]]]:
    """One batch of keys per file, read from the spool as each file is written."""
    batches = key_batches(spool, KEYS_PER_PART)
    return (next(batches, []) for _ in range(files))
