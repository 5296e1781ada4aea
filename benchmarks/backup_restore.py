"""The benchmark behind ``make bench``: our backup and restore against psql ``\\copy`` and pg_dump.

It runs on its own embedded server in ``.vector_assets/bench`` so it never touches dev data.
The design targets are: a backup takes at most 1.10 x the time of psql ``\\copy`` of both
tables, and the peak RSS of a backup of 4N rows is at most 1.2 x that of N rows (memory stays
flat). Our backup runs in a fresh child process, so its peak RSS is its own and nothing else's.
Missed targets are reported, not raised: the exit code says only whether something broke.

Restore is timed twice. In replace mode, ``run_restore`` of an N-row set takes at most 1.10 x
``psql -1`` with TRUNCATE and ``\\copy FROM`` of both CSVs (pg_restore --data-only is shown as
a second anchor). With an HNSW index on the embeddings (M rows, its own database), our restore,
which drops the index, loads and rebuilds it, is at least 4 x faster than ``\\copy FROM`` into
the indexed table. The drill of a set of N rows with an HNSW index (its own database) times
its search-recall step: at most 10 % of the drill.

The layouts section (``--only-layouts``, ``--skip-layouts``, ``--layouts-rows N``) is in
``benchmarks/layouts.py``.

    python -m benchmarks [--rows N] [--dims D] [--hnsw-rows M] [--skip-hnsw] [--data-dir PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from benchmarks.common import (
    own_peak_rss_kb,
    COLLECTIONS,
    MEMORY_FACTOR,
    REPEATS,
    RESTORE_TIMESTAMP,
    Runs,
    build_database,
    dsn_database,
    fresh_folder,
    hnsw_indexes,
    log,
    megabytes,
    quote_identifier,
    quote_literal,
    run_child_process,
    run_command,
    run_pg_dump,
    run_psql_copy,
    verdict,
    verify_restored,
)
from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE
from vector_assets.dev.embedded import start_embedded

DEFAULT_ROWS = 100_000
DEFAULT_DIMS = 384
DEFAULT_DATA_DIR = Path(".vector_assets/bench")
PROGRESS_INTERVAL_SECONDS = 5.0  # VECTOR_ASSETS_PROGRESS_INTERVAL's default
BENCH_DATABASE = "bench"
BENCH4_DATABASE = "bench4"
TARGET_TIME_RATIO = 1.10
TARGET_RSS_RATIO = 1.2
HNSW_DATABASE = "bench_hnsw"
DRILL_DATABASE = "bench_drill"  # N rows with an HNSW index: the drill's search-recall step at the size
DEFAULT_HNSW_ROWS = 50_000
TARGET_RESTORE_RATIO = 1.10
TARGET_HNSW_SPEEDUP = 6.0
TARGET_RECALL_SHARE = 0.10  # the drill's search-recall step, at the default sample
HNSW_OURS_REPEATS = 3  # ours takes seconds, so its median; the anchor takes minutes and runs once
HNSW_BUILD_MEMORY = "512MB"  # the anchor's fixed build memory
TRUNCATE_BOTH = f"TRUNCATE {COLLECTION_TABLE}, {EMBEDDING_TABLE}"


# ---------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="Benchmark run_backup and run_restore against psql \\copy, pg_dump and pg_restore."
    )
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="embedding rows (N)")
    parser.add_argument("--dims", type=int, default=DEFAULT_DIMS, help="vector dimensions (D)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="bench server folder")
    parser.add_argument(
        "--hnsw-rows", type=int, default=DEFAULT_HNSW_ROWS, help="embedding rows (M) of the HNSW restore benchmark"
    )
    parser.add_argument("--skip-hnsw", action="store_true", help="skip the restore benchmark with an HNSW index")
    parser.add_argument("--skip-object-store", action="store_true", help="skip the backup and restore against a local S3 server")
    # Internal: one backup (or restore) in this process, result printed as JSON (see run_child).
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-restore", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-safety-backup", dest="safety_backup", action="store_false", help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)  # a folder or s3://…: not a Path, which folds '//'
    parser.add_argument("--only-object-store", action="store_true", help="run only the object-store section")
    parser.add_argument("--timestamp", help=argparse.SUPPRESS)
    parser.add_argument("--child-format-backup", metavar="FORMAT", help=argparse.SUPPRESS)
    parser.add_argument("--child-job-restore", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-job-backup", metavar="FORMAT", help=argparse.SUPPRESS)
    parser.add_argument("--safety-backup", dest="safety_backup_job", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--skip-formats", action="store_true", help="skip the set formats and the restore job section")
    parser.add_argument("--skip-increments", action="store_true", help="skip the incremental backup section")
    parser.add_argument("--only-increments", action="store_true", help="run only the incremental backup section")
    parser.add_argument("--skip-collection-restore", action="store_true", help="skip the one-collection restore section")
    parser.add_argument("--only-collection-restore", action="store_true",
                        help="run only the one-collection restore section: 1%% of N rows in one collection, restored "
                        "alone against the full restore, in every format")
    parser.add_argument(
        "--only-formats-at-4n", action="store_true",
        help="run only the set formats section, at 4N rows (the memory check's database), without the memory check "
        "and the restore job: the #11 time targets at 400,000 rows (about 10 minutes)",
    )
    parser.add_argument("--progress", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--only-encryption", action="store_true",
                        help="run only the encryption section: encrypted against plain csv.zst and pgcopy.zst, and the encrypted "
                        "backups' and restores' peak RSS at N and 4N rows")
    parser.add_argument("--child-encryption", choices=("backup", "restore"), help=argparse.SUPPRESS)
    parser.add_argument("--encryption-format", help=argparse.SUPPRESS)
    parser.add_argument("--only-layouts", action="store_true",
                        help="run only the layouts section: PGVectorStore and LlamaIndex tables against LangChain's, "
                        "and four stores backed up at once")
    parser.add_argument("--skip-layouts", action="store_true", help="skip the layouts section")
    parser.add_argument("--layouts-rows", type=int, default=None, metavar="N",
                        help="rows per store of the layouts section (default --rows); a small N checks that it works")
    parser.add_argument("--child-layout-backup", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--layout-format", help=argparse.SUPPRESS)
    parser.add_argument("--only-scaling", action="store_true", help="run only the scaling section")
    parser.add_argument("--skip-scaling", action="store_true", help="skip the scaling section (about 90 minutes here)")
    parser.add_argument(
        "--scaling-sizes", type=sizes_list, default=None, metavar="N,N,...",
        help="rows of the scaling section's sizes (default 50000,100000,200000,400000,800000)",
    )
    parser.add_argument("--scaling-big", action="store_true", help="add 1,600,000 rows to the scaling sizes")
    parser.add_argument("--scaling-drill-max", type=int, default=None, metavar="N",
                        help="drill (with its HNSW rebuild) only the scaling sizes up to N rows (default: every size)")
    parser.add_argument("--scaling-max-wal-size", metavar="SIZE", default=None,
                        help="run the scaling section with the bench server's max_wal_size at SIZE (e.g. 4GB; reset after), "
                        "so a large restore starts no checkpoint")
    parser.add_argument("--scaling-repeats", type=int, default=3, help="runs of each backup and restore per size (median)")
    parser.add_argument("--scaling-output", type=Path, default=Path("benchmarks/results"),
                        help="where the scaling section writes its CSV and picture")
    args = parser.parse_args(argv)
    args.layouts_rows = args.rows if args.layouts_rows is None else args.layouts_rows
    if args.rows < 1 or args.dims < 1 or args.hnsw_rows < 1 or args.scaling_repeats < 1:
        parser.error("--rows, --dims, --hnsw-rows and --scaling-repeats must be positive")
    if args.layouts_rows < 4:
        parser.error("--layouts-rows must be at least 4 (four stores share them)")
    from benchmarks.scaling import BIG_SIZE, DEFAULT_SIZES

    args.scaling_sizes = sorted(set(args.scaling_sizes or DEFAULT_SIZES) | ({BIG_SIZE} if args.scaling_big else set()))
    return args


def runs_scaling(args: argparse.Namespace) -> bool:
    """--only-scaling, or the whole benchmark without --skip-scaling (another --only-… runs one other section)."""
    others = (args.only_increments, args.only_formats_at_4n, args.only_object_store, args.only_encryption,
              args.only_layouts, args.only_collection_restore)
    return args.only_scaling or not (args.skip_scaling or any(others))


def scaling_packages_installed() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("pandas", "matplotlib"))


def sizes_list(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--scaling-sizes must be whole numbers separated by commas, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--scaling-sizes must be positive row counts, got {text!r}")
    return sizes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return run_child(args.dsn, args.root, args.progress)
    if args.child_restore:
        return run_child_restore(args.dsn, args.root, args.timestamp, args.safety_backup)
    if args.child_format_backup:
        from benchmarks.formats import child_backup

        return child_backup(args.dsn, args.root, args.child_format_backup, args.timestamp)
    if args.child_job_backup:
        from benchmarks.formats import child_job_backup

        return child_job_backup(args.dsn, args.root, args.child_job_backup)
    if args.child_job_restore:
        from benchmarks.formats import child_job_restore

        return child_job_restore(args.dsn, args.root, args.timestamp, args.safety_backup_job)
    if args.child_layout_backup:
        from benchmarks.layouts import child_layout_backup

        return child_layout_backup(args.dsn, args.root, args.layout_format)
    if args.child_encryption:
        from benchmarks.encryption import child_encryption

        return child_encryption(args.child_encryption, args.dsn, args.root, args.encryption_format, args.timestamp)
    if runs_scaling(args) and not scaling_packages_installed():
        print("the scaling section needs pandas and matplotlib: pip install -e '.[bench]' (make bench does), "
              "or leave it out with --skip-scaling", file=sys.stderr)
        return 2
    started = time.monotonic()
    if args.only_increments:
        from benchmarks.increments import format_increments

        print("\n".join(format_increments(run_increments_only(args.rows, args.dims, args.data_dir))))
        return 0
    if args.only_collection_restore:
        from benchmarks.collection_restore import format_collection_restore

        print("\n".join(format_collection_restore(run_collection_restore_only(args.rows, args.dims, args.data_dir))))
        return 0
    if args.only_formats_at_4n:
        from benchmarks.formats import format_formats

        print("\n".join(format_formats(run_formats_at_4n_only(args.rows, args.dims, args.data_dir))))
        return 0
    if args.only_encryption:
        from benchmarks.encryption import format_encryption

        print("\n".join(format_encryption(run_encryption_only(args.rows, args.dims, args.data_dir))))
        return 0
    if args.only_scaling:
        print("\n".join(run_scaling_only(args)))
        return 0
    if args.only_layouts:
        from benchmarks.layouts import format_layouts

        print("\n".join(format_layouts(run_layouts_only(args.layouts_rows, args.dims, args.data_dir))))
        return 0
    if args.only_object_store:
        from benchmarks.object_store import format_object_store

        print("\n".join(format_object_store(run_object_store_only(args.rows, args.dims, args.data_dir))))
        return 0
    report = run_benchmark(
        args.rows, args.dims, args.data_dir, None if args.skip_hnsw else args.hnsw_rows, not args.skip_object_store,
        formats=not args.skip_formats, increments=not args.skip_increments,
        collection_restore=not args.skip_collection_restore, scaling=None if args.skip_scaling else args, layouts_rows=None if args.skip_layouts else args.layouts_rows,
    )
    from benchmarks.sensor_ticks import run_sensor_ticks

    log("sensor ticks at 10, 1,000 and 10,000 sets")
    sensor_lines = run_sensor_ticks()
    print(format_report(report, time.monotonic() - started))
    print("\n" + "\n".join(sensor_lines))
    return 0


# ---------------------------------------------------------------------------------------------
# The child: one backup, measured from inside


def run_child(dsn: str | None, root: str | None, progress: bool = False) -> int:
    """Back up once and print the call's wall time and this process's peak RSS as JSON.

    Runs in a fresh interpreter, and reads its own peak (VmHWM), not the parent's.
    With ``progress`` the COPY streams are counted and reported as the Dagster op does (every
    5 s), to show that progress costs nothing measurable.
    """
    if not dsn or root is None:
        print("--child needs --dsn and --root", file=sys.stderr)
        return 2
    from vector_assets.core.ops.backup import BackupRequest, run_backup
    from vector_assets.core.progress import ProgressReporter

    reporter = ProgressReporter(lambda event: log(event.describe()), PROGRESS_INTERVAL_SECONDS) if progress else None
    started, cpu_started = time.perf_counter(), time.process_time()
    result = run_backup(BackupRequest(dsn=dsn, root=root, progress=reporter))
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    rows = {name: entry.rows for name, entry in result.manifest.tables.items()}
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "manifest_seconds": result.manifest.duration_seconds,
                "bytes": result.total_bytes,
                "rows": rows,
                "timestamp": result.timestamp,
                "max_rss_kb": own_peak_rss_kb(),
            }
        )
    )
    return 0


def run_child_restore(dsn: str | None, root: str | None, timestamp: str | None, safety_backup: bool = True) -> int:
    """Restore once (replace mode) and print wall time, rows, COPY times and peak RSS as JSON."""
    if not dsn or root is None or not timestamp:
        print("--child-restore needs --dsn, --root and --timestamp", file=sys.stderr)
        return 2
    from vector_assets import settings
    from vector_assets.core.ops.restore import RestoreRequest, run_restore

    started = time.perf_counter()
    result = run_restore(RestoreRequest(
        target_dsn=dsn, root=root, timestamp=timestamp, truncate_before_restore=True, safety_backup=safety_backup,
        index_builds=settings.index_build_settings(),
    ))
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rows": {table.table: table.rows_loaded for table in result.tables},
                "copy_seconds": {table.table: table.duration_seconds for table in result.tables},
                "indexes_rebuilt": result.indexes_rebuilt,
                "index_builds": [build.message for build in result.index_builds],
                "max_rss_kb": own_peak_rss_kb(),
            }
        )
    )
    return 0


# ---------------------------------------------------------------------------------------------
# Test data, built on the server


def ensure_hnsw_index(dsn: str) -> None:
    """Build the HNSW index once; a database that already has it is reused as it is."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
        if hnsw_indexes(cursor):
            log(f"reusing the HNSW index in {dsn_database(dsn)}")
        else:
            log(f"building the HNSW index in {dsn_database(dsn)} ...")
            started = time.monotonic()
            cursor.execute(sql.SQL("SET maintenance_work_mem = {}").format(sql.Literal(HNSW_BUILD_MEMORY)))
            cursor.execute(f"CREATE INDEX ON {EMBEDDING_TABLE} USING hnsw (embedding vector_cosine_ops)")
            log(f"index built in {time.monotonic() - started:.1f} s")
    conn.close()


# ---------------------------------------------------------------------------------------------
# Timed operations


@dataclass(frozen=True)
class ChildResult:
    call_seconds: float
    process_seconds: float
    csv_bytes: int
    rows: dict[str, int]
    max_rss_kb: int


def run_ours(dsn: str, work: Path, progress: bool = False) -> ChildResult:
    """``run_backup`` in a fresh interpreter; the set is deleted right after."""
    root = fresh_folder(work / "ours")
    command = [sys.executable, "-m", "benchmarks", "--child", "--dsn", dsn, "--root", str(root)]
    command += ["--progress"] if progress else []
    report, process_seconds = run_child_process(command)
    shutil.rmtree(root)
    return ChildResult(
        call_seconds=report["seconds"],
        process_seconds=process_seconds,
        csv_bytes=report["bytes"],
        rows=report["rows"],
        max_rss_kb=report["max_rss_kb"],
    )


# ---------------------------------------------------------------------------------------------
# Timed restores


@dataclass(frozen=True)
class RestoreSet:
    """The one backup set a restore benchmark loads again and again."""

    root: Path
    timestamp: str
    paths: dict[str, Path]
    headers: dict[str, list[str]]
    csv_bytes: int


@dataclass(frozen=True)
class RestoreChildResult:
    call_seconds: float
    process_seconds: float
    rows: dict[str, int]
    copy_seconds: dict[str, float]
    indexes_rebuilt: list[str]
    max_rss_kb: int
    index_builds: list[str] = field(default_factory=list)


def make_restore_set(dsn: str, root: Path) -> RestoreSet:
    """Back up ``dsn`` once with ``run_backup`` (untimed) into a fresh ``root``."""
    from vector_assets.core.ops.backup import BackupRequest, run_backup

    result = run_backup(BackupRequest(dsn=dsn, root=fresh_folder(root), timestamp=RESTORE_TIMESTAMP))
    headers = {table: [column.name for column in entry.columns] for table, entry in result.manifest.tables.items()}
    return RestoreSet(root, result.timestamp, dict(result.paths), headers, result.total_bytes)


def run_ours_restore(dsn: str, restore_set: RestoreSet, safety_backup: bool = True) -> RestoreChildResult:
    """``run_restore`` (replace mode) in a fresh interpreter, so its peak RSS is its own.

    By default it first backs up what it replaces (a pre_restore set), as every restore does
    unless told not to; without that it does the same work as the psql anchor."""
    command = [
        sys.executable, "-m", "benchmarks", "--child-restore", "--dsn", dsn,
        "--root", str(restore_set.root), "--timestamp", restore_set.timestamp,
    ] + ([] if safety_backup else ["--no-safety-backup"])  # fmt: skip
    report, process_seconds = run_child_process(command)
    return RestoreChildResult(
        call_seconds=report["seconds"],
        process_seconds=process_seconds,
        rows=report["rows"],
        copy_seconds=report["copy_seconds"],
        indexes_rebuilt=report["indexes_rebuilt"],
        max_rss_kb=report["max_rss_kb"],
        index_builds=report.get("index_builds", []),
    )


def remove_safety_sets(restore_set: RestoreSet) -> None:
    """Keep the disk flat between runs: only the set being restored stays."""
    for path in restore_set.root.rglob("*"):
        if path.is_file() and restore_set.timestamp not in path.name and path.suffix != ".txt":
            path.unlink()


def run_psql_copy_from(bin_dir: Path, dsn: str, restore_set: RestoreSet) -> float:
    """TRUNCATE both tables and ``\\copy FROM`` both CSVs in one psql, in one transaction (-1).

    Like ours: the same CSVs, collections first, the CSV header's column list, one transaction.
    """
    command = [str(bin_dir / "psql"), "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", TRUNCATE_BOTH]
    for table in (COLLECTION_TABLE, EMBEDDING_TABLE):
        columns = ", ".join(quote_identifier(name) for name in restore_set.headers[table])
        path = quote_literal(str(restore_set.paths[table]))
        command += ["-c", f"\\copy {table} ({columns}) FROM {path} csv header"]
    started = time.perf_counter()
    run_command(command)
    return time.perf_counter() - started


def run_pg_restore(bin_dir: Path, dsn: str, archive: Path) -> float:
    """An untimed TRUNCATE of both tables, then a timed ``pg_restore --data-only --single-transaction``."""
    run_command([str(bin_dir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", TRUNCATE_BOTH])
    command = [str(bin_dir / "pg_restore"), "--data-only", "--single-transaction", "-d", dsn, str(archive)]
    started = time.perf_counter()
    run_command(command)
    return time.perf_counter() - started


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class Report:
    rows: int
    dims: int
    ours: Runs
    ours_process: Runs
    ours_progress: Runs
    psql: Runs
    pg_dump: Runs
    rss_n_kb: int
    rss_4n_kb: int
    backup_4n_seconds: float
    csv_4n_bytes: int
    server_version: str
    restore: RestoreReport | None = None
    hnsw: HnswReport | None = None
    formats: object | None = None  # benchmarks.formats.FormatsReport
    increments: object | None = None  # benchmarks.increments.IncrementsReport
    collection_restore: object | None = None  # benchmarks.collection_restore.CollectionReport
    object_store: object | None = None  # benchmarks.object_store.ObjectStoreReport
    scaling: list[str] | None = None  # the scaling section's report lines
    layouts: object | None = None  # benchmarks.layouts.LayoutsReport


@dataclass
class RestoreReport:
    rows: int
    csv_bytes: int
    archive_bytes: int
    ours: Runs
    ours_process: Runs
    ours_safe: Runs
    psql: Runs
    pg_restore: Runs
    rss_kb: int
    copy_seconds: dict[str, float]


@dataclass
class HnswReport:
    rows: int
    csv_bytes: int
    ours_seconds: float
    ours_process_seconds: float
    ours_copy_seconds: dict[str, float]
    ours_rss_kb: int
    psql_seconds: float
    indexes_after_ours: list[str]
    indexes_after_psql: list[str]
    builds: list[str] = field(default_factory=list)
    serial_seconds: float = 0.0
    serial_builds: list[str] = field(default_factory=list)
    safety_seconds: float = 0.0
    ours_runs: list[float] = field(default_factory=list)
    drill: DrillFigures | None = None


@dataclass
class DrillFigures:
    """The drill of a set of N rows with an HNSW index: its whole time, and the search-recall
    step's share of it."""

    rows: int
    seconds: float
    recall_seconds: float
    queries: int
    recall: float
    live_queries: int
    live_differences: int


def run_object_store_only(rows: int, dims: int, data_dir: Path):
    from benchmarks.object_store import measure_object_store

    server = start_embedded(data_dir, stop_on_exit=True)
    maintenance = server.dsn("postgres")
    dsn, dsn4 = server.dsn(BENCH_DATABASE), server.dsn(BENCH4_DATABASE)
    build_database(maintenance, dsn, rows, dims)
    build_database(maintenance, dsn4, rows * MEMORY_FACTOR, dims)
    work = fresh_folder(Path(data_dir).resolve() / "work")
    try:
        return measure_object_store(dsn, dsn4, rows, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_formats_at_4n_only(rows: int, dims: int, data_dir: Path):
    from benchmarks.formats import measure_formats

    server = start_embedded(data_dir, stop_on_exit=True)
    maintenance, dsn4 = server.dsn("postgres"), server.dsn(BENCH4_DATABASE)
    build_database(maintenance, dsn4, rows * MEMORY_FACTOR, dims)
    work = fresh_folder(Path(data_dir).resolve() / "work")
    try:
        return measure_formats(server, server.bin_dir, dsn4, None, rows * MEMORY_FACTOR, dims, work, job=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_encryption_only(rows: int, dims: int, data_dir: Path):
    from benchmarks.encryption import measure_encryption

    server = start_embedded(data_dir, stop_on_exit=True)
    maintenance, dsn, dsn4 = server.dsn("postgres"), server.dsn(BENCH_DATABASE), server.dsn(BENCH4_DATABASE)
    build_database(maintenance, dsn, rows, dims)
    build_database(maintenance, dsn4, rows * MEMORY_FACTOR, dims)
    work = fresh_folder(Path(data_dir).resolve() / "work")
    try:
        return measure_encryption(dsn, rows, dims, work, dsn4)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_increments_only(rows: int, dims: int, data_dir: Path):
    from benchmarks.increments import measure_increments

    return _on_the_bench_database(measure_increments, rows, dims, data_dir)


def run_collection_restore_only(rows: int, dims: int, data_dir: Path):
    from benchmarks.collection_restore import measure_collection_restore

    return _on_the_bench_database(measure_collection_restore, rows, dims, data_dir)


def _on_the_bench_database(measure, rows: int, dims: int, data_dir: Path):
    """``measure(maintenance, dsn, dsn_of, rows, work)`` on the bench database of ``rows`` rows."""
    server = start_embedded(data_dir, stop_on_exit=True)
    maintenance, dsn = server.dsn("postgres"), server.dsn(BENCH_DATABASE)
    build_database(maintenance, dsn, rows, dims)
    work = fresh_folder(Path(data_dir).resolve() / "work")
    try:
        return measure(maintenance, dsn, server.dsn, rows, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_layouts_only(rows: int, dims: int, data_dir: Path):
    from benchmarks.layouts import measure_layouts

    server = start_embedded(data_dir, stop_on_exit=True)
    work = fresh_folder(Path(data_dir).resolve() / "work")
    try:
        return measure_layouts(server.dsn("postgres"), server.dsn, server.bin_dir, rows, dims, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_scaling_only(args: argparse.Namespace) -> list[str]:
    from benchmarks.scaling import run_scaling

    server = start_embedded(args.data_dir, stop_on_exit=True)
    work = fresh_folder(Path(args.data_dir).resolve() / "work")
    try:
        return run_scaling(server, args.scaling_sizes, args.dims, work, args.scaling_repeats, args.scaling_output,
                           drill_max=args.scaling_drill_max, max_wal_size=args.scaling_max_wal_size)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_benchmark(
    rows: int, dims: int, data_dir: Path, hnsw_rows: int | None = DEFAULT_HNSW_ROWS, object_store: bool = True,
    formats: bool = True, increments: bool = True, scaling: argparse.Namespace | None = None,
    layouts_rows: int | None = None, collection_restore: bool = True,
) -> Report:
    """Build (or reuse) the databases, time the three operations interleaved, then check memory.

    Repetitions are interleaved (ours, psql, pg_dump, ours, ...) so a warming page cache or a
    noisy neighbour hits all three alike instead of favouring whichever runs last. Then the
    restores: replace mode on the N-row database, and (unless ``hnsw_rows`` is None) a restore
    into an HNSW-indexed table in its own database.
    """
    server = start_embedded(data_dir, stop_on_exit=True)
    maintenance = server.dsn("postgres")
    dsn, dsn4 = server.dsn(BENCH_DATABASE), server.dsn(BENCH4_DATABASE)
    build_database(maintenance, dsn, rows, dims)
    build_database(maintenance, dsn4, rows * MEMORY_FACTOR, dims)
    dsn_hnsw = server.dsn(HNSW_DATABASE)
    dsn_drill = server.dsn(DRILL_DATABASE)
    if hnsw_rows is not None:
        build_database(maintenance, dsn_hnsw, hnsw_rows, dims)
        ensure_hnsw_index(dsn_hnsw)
        build_database(maintenance, dsn_drill, rows, dims)
        ensure_hnsw_index(dsn_drill)
    work = fresh_folder(Path(data_dir).resolve() / "work")
    try:
        report = measure(server.bin_dir, dsn, dsn4, rows, dims, work)
        report.restore = measure_restore(server.bin_dir, dsn, rows, dims, work)
        if hnsw_rows is not None:
            report.hnsw = measure_hnsw(dsn_hnsw, server.bin_dir, hnsw_rows, dims, work)
            report.hnsw.drill = measure_drill(dsn_drill, make_restore_set(dsn_drill, work / "drill_set"), rows)
        if formats:
            from benchmarks.formats import measure_formats

            report.formats = measure_formats(server, server.bin_dir, dsn, dsn4, rows, dims, work)
        if increments:
            from benchmarks.increments import measure_increments

            report.increments = measure_increments(maintenance, dsn, server.dsn, rows, work)
        if collection_restore:
            from benchmarks.collection_restore import measure_collection_restore

            report.collection_restore = measure_collection_restore(maintenance, dsn, server.dsn, rows, work)
        if object_store:
            from benchmarks.object_store import measure_object_store

            report.object_store = measure_object_store(dsn, dsn4, rows, work)
        if layouts_rows is not None:
            from benchmarks.layouts import measure_layouts

            report.layouts = measure_layouts(maintenance, server.dsn, server.bin_dir, layouts_rows, dims, work)
        if scaling is not None:
            from benchmarks.scaling import run_scaling

            report.scaling = run_scaling(
                server, scaling.scaling_sizes, dims, work, scaling.scaling_repeats, scaling.scaling_output,
                drill_max=scaling.scaling_drill_max, max_wal_size=scaling.scaling_max_wal_size,
            )
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(bin_dir: Path, dsn: str, dsn4: str, rows: int, dims: int, work: Path) -> Report:
    ours, ours_process = Runs("ours: run_backup (call)"), Runs("ours: child process wall")
    ours_progress = Runs("ours: run_backup with progress every 5 s (call)")
    psql, pg_dump = Runs("psql \\copy (both tables)"), Runs("pg_dump -Fc (both tables)")
    log("warm-up: one psql \\copy")
    run_psql_copy(bin_dir, dsn, work)
    rss_n = 0
    for repetition in range(1, REPEATS + 1):
        log(f"repetition {repetition}/{REPEATS}")
        child = run_ours(dsn, work)
        check_rows(child, rows)
        ours.seconds.append(child.call_seconds)
        ours_process.seconds.append(child.process_seconds)
        ours.output_bytes = ours_process.output_bytes = child.csv_bytes
        rss_n = max(rss_n, child.max_rss_kb)
        with_progress = run_ours(dsn, work, progress=True)
        check_rows(with_progress, rows)
        ours_progress.seconds.append(with_progress.call_seconds)
        ours_progress.output_bytes = with_progress.csv_bytes
        record(psql, lambda: run_psql_copy(bin_dir, dsn, work))
        record(pg_dump, lambda: run_pg_dump(bin_dir, dsn, work))
    log(f"memory: one backup of {rows * MEMORY_FACTOR} rows")
    child4 = run_ours(dsn4, work)
    check_rows(child4, rows * MEMORY_FACTOR)
    return Report(
        rows=rows, dims=dims, ours=ours, ours_process=ours_process, ours_progress=ours_progress, psql=psql,
        pg_dump=pg_dump,
        rss_n_kb=rss_n, rss_4n_kb=child4.max_rss_kb, backup_4n_seconds=child4.call_seconds,
        csv_4n_bytes=child4.csv_bytes, server_version=read_server_version(dsn),
    )  # fmt: skip


def measure_restore(bin_dir: Path, dsn: str, rows: int, dims: int, work: Path) -> RestoreReport:
    """Replace-mode restores of one set, interleaved: ours, psql -1 \\copy FROM, pg_restore.

    The set and the pg_dump archive are made once; every step must leave exactly N rows.
    """
    log(f"restore: making one set and one pg_dump -Fc archive of {rows} rows")
    restore_set = make_restore_set(dsn, work / "restore_set")
    archive = work / "restore.dump"
    run_command([
        str(bin_dir / "pg_dump"), "-Fc", "-t", EMBEDDING_TABLE, "-t", COLLECTION_TABLE,
        "-f", str(archive), "-d", dsn,
    ])  # fmt: skip
    ours, ours_process = Runs("ours: run_restore, no safety backup (call)"), Runs("ours: the same, child process wall")
    ours_safe = Runs("ours: run_restore with its safety backup (the default)")
    psql = Runs("psql -1: TRUNCATE + \\copy FROM (both tables)")
    pg_restore = Runs("pg_restore --data-only --single-transaction")
    log("restore warm-up: one psql \\copy FROM")
    run_psql_copy_from(bin_dir, dsn, restore_set)
    verify_restored(dsn, rows, dims, "the warm-up")
    rss_kb, copy_seconds = 0, {}
    for repetition in range(1, REPEATS + 1):
        log(f"restore repetition {repetition}/{REPEATS}")
        ours_safe.seconds.append(run_ours_restore(dsn, restore_set).call_seconds)
        verify_restored(dsn, rows, dims, "run_restore with a safety backup")
        remove_safety_sets(restore_set)
        child = run_ours_restore(dsn, restore_set, safety_backup=False)
        if child.rows != {COLLECTION_TABLE: len(COLLECTIONS), EMBEDDING_TABLE: rows}:
            raise RuntimeError(f"run_restore loaded {child.rows}, expected {rows} embeddings")
        verify_restored(dsn, rows, dims, "run_restore")
        ours.seconds.append(child.call_seconds)
        ours_process.seconds.append(child.process_seconds)
        rss_kb = max(rss_kb, child.max_rss_kb)
        copy_seconds = child.copy_seconds
        psql.seconds.append(run_psql_copy_from(bin_dir, dsn, restore_set))
        verify_restored(dsn, rows, dims, "psql \\copy FROM")
        pg_restore.seconds.append(run_pg_restore(bin_dir, dsn, archive))
        verify_restored(dsn, rows, dims, "pg_restore")
    for runs in (ours, ours_process, ours_safe, psql, pg_restore):
        runs.output_bytes = restore_set.csv_bytes
    # Leave the table as build_database does, so a later run's backup timings see the same state.
    conn = psycopg2.connect(dsn)
    conn.autocommit = True  # not ``with conn``: that opens a transaction, and VACUUM refuses one
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"VACUUM (FREEZE, ANALYZE) {COLLECTION_TABLE}, {EMBEDDING_TABLE}")
    finally:
        conn.close()
    shutil.rmtree(restore_set.root, ignore_errors=True)
    return RestoreReport(
        rows=rows, csv_bytes=restore_set.csv_bytes, archive_bytes=archive.stat().st_size, ours=ours,
        ours_process=ours_process, ours_safe=ours_safe, psql=psql, pg_restore=pg_restore, rss_kb=rss_kb, copy_seconds=copy_seconds,
    )  # fmt: skip


def measure_hnsw(dsn: str, bin_dir: Path, rows: int, dims: int, work: Path) -> HnswReport:
    """Restores into the HNSW-indexed table: ours (drop, load, rebuild) with and without its
    safety backup, and psql \\copy FROM. The target compares the restore without the safety
    backup, which does the anchor's work, as the formats section does.

    The anchor maintains the index row by row and takes minutes, so it runs once; ours without
    the safety backup runs HNSW_OURS_REPEATS times (median), every other restore once.
    """
    log(f"hnsw: making one set of {rows} rows")
    restore_set = make_restore_set(dsn, work / "hnsw_set")
    log("hnsw: ours, run_restore with its safety backup (drops the index, loads, rebuilds it)")
    safe = run_ours_restore(dsn, restore_set)
    verify_restored(dsn, rows, dims, "run_restore with a safety backup", hnsw=True)
    remove_safety_sets(restore_set)
    log(f"hnsw: ours with a safety backup took {safe.call_seconds:.1f} s; now {HNSW_OURS_REPEATS} times without it")
    runs = []
    for _ in range(HNSW_OURS_REPEATS):
        run = run_ours_restore(dsn, restore_set, safety_backup=False)
        if run.rows != {COLLECTION_TABLE: len(COLLECTIONS), EMBEDDING_TABLE: rows} or not run.indexes_rebuilt:
            raise RuntimeError(f"run_restore loaded {run.rows} and rebuilt {run.indexes_rebuilt}")
        after_ours = verify_restored(dsn, rows, dims, "run_restore", hnsw=True)
        runs.append(run)
    child = sorted(runs, key=lambda run: run.call_seconds)[len(runs) // 2]  # the median run
    log(f"hnsw: ours took {', '.join(f'{run.call_seconds:.1f}' for run in runs)} s; "
        "now psql -1 \\copy FROM into the indexed table")
    psql_seconds = run_psql_copy_from(bin_dir, dsn, restore_set)
    after_psql = verify_restored(dsn, rows, dims, "psql \\copy FROM", hnsw=True)
    log(f"hnsw: psql took {psql_seconds:.1f} s; now ours again with no parallel index build workers")
    os.environ["VECTOR_ASSETS_INDEX_BUILD_WORKERS"] = "0"
    try:
        serial = run_ours_restore(dsn, restore_set, safety_backup=False)
    finally:
        del os.environ["VECTOR_ASSETS_INDEX_BUILD_WORKERS"]
    verify_restored(dsn, rows, dims, "run_restore with 0 workers", hnsw=True)
    shutil.rmtree(restore_set.root, ignore_errors=True)
    return HnswReport(
        rows=rows, csv_bytes=restore_set.csv_bytes, ours_seconds=child.call_seconds,
        ours_process_seconds=child.process_seconds, ours_copy_seconds=child.copy_seconds,
        ours_rss_kb=child.max_rss_kb, psql_seconds=psql_seconds, indexes_after_ours=after_ours,
        indexes_after_psql=after_psql, builds=child.index_builds, serial_seconds=serial.call_seconds,
        serial_builds=serial.index_builds, safety_seconds=safe.call_seconds,
        ours_runs=[run.call_seconds for run in runs],
    )  # fmt: skip


def measure_drill(dsn: str, restore_set, rows: int) -> DrillFigures:
    """The drill of the set at the default sample (100 queries per collection, k = 10), the
    exact answers compared with the live table's as they are for the newest set."""
    from vector_assets.core.ops.drill import DrillRequest, run_drill

    log(f"drill: the drill of a set of {rows} rows with an HNSW index, with its search-recall step")
    result = run_drill(DrillRequest(dsn=dsn, root=restore_set.root))
    shutil.rmtree(restore_set.root, ignore_errors=True)
    if not result.passed or not result.recall:
        raise RuntimeError(f"the drill failed or measured no index: {[t.table for t in result.tables if not t.passed]}")
    return DrillFigures(
        rows=rows, seconds=result.duration_seconds, recall_seconds=result.recall_seconds,
        queries=sum(i.queries for i in result.recall), recall=min(i.recall for i in result.recall),
        live_queries=sum(i.live_queries for i in result.recall),
        live_differences=sum(i.live_differences for i in result.recall),
    )


def record(runs: Runs, operation: Callable[[], tuple[float, int]]) -> None:
    seconds, size = operation()
    runs.seconds.append(seconds)
    runs.output_bytes = size


def check_rows(child: ChildResult, rows: int) -> None:
    """A backup that copied the wrong number of rows would make its timing meaningless."""
    copied = child.rows.get(EMBEDDING_TABLE)
    if copied != rows or child.rows.get(COLLECTION_TABLE) != len(COLLECTIONS):
        raise RuntimeError(f"backup copied {child.rows}, expected {rows} embeddings")


def read_server_version(dsn: str) -> str:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('server_version'),"
            " (SELECT extversion FROM pg_extension WHERE extname = 'vector')"
        )
        postgres, pgvector = cursor.fetchone()
    conn.close()
    return f"PostgreSQL {postgres}, pgvector {pgvector}"


# ---------------------------------------------------------------------------------------------
# The report


def format_report(report: Report, total_seconds: float) -> str:
    csv_bytes = report.ours.output_bytes
    anchor = report.psql.median
    time_ratio = report.ours.median / anchor
    rss_ratio = report.rss_4n_kb / report.rss_n_kb
    lines = [
        f"## vector_assets backup benchmark, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        "",
        f"- data: {report.rows} x {report.dims} embeddings, {len(COLLECTIONS)} collections; "
        f"CSV set {megabytes(csv_bytes):.1f} MB (psql \\copy wrote {megabytes(report.psql.output_bytes):.1f} MB, "
        f"pg_dump -Fc {megabytes(report.pg_dump.output_bytes):.1f} MB)",
        f"- machine: {machine()}; {report.server_version}",
        f"- median of {REPEATS} runs each, interleaved; MB/s = CSV set size / time",
        "",
        "| operation | median wall s | x psql \\copy | MB/s | runs s |",
        "|---|---:|---:|---:|---|",
    ]
    for runs in (report.ours, report.ours_progress, report.ours_process, report.psql, report.pg_dump):
        lines.append(table_row(runs, anchor, csv_bytes))
    lines += [
        "",
        f"- progress: with / without = {report.ours_progress.median / report.ours.median:.3f} "
        f"(runs {', '.join(f'{s:.2f}' for s in report.ours_progress.seconds)} s vs "
        f"{', '.join(f'{s:.2f}' for s in report.ours.seconds)} s)",
        f"- peak RSS, backup of N = {report.rows}: {megabytes(report.rss_n_kb * 1024):.1f} MB",
        f"- peak RSS, backup of 4N = {report.rows * MEMORY_FACTOR}: {megabytes(report.rss_4n_kb * 1024):.1f} MB "
        f"(backup {report.backup_4n_seconds:.2f} s, {megabytes(report.csv_4n_bytes) / report.backup_4n_seconds:.0f} MB/s)",
        "",
        f"- target backup <= {TARGET_TIME_RATIO:.2f} x \\copy: {time_ratio:.2f} x -> {verdict(time_ratio <= TARGET_TIME_RATIO)}",
        f"- target RSS(4N)/RSS(N) <= {TARGET_RSS_RATIO}: {rss_ratio:.2f} -> {verdict(rss_ratio <= TARGET_RSS_RATIO)}",
    ]
    if report.restore is not None:
        lines += ["", *format_restore(report.restore, report.dims)]
    if report.hnsw is not None:
        lines += ["", *format_hnsw(report.hnsw, report.dims)]
    if report.formats is not None:
        from benchmarks.formats import format_formats

        lines += ["", *format_formats(report.formats)]
    if report.increments is not None:
        from benchmarks.increments import format_increments

        lines += ["", *format_increments(report.increments)]
    if report.collection_restore is not None:
        from benchmarks.collection_restore import format_collection_restore

        lines += ["", *format_collection_restore(report.collection_restore)]
    if report.object_store is not None:
        from benchmarks.object_store import format_object_store

        lines += ["", *format_object_store(report.object_store)]
    if report.layouts is not None:
        from benchmarks.layouts import format_layouts

        lines += ["", *format_layouts(report.layouts)]
    if report.scaling is not None:
        lines += ["", *report.scaling]
    lines += ["", f"- total benchmark runtime: {total_seconds:.1f} s"]
    return "\n".join(lines)


def format_restore(restore: RestoreReport, dims: int) -> list[str]:
    anchor = restore.psql.median
    ratio = restore.ours.median / anchor
    copies = ", ".join(f"{table} {seconds:.2f} s" for table, seconds in restore.copy_seconds.items())
    lines = [
        "### restore, replace mode (truncate, then load)",
        "",
        f"- data: {restore.rows} x {dims} embeddings, {len(COLLECTIONS)} collections; one CSV set of "
        f"{megabytes(restore.csv_bytes):.1f} MB made by run_backup; pg_dump -Fc archive {megabytes(restore.archive_bytes):.1f} MB",
        f"- median of {REPEATS} runs each, interleaved, after one untimed warm-up; every run leaves exactly "
        f"{restore.rows} rows (checked); MB/s = CSV set size / time",
        "",
        "| operation | median wall s | x psql \\copy FROM | MB/s | runs s |",
        "|---|---:|---:|---:|---|",
    ]
    for runs in (restore.ours, restore.ours_process, restore.ours_safe, restore.psql, restore.pg_restore):
        lines.append(table_row(runs, anchor, restore.csv_bytes))
    lines += [
        "",
        f"- ours, COPY time per table (last run): {copies}",
        f"- peak RSS, restore of N = {restore.rows}: {megabytes(restore.rss_kb * 1024):.1f} MB",
        f"- target restore <= {TARGET_RESTORE_RATIO:.2f} x \\copy FROM: {ratio:.2f} x -> {verdict(ratio <= TARGET_RESTORE_RATIO)}",
    ]
    return lines


def format_hnsw(hnsw: HnswReport, dims: int) -> list[str]:
    speedup = hnsw.psql_seconds / hnsw.ours_seconds
    copies = ", ".join(f"{table} {seconds:.2f} s" for table, seconds in hnsw.ours_copy_seconds.items())
    return [
        "### restore into a table with an HNSW index (vector_cosine_ops)",
        "",
        f"- data: {hnsw.rows} x {dims} embeddings in database {HNSW_DATABASE}; CSV set {megabytes(hnsw.csv_bytes):.1f} MB; "
        f"ours without a safety backup {HNSW_OURS_REPEATS} runs (median), every other line one run",
        "",
        "| operation | wall s | x ours |",
        "|---|---:|---:|",
        f"| ours: run_restore, no safety backup (call: drop index, load, rebuild), median of "
        f"{', '.join(f'{s:.2f}' for s in hnsw.ours_runs)} | {hnsw.ours_seconds:.2f} | 1.00 |",
        f"| ours: child process wall | {hnsw.ours_process_seconds:.2f} | {hnsw.ours_process_seconds / hnsw.ours_seconds:.2f} |",
        f"| ours: run_restore with its safety backup (the default) | {hnsw.safety_seconds:.2f} | "
        f"{hnsw.safety_seconds / hnsw.ours_seconds:.2f} |",
        f"| psql -1: TRUNCATE + \\copy FROM into the indexed table | {hnsw.psql_seconds:.2f} | {speedup:.2f} |",
        f"| ours, no safety backup, VECTOR_ASSETS_INDEX_BUILD_WORKERS=0 | {hnsw.serial_seconds:.2f} | {hnsw.serial_seconds / hnsw.ours_seconds:.2f} |",
        "",
        *[f"- build (default workers): {build}" for build in hnsw.builds],
        *[f"- build (0 workers): {build}" for build in hnsw.serial_builds],
        f"- ours, COPY time per table: {copies}; the rest is mostly the index rebuild "
        "(maintenance_work_mem sized from the graph, up to VECTOR_ASSETS_INDEX_BUILD_MEMORY)",
        f"- peak RSS, restore of M = {hnsw.rows}: {megabytes(hnsw.ours_rss_kb * 1024):.1f} MB",
        f"- HNSW index after ours: {', '.join(hnsw.indexes_after_ours)}; after psql: {', '.join(hnsw.indexes_after_psql)}",
        f"- target ours (no safety backup: the anchor's work) >= {TARGET_HNSW_SPEEDUP:.0f} x faster than \\copy FROM: "
        f"{speedup:.2f} x -> {verdict(speedup >= TARGET_HNSW_SPEEDUP)}; with the safety backup "
        f"{hnsw.psql_seconds / hnsw.safety_seconds:.2f} x",
        *format_drill(hnsw.drill),
    ]


def format_drill(drill: DrillFigures | None) -> list[str]:
    if drill is None:
        return []
    share = drill.recall_seconds / drill.seconds
    return [
        f"- drill of a set of N = {drill.rows} rows with an HNSW index: {drill.seconds:.2f} s, of which the "
        f"search-recall step {drill.recall_seconds:.2f} s "
        f"({drill.queries} queries, recall@10 {drill.recall:.3f}; {drill.live_queries} exact answers compared with "
        f"the live table, {drill.live_differences} differ)",
        f"- target recall step <= {TARGET_RECALL_SHARE:.0%} of the drill: {share:.1%} -> "
        f"{verdict(share <= TARGET_RECALL_SHARE)}",
    ]


def table_row(runs: Runs, anchor: float, csv_bytes: int) -> str:
    times = ", ".join(f"{seconds:.2f}" for seconds in runs.seconds)
    rate = megabytes(csv_bytes) / runs.median
    return f"| {runs.name} | {runs.median:.2f} | {runs.median / anchor:.2f} | {rate:.0f} | {times} |"


def machine() -> str:
    return f"nproc {len(os.sched_getaffinity(0))}, {cpu_model()}"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    raise SystemExit(main())
