"""Writing a new set: the timestamp it is written under, where it goes (``SetTarget``), and
``write_set``: every table's data files (whole, in parts from one snapshot, or an increment's
changed rows), its row index, then the log block, and the manifest last.

The caller owns the transaction, so a backup, a guarded truncate and a restore's safety set all
write through here, each in its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import psycopg2.extensions

from vector_assets.core.errors import BackupSetExistsError, BackupWriteError, TableShapeError
from vector_assets.core.pg.catalog import (
    Column,
    column_names,
    estimated_size,
    read_columns,
    read_generated_columns,
    server_versions,
)
from vector_assets.core.pg.copy import copy_out
from vector_assets.core.pg.data_checks import DataCheckPlan, DataChecks
from vector_assets.core.pg.ddl import read_table_definition
from vector_assets.core.pg.parts import (
    BlockRange,
    at_snapshot,
    block_ranges,
    copy_part_out,
    export_snapshot,
    table_bytes,
)
from vector_assets.core.pg.row_changes import copy_rows_with_keys
from vector_assets.core.pg.row_digests import row_key
from vector_assets.core.pg.store_tables import load_order, rows_a_copy_would_miss
from vector_assets.core.progress import CopyEstimate, ProgressReporter, writer_for
from vector_assets.core.sets.age_streams import EncryptingWriter, encryption_of, open_set_writer
from vector_assets.core.sets.backup_log import (
    TruncateOutcome,
    append_log_block,
    format_log_block,
)
from vector_assets.core.sets.catalog import published_timestamps, timestamps_in_folder
from vector_assets.core.sets.encryption import EncryptionKeys, Recipients, name_for
from vector_assets.core.sets.formats import CSV, EncodingSink, SetFormat, set_format
from vector_assets.core.sets.increments import (
    IndexedTable,
    Parent,
    changed_row_files,
    key_batches_for,
    write_changes,
    write_row_index,
)
from vector_assets.core.sets.manifest import (
    COMPOSITE_KEY_VERSION,
    ENCRYPTED_VERSION,
    FULL,
    INCREMENT_VERSION,
    INCREMENTAL,
    MANIFEST_FORMAT_VERSION,
    NEWER_FORMATS_VERSION,
    FilePart,
    Manifest,
    TableFile,
)
from vector_assets.core.sets.naming import (
    Location,
    data_file_name,
    manifest_file_name,
    new_timestamp,
    timestamp_time,
    tmp_name,
)
from vector_assets.core.sets.roots import discard_set, remove_quietly, writing_to
from vector_assets.core.sets.row_index import spooled_keys
from vector_assets.core.sets.storage import HashingWriter, SetFolder
from vector_assets.core.units import count_of

TIMESTAMP_RETRIES = 3
# A table larger than this (heap bytes) is exported in parts, in the newer formats only.
DEFAULT_PART_BYTES = 64 * 1024 * 1024
DEFAULT_PARALLEL_PARTS = 4


def free_timestamp(folder: SetFolder, requested: str | None, names: list[str] | None = None) -> str:
    """The requested timestamp if unused; otherwise now, waiting out a same-second clash.
    ``names``: the folder's listing, when the caller has just taken it.

    A requested timestamp may reuse one with only ``.tmp`` leftovers (rerunning a killed
    backup). A chosen one never does: those files may be another process's backup in progress,
    and sharing its timestamp would write into its files.
    """
    names = folder.names() if names is None else names
    if requested is not None:
        if requested in published_timestamps(folder, names):
            raise BackupSetExistsError(f"a backup set {requested} already exists in {folder}")
        return requested
    for _ in range(TIMESTAMP_RETRIES):
        candidate = new_timestamp()
        if candidate not in timestamps_in_folder(folder, names):
            return candidate
        time.sleep(1.0)
        names = folder.names()  # a set may have started in the second waited out
    raise BackupWriteError(f"could not find a free timestamp in {folder}")


@dataclass(frozen=True)
class PartPolicy:
    """When a table is split into parts, and how many are exported at once."""

    part_bytes: int = DEFAULT_PART_BYTES
    max_parts: int = DEFAULT_PARALLEL_PARTS


@dataclass(frozen=True)
class BackupResult:
    """A set just written: a backup's, or a guarded truncate's or a restore's safety set."""

    folder: SetFolder
    manifest: Manifest
    paths: dict[str, Path | str] = field(default_factory=dict)  # where each table's file is, for people

    @property
    def timestamp(self) -> str:
        return self.manifest.timestamp

    @property
    def total_bytes(self) -> int:
        return sum(entry.bytes for entry in self.manifest.tables.values())

    def discard(self, log_before: bytes | None) -> None:
        """Remove this set, written moments ago and not needed after all (a rolled-back restore's
        safety set, a dry run's), and put the log back as it was (``None``: it did not exist)."""
        data_files = tuple(piece.file for entry in self.manifest.tables.values() for piece in entry.pieces)
        discard_set(self.folder, self.timestamp, log_before, data_files)

    @property
    def megabytes_per_second(self) -> float:
        seconds = max(self.manifest.duration_seconds, 1e-6)
        return self.total_bytes / 1_000_000 / seconds


@dataclass(frozen=True)
class SetTarget:
    """Where a new set goes and what to record about its source (never a password)."""

    folder: SetFolder
    location: Location
    timestamp: str
    source: dict[str, str]
    kind: str = FULL
    format: str = CSV.name
    parts: PartPolicy = PartPolicy()
    dsn: str | None = field(default=None, repr=False)  # lets parts read on connections of their own
    progress: ProgressReporter | None = field(default=None, compare=False)
    row_index: bool = False  # write each table's row index (always, for an increment)
    parent: Parent | None = None  # an increment's parent
    fallback: str | None = None  # why an incremental backup became a full one
    absent_collections: tuple[str, ...] = ()  # see Manifest.absent_collections
    encrypt_to: Recipients | None = None  # every file of the set is encrypted to these
    keys: EncryptionKeys = EncryptionKeys()  # an increment reads its parent's row index with the identity
    store: str | None = None  # the store the tables are of, and its layout: a restore into another is refused
    layout: str | None = None
    data_checks: DataCheckPlan | None = None  # count the broken rows of these tables in the same snapshot

    @property
    def set_format(self) -> SetFormat:
        return set_format(self.format)


def write_set(
    cursor: psycopg2.extensions.cursor,
    target: SetTarget,
    tables: Iterable[str],
    truncate_plan: list[TruncateOutcome] | None = None,
) -> BackupResult:
    """Stream the tables into data files, then publish them, the log and the manifest last.

    The caller owns the transaction, so a guarded truncate can run this under its locks.
    Until the manifest is published the set is hidden by a ``.tmp`` name: on disk the data
    files' own until the manifest's tmp file exists; in an object store, where a data object
    is visible once uploaded, a marker object written first. So a scanner never sees the CSV
    pair without a marker and mistakes a set in progress for a complete legacy set.
    On any failure every file of the set is removed again.
    """
    started = time.monotonic()
    tables = tuple(tables)
    _refuse_rows_a_copy_would_miss(cursor, tables)
    folder = target.folder
    marker = tmp_name(manifest_file_name(target.timestamp))
    written: list[str] = [marker]
    try:
        with writing_to(folder):
            if folder.capabilities.files_visible_when_written:
                folder.write_bytes(marker, b"")  # before the first upload, which is visible at once
            ordered = load_order(cursor, tables)  # the manifest keeps it: the restore's load order
            manifest = _write_and_publish(cursor, target, ordered, truncate_plan, started, written)
            folder.remove(marker)
    except BaseException:
        # Newest first: the manifest goes before the data, the marker last, so a cleanup cut
        # short leaves a hidden set, never a listed one with files missing.
        for name in reversed(written):
            remove_quietly(folder, name)
        raise
    paths = {table: folder.locator(entry.file) for table, entry in manifest.tables.items()}
    return BackupResult(folder=folder, manifest=manifest, paths=paths)


def _refuse_rows_a_copy_would_miss(cursor: psycopg2.extensions.cursor, tables: Iterable[str]) -> None:
    for table in tables:
        problem = rows_a_copy_would_miss(cursor, table)
        if problem:
            raise TableShapeError(problem)


def _write_and_publish(
    cursor: psycopg2.extensions.cursor,
    target: SetTarget,
    tables: Iterable[str],
    truncate_plan: list[TruncateOutcome] | None,
    started: float,
    written: list[str],
) -> Manifest:
    server_version, pgvector_version = server_versions(cursor)
    writers = _copy_tables(cursor, target, tables, written)
    entries = {table: entry for table, (entry, _) in writers.items()}
    manifest = Manifest(
        timestamp=target.timestamp,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        location=target.location.label,
        source=target.source,
        server_version=server_version,
        pgvector_version=pgvector_version,
        consistent_snapshot=True,
        duration_seconds=time.monotonic() - started,
        tables=entries,
        kind=target.kind,
        format=target.format,
        format_version=_format_version(target, entries),
        parent=target.parent.timestamp if target.parent else None,
        fallback=target.fallback,
        absent_collections=target.absent_collections,
        store=target.store,
        layout=target.layout,
    )
    manifest_name = manifest_file_name(target.timestamp)
    body = manifest.to_json().encode()
    if not target.folder.capabilities.files_visible_when_written:
        target.folder.write_bytes(tmp_name(manifest_name), b"")  # before the tmp files are renamed
    for _, table_writers in writers.values():
        for writer in table_writers:
            writer.publish()
    append_log_block(target.folder, _log_block(target, manifest, truncate_plan))
    written.append(manifest_name)
    target.folder.write_bytes(manifest_name, body)
    return manifest


def _format_version(target: SetTarget, entries: dict[str, TableFile]) -> int:
    if target.kind == INCREMENTAL and any(
        entry.rows_index is not None and entry.rows_index.composite_key for entry in entries.values()
    ):
        return COMPOSITE_KEY_VERSION
    if target.encrypt_to is not None:
        return ENCRYPTED_VERSION
    if target.kind == INCREMENTAL:
        return INCREMENT_VERSION
    return MANIFEST_FORMAT_VERSION if target.set_format.legacy else NEWER_FORMATS_VERSION


def _copy_tables(
    cursor: psycopg2.extensions.cursor, target: SetTarget, tables: Iterable[str], written: list[str]
) -> dict[str, tuple[TableFile, list[HashingWriter]]]:
    copied: dict[str, tuple[TableFile, list[HashingWriter]]] = {}
    snapshot: list[str] = []  # exported once, when the first table is split into parts
    for table in tables:
        columns = read_columns(cursor, table)
        started = time.monotonic()
        checks = None
        if target.parent is not None:
            copies, indexed = _copy_changes(cursor, target, table, columns, written)
        else:
            ranges = _part_ranges(cursor, target, table)
            if len(ranges) > 1:
                snapshot = snapshot or [export_snapshot(cursor)]
                copies, checks = _copy_parts_while_checking(cursor, target, snapshot[0], table, columns, ranges, written)
            else:
                copies = [_copy_whole_table(cursor, target, table, columns, written)]
            indexed = _index_rows(cursor, target, table, columns, written)
        seconds = time.monotonic() - started
        if checks is None and target.data_checks:
            checks = target.data_checks.check(cursor, table)
        parts = [part for part, _ in copies]
        generated = read_generated_columns(cursor, table)
        definition = read_table_definition(cursor, table)
        rows, byte_count = sum(part.rows for part in parts), sum(part.bytes for part in parts)
        entry = TableFile(
            table, parts[0].file, rows, byte_count, parts[0].sha256 if len(parts) == 1 else "",
            columns, generated, definition, parts=parts if len(parts) > 1 else [], copy_seconds=seconds,
            rows_index=indexed.rows_index if indexed else None, deleted_keys=indexed.deleted_keys if indexed else None,
            encrypted=parts[0].encrypted if len(parts) == 1 else None, data_checks=checks,
        )
        side_writers = indexed.writers if indexed else []
        copied[table] = (entry, [writer for _, writer in copies] + side_writers)
    return copied


def _index_rows(
    cursor: psycopg2.extensions.cursor, target: SetTarget, table: str, columns: list[Column], written: list[str]
) -> IndexedTable | None:
    """A set that is no increment gets a row index if asked and the table has a primary key."""
    key = row_key(cursor, table) if target.row_index and target.kind == FULL else None
    if key is None:
        return None
    return write_row_index(cursor, target.folder, target.timestamp, table, key, columns, written, target.encrypt_to)


def _copy_changes(
    cursor: psycopg2.extensions.cursor, target: SetTarget, table: str, columns: list[Column], written: list[str]
) -> tuple[list[tuple[FilePart, HashingWriter]], IndexedTable]:
    """An increment's table: merge digests with the parent's index, then export the rows whose
    keys the merge spooled, in one file or in parts of KEYS_PER_PART keys."""
    with spooled_keys() as spool:
        indexed = write_changes(cursor, target.folder, target.timestamp, table, target.parent, columns, written, spool,
                                target.keys, target.encrypt_to)
        key = indexed.key
        names = changed_row_files(table, target.timestamp, target.format, indexed.counts.to_export, target.encrypt_to)
        copies = []
        for name, keys in zip(names, key_batches_for(spool, len(names))):
            written += [tmp_name(name), name]
            writer = open_set_writer(target.folder, name, target.encrypt_to)
            copy = partial(copy_rows_with_keys, cursor, table, column_names(columns), key, keys,
                           options=target.set_format.copy_options)
            rows, byte_count, sha256 = copy_table_into(writer, target.set_format, copy)
            copies.append((FilePart(name, rows, byte_count, sha256, encryption_of(writer)), writer))
    if sum(part.rows for part, _ in copies) != indexed.counts.to_export:
        raise BackupWriteError(f"table {table}: the increment found {count_of(indexed.counts.to_export, 'row')} to export but copied "
                               f"{sum(part.rows for part, _ in copies)}")
    return copies, indexed


def _part_ranges(cursor: psycopg2.extensions.cursor, target: SetTarget, table: str) -> list[BlockRange]:
    """One range (the whole table) unless the table is large, the format is a newer one and
    the parts can read on connections of their own."""
    if target.set_format.legacy or target.dsn is None or table_bytes(cursor, table) <= target.parts.part_bytes:
        return [BlockRange(0, None)]
    return block_ranges(cursor, table, target.parts.part_bytes, target.parts.max_parts)


def _copy_whole_table(
    cursor: psycopg2.extensions.cursor, target: SetTarget, table: str, columns: list[Column], written: list[str]
) -> tuple[FilePart, HashingWriter]:
    file_name = name_for(data_file_name(table, target.timestamp, target.format), target.encrypt_to)
    written += [tmp_name(file_name), file_name]  # an upload is visible under its final name
    writer = open_set_writer(target.folder, file_name, target.encrypt_to)
    expected_rows, relation_bytes = estimated_size(cursor, table) if target.progress else (None, 0)
    meter_for = _meter_factory(target.progress, table, expected_rows, relation_bytes)
    copy = partial(copy_out, cursor, table, column_names(columns), options=target.set_format.copy_options)
    rows, byte_count, sha256 = copy_table_into(writer, target.set_format, copy, meter_for)
    return FilePart(file_name, rows, byte_count, sha256, encryption_of(writer)), writer


def _copy_parts_while_checking(
    cursor: psycopg2.extensions.cursor, target: SetTarget, snapshot: str, table: str, columns: list[Column],
    ranges: list[BlockRange], written: list[str],
) -> tuple[list[tuple[FilePart, HashingWriter]], DataChecks | None]:
    """The parts go out on connections of their own; meanwhile the snapshot's own connection,
    otherwise idle, counts the data checks in the same snapshot."""
    if not target.data_checks:
        return _copy_parts(target, snapshot, table, columns, ranges, written), None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"check {table}") as side:
        checking = side.submit(target.data_checks.check, cursor, table)
        copies = _copy_parts(target, snapshot, table, columns, ranges, written)
        return copies, checking.result()


def _copy_parts(
    target: SetTarget, snapshot: str, table: str, columns: list[Column], ranges: list[BlockRange], written: list[str]
) -> list[tuple[FilePart, HashingWriter]]:
    names = [name_for(data_file_name(table, target.timestamp, target.format, part), target.encrypt_to)
             for part in range(1, len(ranges) + 1)]
    for name in names:
        written += [tmp_name(name), name]

    def copy_part(name: str, blocks: BlockRange) -> tuple[FilePart, HashingWriter]:
        writer = open_set_writer(target.folder, name, target.encrypt_to)
        meter_for = _meter_factory(target.progress, name, None, None)
        with at_snapshot(target.dsn, snapshot) as part_cursor:
            names = column_names(columns)
            copy = partial(copy_part_out, part_cursor, table, names, blocks, options=target.set_format.copy_options)
            rows, byte_count, sha256 = copy_table_into(writer, target.set_format, copy, meter_for)
        return FilePart(name, rows, byte_count, sha256, encryption_of(writer)), writer

    with ThreadPoolExecutor(max_workers=len(ranges), thread_name_prefix=f"export {table}") as pool:
        return list(pool.map(copy_part, names, ranges))


def _meter_factory(progress: ProgressReporter | None, label: str, expected_rows: int | None, expected_bytes: int | None):
    """Wraps the COPY's own sink (rows as the server sends them, before any compression)."""
    return lambda sink: writer_for(progress, sink, CopyEstimate("backup", label, expected_rows, expected_bytes))


def copy_table_into(
    writer: HashingWriter | EncryptingWriter, fmt: SetFormat, copy: Callable[..., int], meter_for=None
) -> tuple[int, int, str]:
    """Stream what ``copy(sink=...)`` sends (a table, a block range of it, or chosen rows) into a
    writer in ``fmt``, hashed on the way as stored: (rows, bytes, sha256)."""
    try:
        encoder = EncodingSink(fmt, writer)
        sink, meter = meter_for(encoder) if meter_for else (encoder, None)
        rows = copy(sink=sink)
        encoder.finish()
        byte_count, sha256 = writer.finish()
    except BaseException:
        writer.abandon()
        raise
    if meter is not None:
        meter.finish(rows)
    return rows, byte_count, sha256


def _log_block(target: SetTarget, manifest: Manifest, truncate_plan: list[TruncateOutcome] | None) -> str:
    return format_log_block(
        backup_time=timestamp_time(target.timestamp),
        task_id=target.location.task_id,
        database=target.source.get("database", ""),
        duration_seconds=manifest.duration_seconds,
        tables=manifest.tables,
        truncated=truncate_plan,
        increment_of=manifest.parent if manifest.is_increment else None,
        fallback=manifest.fallback,
    )
