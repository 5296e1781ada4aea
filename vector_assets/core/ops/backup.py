"""The backup command: stream the managed tables into a new, consistent, verified-on-write set."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psycopg2.extensions

from vector_assets.core.errors import BackupSetExistsError, BackupWriteError
from vector_assets.core.pg.catalog import (
    Column,
    column_names,
    estimated_size,
    read_columns,
    read_generated_columns,
    server_versions,
)
from vector_assets.core.pg.connection import (
    connect,
    database_errors,
    describe_dsn,
    snapshot_transaction,
)
from vector_assets.core.pg.copy import copy_out
from vector_assets.core.progress import CopyEstimate, ProgressReporter, writer_for
from vector_assets.core.sets.backup_log import (
    TruncateOutcome,
    append_log_block,
    format_log_block,
)
from vector_assets.core.sets.catalog import published_timestamps, timestamps_in_folder
from vector_assets.core.sets.manifest import FULL, Manifest, TableFile
from vector_assets.core.sets.naming import (
    Location,
    csv_file_name,
    manifest_file_name,
    new_timestamp,
    timestamp_time,
    validate_task_id,
    validate_timestamp,
)
from vector_assets.core.sets.storage import (
    HashingFileWriter,
    prepare_folder,
    publish,
    remove_quietly,
    tmp_path_for,
    write_tmp_file,
    writing_under,
)
from vector_assets.core.tables import MANAGED_TABLES, validate_tables

TIMESTAMP_RETRIES = 3


@dataclass(frozen=True)
class BackupRequest:
    """What to back up and where. The CLI, the Dagster op and the tests all build this."""

    dsn: str
    root: Path
    task_id: str | None = None
    tables: tuple[str, ...] = MANAGED_TABLES
    timestamp: str | None = None
    progress: ProgressReporter | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tables", validate_tables(self.tables))
        object.__setattr__(self, "root", Path(self.root))
        if self.timestamp is not None:
            validate_timestamp(self.timestamp)
        if self.task_id is not None:
            validate_task_id(self.task_id)

    @property
    def location(self) -> Location:
        return Location(self.task_id)


@dataclass(frozen=True)
class BackupResult:
    folder: Path
    manifest: Manifest
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def timestamp(self) -> str:
        return self.manifest.timestamp

    @property
    def total_bytes(self) -> int:
        return sum(entry.bytes for entry in self.manifest.tables.values())

    @property
    def megabytes_per_second(self) -> float:
        seconds = max(self.manifest.duration_seconds, 1e-6)
        return self.total_bytes / 1_000_000 / seconds


def run_backup(request: BackupRequest) -> BackupResult:
    """Export every requested table inside one REPEATABLE READ snapshot, then publish the set."""
    folder = request.location.folder(request.root)
    prepare_folder(folder)
    with writing_under(folder):
        timestamp = free_timestamp(folder, request.timestamp)
    conn = connect(request.dsn)
    try:
        with database_errors(conn, "during the backup"), snapshot_transaction(conn) as cursor:
            return write_set(
                cursor,
                SetTarget(
                    folder, request.location, timestamp, describe_dsn(request.dsn).as_dict(), progress=request.progress
                ),
                request.tables,
            )
    finally:
        conn.close()


@dataclass(frozen=True)
class SetTarget:
    """Where a new set goes and what to record about its source (never a password)."""

    folder: Path
    location: Location
    timestamp: str
    source: dict[str, str]
    kind: str = FULL
    progress: ProgressReporter | None = field(default=None, compare=False)


def write_set(
    cursor: psycopg2.extensions.cursor,
    target: SetTarget,
    tables: Iterable[str],
    truncate_plan: list[TruncateOutcome] | None = None,
) -> BackupResult:
    """Copy tables to tmp files, then publish CSVs, log and manifest, the manifest last.

    The caller owns the transaction, so a guarded truncate can run this under its locks.
    The manifest's own tmp file is written before any CSV is renamed, so a scanner never sees
    the CSV pair without a marker and mistakes a set in progress for a complete legacy set.
    On any failure every file of the set is removed again.
    """
    started = time.monotonic()
    manifest_path = target.folder / manifest_file_name(target.timestamp)
    written: list[Path] = [tmp_path_for(manifest_path)]
    try:
        with writing_under(target.folder):
            manifest = _write_and_publish(cursor, target, tables, truncate_plan, started, written)
    except BaseException:
        for path in written:
            remove_quietly(path)
        raise
    paths = {table: target.folder / entry.file for table, entry in manifest.tables.items()}
    return BackupResult(folder=target.folder, manifest=manifest, paths=paths)


def _write_and_publish(
    cursor: psycopg2.extensions.cursor,
    target: SetTarget,
    tables: Iterable[str],
    truncate_plan: list[TruncateOutcome] | None,
    started: float,
    written: list[Path],
) -> Manifest:
    server_version, pgvector_version = server_versions(cursor)
    manifest_path = target.folder / manifest_file_name(target.timestamp)
    entries = _copy_tables(cursor, target, tables, written)
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
    )
    write_tmp_file(manifest_path, manifest.to_json().encode())
    for entry in entries.values():
        final_path = target.folder / entry.file
        written.append(final_path)
        publish(tmp_path_for(final_path), final_path)
    append_log_block(target.folder, _log_block(target, manifest, truncate_plan))
    publish(tmp_path_for(manifest_path), manifest_path)
    return manifest


def _copy_tables(
    cursor: psycopg2.extensions.cursor, target: SetTarget, tables: Iterable[str], written: list[Path]
) -> dict[str, TableFile]:
    entries: dict[str, TableFile] = {}
    for table in tables:
        columns = read_columns(cursor, table)
        file_name = csv_file_name(table, target.timestamp)
        tmp_path = tmp_path_for(target.folder / file_name)
        written.append(tmp_path)
        started = time.monotonic()
        rows, byte_count, sha256 = copy_table_to_file(cursor, table, columns, tmp_path, target.progress)
        seconds = time.monotonic() - started
        generated = read_generated_columns(cursor, table)
        entries[table] = TableFile(table, file_name, rows, byte_count, sha256, columns, generated, seconds)
    return entries


def copy_table_to_file(
    cursor: psycopg2.extensions.cursor,
    table: str,
    columns: list[Column],
    path: Path,
    progress: ProgressReporter | None = None,
) -> tuple[int, int, str]:
    """Stream one table into ``path``, hashed on the way: (rows, bytes, sha256)."""
    expected_rows, relation_bytes = estimated_size(cursor, table) if progress else (None, 0)
    writer = HashingFileWriter(path)
    try:
        sink, meter = writer_for(progress, writer, CopyEstimate("backup", table, expected_rows, relation_bytes))
        rows = copy_out(cursor, table, column_names(columns), sink)
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
    )


def free_timestamp(folder: Path, requested: str | None) -> str:
    """The requested timestamp if unused; otherwise now, waiting out a same-second clash.

    A requested timestamp may reuse one with only ``.tmp`` leftovers (rerunning a killed
    backup). A chosen one never does: those files may be another process's backup in progress,
    and sharing its timestamp would write into its files.
    """
    if requested is not None:
        if requested in published_timestamps(folder):
            raise BackupSetExistsError(f"a backup set {requested} already exists in {folder}")
        return requested
    for _ in range(TIMESTAMP_RETRIES):
        candidate = new_timestamp()
        if candidate not in timestamps_in_folder(folder):
            return candidate
        time.sleep(1.0)
    raise BackupWriteError(f"could not find a free timestamp in {folder}")
