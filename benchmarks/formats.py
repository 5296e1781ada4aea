"""Set formats in ``make bench``: each format's backup and restore, measured in the same run as
``psql \\copy`` and ``pg_dump -Fc``, plus a CSV restore run as a Dagster job.

Targets (issue #11), reported as MET or MISSED, never raised:
- pgcopy backup at least 3.5 x faster than psql \\copy csv;
- pgcopy restore (replace) at least 3 x faster than psql TRUNCATE + \\copy FROM csv;
- csv.zst backup at least 12 x faster than pg_dump -Fc, and at most 1.05 x its size;
- csv.zst backup wall time at most 1.10 x its CPU floor (issue #30: on 2 cores compression cannot
  hide behind \\copy, so the target is against the least time these cores allow);
- the restore job (execute_in_process) at 2N rows (200,000 by default) at most 1.20 x psql \\copy FROM;
- peak RSS of a backup of 4N rows at most 1.2 x that of N rows, for every format.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import psycopg2.extensions

from benchmarks.common import (
    own_peak_rss_kb,
    MEMORY_FACTOR,
    REPEATS,
    RESTORE_TIMESTAMP,
    Runs,
    build_database,
    fresh_folder,
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
from benchmarks.cpu_floor import CpuMeter, CpuUse, postmaster_pid
from vector_assets.core.sets.formats import FORMATS
from vector_assets.core.stores import langchain_store
from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE

JOB_DATABASE = "bench_job"
JOB_OVERHEAD_SECONDS, JOB_OVERHEAD_SHARE = 0.3, 1.05  # a job within 0.3 s + 5 % of the core it runs
JOB_ROWS_FACTOR = 2  # 200,000 rows at the default N
TRUNCATE_BOTH = f"TRUNCATE {COLLECTION_TABLE}, {EMBEDDING_TABLE}"


@dataclass
class FormatRuns:
    name: str
    backup: Runs
    restore: Runs
    bytes: int = 0
    files: int = 0
    rss_n_kb: int = 0
    rss_4n_kb: int = 0
    cpu: list[CpuUse] = field(default_factory=list)  # each backup's CPU
    data_checks: Runs | None = None  # the seconds of each backup's data checks, inside its time

    @property
    def backup_cpu(self) -> CpuUse:
        """The median backup's reading (by wall time)."""
        return sorted(self.cpu, key=lambda use: use.wall_seconds)[len(self.cpu) // 2]


@dataclass
class FormatsReport:
    rows: int
    formats: dict[str, FormatRuns]
    psql_backup: Runs
    pg_dump: Runs
    psql_restore: Runs
    job: JobReport | None = None
    backup_jobs: dict[str, BackupJobRuns] = field(default_factory=dict)
    data_checks_alone: list[CpuUse] = field(default_factory=list)  # the embedding table's checks, nothing else running


@dataclass
class BackupJobRuns:
    """The backup job beside run_backup, in one process, per format."""

    format: str
    job: Runs
    core: Runs


@dataclass
class JobReport:
    rows: int
    job: Runs
    call: Runs  # run_restore inside the job, as the op's own metadata reports it
    psql: Runs
    with_safety: Runs | None = None  # the default job: its safety set first
    safety_set: Runs | None = None  # ...of which writing the safety set
    notes: list[str] = field(default_factory=list)


# --- children: one operation each, in a fresh interpreter --------------------------------------


def child_backup(dsn: str, root: Path, fmt: str, timestamp: str | None = None) -> int:
    from vector_assets import settings
    from vector_assets.core.ops.backup import BackupRequest, run_backup

    started = time.perf_counter()
    result = run_backup(BackupRequest(dsn=dsn, root=root, format=fmt, parts=settings.part_policy(), timestamp=timestamp))
    seconds = time.perf_counter() - started
    print(json.dumps({
        "seconds": seconds, "bytes": result.total_bytes,
        "files": sum(len(entry.pieces) for entry in result.manifest.tables.values()),
        "rows": {name: entry.rows for name, entry in result.manifest.tables.items()},
        "data_checks_seconds": sum(entry.data_checks.seconds for entry in result.manifest.tables.values() if entry.data_checks),
        "max_rss_kb": own_peak_rss_kb(),
    }))
    return 0


def child_job_restore(dsn: str, root: Path, timestamp: str, safety_backup: bool = False) -> int:
    """The restore job, as Dagster runs it, with its overhead: an ephemeral instance,
    ``execute_in_process``, replace mode, by default no safety backup (as the psql anchor keeps none)."""
    os.environ["VECTOR_ASSETS_PG_DSN"] = dsn
    os.environ["VECTOR_ASSETS_ROOT"] = str(root)
    import dagster as dg

    from vector_assets.definitions import defs as load_definitions

    job = load_definitions().resolve_job_def("restore_vector_tables")
    config = {"ops": {"restore_from_backup_set": {"config": {
        "truncate_before_restore": True, "safety_backup": safety_backup, "dry_run": False}}}}
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("vector_backups", [timestamp])
        started = time.perf_counter()
        result = job.execute_in_process(instance=instance, run_config=config, partition_key=timestamp)
        seconds = time.perf_counter() - started
        metadata = _step_metadata(result, "restore_from_backup_set")
    safety = metadata.get("safety_set")
    safety_seconds = _safety_set_seconds(root, safety) if safety_backup and safety not in (None, "none") else 0.0
    print(json.dumps({"seconds": seconds, "success": result.success, "call_seconds": metadata.get("duration_seconds"),
                      "safety_seconds": safety_seconds}))
    return 0


def child_job_backup(dsn: str, root: Path, format_name: str) -> int:
    """run_backup, then the backup_vector_tables job (execute_in_process, an ephemeral instance),
    each once, in one warm process: the job's seconds beside the core's it wraps."""
    os.environ["VECTOR_ASSETS_PG_DSN"] = dsn
    os.environ["VECTOR_ASSETS_ROOT"] = str(root)
    import dagster as dg

    from vector_assets.core.ops.backup import BackupRequest, run_backup
    from vector_assets.definitions import defs as load_definitions

    job = load_definitions().resolve_job_def("backup_vector_tables")
    config = {"ops": {"back_up_tables": {"config": {"format": format_name}}}}
    started = time.perf_counter()
    run_backup(BackupRequest(dsn=dsn, root=root, format=format_name))
    core_seconds = time.perf_counter() - started
    with dg.DagsterInstance.ephemeral() as instance:
        started = time.perf_counter()
        result = job.execute_in_process(instance=instance, run_config=config)
        job_seconds = time.perf_counter() - started
    print(json.dumps({"core_seconds": core_seconds, "job_seconds": job_seconds, "success": result.success}))
    return 0


def _safety_set_seconds(root: Path, key: str) -> float:
    """How long writing the safety set took, as its manifest records it; the set is then removed
    so every repetition replaces the same rows."""
    from vector_assets.core.sets.catalog import SetCatalog
    from vector_assets.core.ops.prune import delete_set

    safety = SetCatalog(root).get(key)
    seconds = safety.manifest.duration_seconds
    delete_set(safety, root)
    return seconds


def _step_metadata(result, step: str) -> dict:
    for event in result.events_for_node(step):
        if event.is_successful_output:
            return {key: getattr(value, "value", value) for key, value in event.step_output_data.metadata.items()}
    return {}


# --- the parent --------------------------------------------------------------------------------


def run_child(args: list[str]) -> dict:
    report, _ = run_child_process([sys.executable, "-m", "benchmarks", *args])
    return report


def measure_formats(
    server, bin_dir: Path, dsn: str, dsn4: str | None, rows: int, dims: int, work: Path, *, job: bool = True
) -> FormatsReport:
    """Every format against the anchors at ``rows``; the memory check at 4 x rows on ``dsn4``
    (None: left out) and the restore job (unless ``job`` is False)."""
    formats = {
        name: FormatRuns(name, Runs(f"ours: backup {name}"), Runs(f"ours: restore {name}"), data_checks=Runs(f"data checks in {name}"))
        for name in FORMATS
    }
    psql_backup, pg_dump = Runs("psql \\copy csv (both tables)"), Runs("pg_dump -Fc (both tables)")
    meter = CpuMeter(postmaster=postmaster_pid(dsn))
    for repetition in range(1, REPEATS + 1):
        log(f"formats: backup repetition {repetition}/{REPEATS}")
        for runs in formats.values():
            _time_backup(runs, dsn, work, rows, meter)
        seconds, size = run_psql_copy(bin_dir, dsn, work)
        psql_backup.seconds.append(seconds)
        psql_backup.output_bytes = size
        seconds, size = run_pg_dump(bin_dir, dsn, work)
        pg_dump.seconds.append(seconds)
        pg_dump.output_bytes = size
    for runs in formats.values() if dsn4 is not None else ():
        log(f"formats: memory, one {runs.name} backup of {rows * MEMORY_FACTOR} rows")
        root = fresh_folder(work / "formats4")
        runs.rss_4n_kb = run_child(["--child-format-backup", runs.name, "--dsn", dsn4, "--root", str(root)])["max_rss_kb"]
        shutil.rmtree(root)
    psql_restore = _measure_restores(formats, bin_dir, dsn, rows, dims, work)
    report = FormatsReport(rows, formats, psql_backup, pg_dump, psql_restore,
                           data_checks_alone=measure_data_checks_alone(dsn, meter))
    if job:
        report.job = measure_job_restore(server, bin_dir, rows * JOB_ROWS_FACTOR, dims, work)
        report.backup_jobs = measure_job_backups(server.dsn(JOB_DATABASE), work)
    return report


def measure_job_backups(dsn: str, work: Path) -> dict[str, BackupJobRuns]:
    """Each format's backup job beside run_backup, on the restore job's database (2N rows)."""
    measured = {name: BackupJobRuns(name, Runs(f"backup_vector_tables job, {name}"), Runs(f"run_backup, {name}"))
                for name in FORMATS}
    for repetition in range(1, REPEATS + 1):
        log(f"formats: backup jobs repetition {repetition}/{REPEATS}")
        for runs in measured.values():
            root = fresh_folder(work / "job_backups")
            child = run_child(["--child-job-backup", runs.format, "--dsn", dsn, "--root", str(root)])
            if not child["success"]:
                raise RuntimeError(f"the {runs.format} backup job failed")
            runs.job.seconds.append(child["job_seconds"])
            runs.core.seconds.append(child["core_seconds"])
            shutil.rmtree(root, ignore_errors=True)
    return measured


def measure_data_checks_alone(dsn: str, meter: CpuMeter) -> list[CpuUse]:
    """The data checks of the embedding table alone, in a snapshot transaction as a backup's, each
    repetition's wall time and CPU: what they cost the cores, whatever they run beside."""
    plan = langchain_store().data_check_plan()
    readings = []
    conn = psycopg2.connect(dsn)
    try:
        conn.set_session(isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True)
        for _ in range(REPEATS):
            with conn.cursor() as cursor, meter.step() as reading:
                plan.check(cursor, EMBEDDING_TABLE)
            conn.rollback()
            readings.append(reading.use)
    finally:
        conn.close()
    return readings


def _time_backup(runs: FormatRuns, dsn: str, work: Path, rows: int, meter: CpuMeter) -> None:
    root = fresh_folder(work / "formats")
    with meter.step() as reading:
        report = run_child(["--child-format-backup", runs.name, "--dsn", dsn, "--root", str(root)])
    runs.cpu.append(reading.use)
    shutil.rmtree(root)
    if report["rows"].get(EMBEDDING_TABLE) != rows:
        raise RuntimeError(f"{runs.name} backup copied {report['rows']}, expected {rows} embeddings")
    runs.backup.seconds.append(report["seconds"])
    runs.data_checks.seconds.append(report["data_checks_seconds"])
    runs.bytes, runs.files = report["bytes"], report["files"]
    runs.rss_n_kb = max(runs.rss_n_kb, report["max_rss_kb"])


def _measure_restores(formats: dict[str, FormatRuns], bin_dir: Path, dsn: str, rows: int, dims: int, work: Path) -> Runs:
    roots = {}
    for name in formats:
        roots[name] = fresh_folder(work / f"restore_{name.replace('.', '_')}")
        run_child(["--child-format-backup", name, "--dsn", dsn, "--root", str(roots[name]), "--timestamp", RESTORE_TIMESTAMP])
    csv_folder = roots["csv"] / "vector_bak"
    psql = Runs("psql -1: TRUNCATE + \\copy FROM csv")
    for repetition in range(1, REPEATS + 1):
        log(f"formats: restore repetition {repetition}/{REPEATS}")
        for name, runs in formats.items():
            report = run_child([
                "--child-restore", "--no-safety-backup", "--dsn", dsn, "--root", str(roots[name]),
                "--timestamp", RESTORE_TIMESTAMP,
            ])  # fmt: skip
            verify_restored(dsn, rows, dims, f"the {name} restore")
            runs.restore.seconds.append(report["seconds"])
        psql.seconds.append(psql_copy_from(bin_dir, dsn, csv_folder))
        verify_restored(dsn, rows, dims, "psql \\copy FROM")
    for root in roots.values():
        shutil.rmtree(root, ignore_errors=True)
    _vacuum(dsn)
    return psql


def psql_copy_from(bin_dir: Path, dsn: str, folder: Path) -> float:
    """TRUNCATE and ``\\copy FROM`` of a csv set's two files, in one psql transaction."""
    from vector_assets.core.sets.disk_store import DiskFolder
    from vector_assets.core.sets.manifest import Manifest

    manifest = Manifest.read(DiskFolder(folder), next(folder.glob("vector_backup_*.json")).name)
    command = [str(bin_dir / "psql"), "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", TRUNCATE_BOTH]
    for table in (COLLECTION_TABLE, EMBEDDING_TABLE):
        entry = manifest.tables[table]
        columns = ", ".join(quote_identifier(column.name) for column in entry.columns)
        command += ["-c", f"\\copy {table} ({columns}) FROM {quote_literal(str(folder / entry.file))} csv header"]
    started = time.perf_counter()
    run_command(command)
    return time.perf_counter() - started


def _vacuum(dsn: str) -> None:
    import psycopg2

    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"VACUUM (FREEZE, ANALYZE) {COLLECTION_TABLE}, {EMBEDDING_TABLE}")
    finally:
        conn.close()


def measure_job_restore(server, bin_dir: Path, job_rows: int, dims: int, work: Path) -> JobReport:
    dsn = server.dsn(JOB_DATABASE)
    build_database(server.dsn("postgres"), dsn, job_rows, dims)
    root = fresh_folder(work / "job_set")
    run_child(["--child-format-backup", "csv", "--dsn", dsn, "--root", str(root), "--timestamp", RESTORE_TIMESTAMP])
    report = JobReport(job_rows, Runs("ours: restore_vector_tables job (execute_in_process)"),
                       Runs("ours: run_restore inside that job"), Runs("psql -1: TRUNCATE + \\copy FROM csv"),
                       Runs("ours: the default job, with its safety set"), Runs("ours: writing that safety set"))
    for repetition in range(1, REPEATS + 1):
        log(f"formats: restore job repetition {repetition}/{REPEATS} at {job_rows} rows")
        job = run_child(["--child-job-restore", "--dsn", dsn, "--root", str(root), "--timestamp", RESTORE_TIMESTAMP])
        if not job["success"]:
            raise RuntimeError("the restore job failed")
        verify_restored(dsn, job_rows, dims, "the restore job")
        report.job.seconds.append(job["seconds"])
        report.call.seconds.append(float(job["call_seconds"] or 0.0))
        report.psql.seconds.append(psql_copy_from(bin_dir, dsn, root / "vector_bak"))
        verify_restored(dsn, job_rows, dims, "psql \\copy FROM")
        safe = run_child(["--child-job-restore", "--safety-backup", "--dsn", dsn, "--root", str(root),
                          "--timestamp", RESTORE_TIMESTAMP])
        if not safe["success"]:
            raise RuntimeError("the restore job with its safety set failed")
        report.with_safety.seconds.append(safe["seconds"])
        report.safety_set.seconds.append(safe["safety_seconds"])
    shutil.rmtree(root, ignore_errors=True)
    _vacuum(dsn)
    return report


# --- the report --------------------------------------------------------------------------------


def format_formats(report: FormatsReport) -> list[str]:
    backup_anchor, restore_anchor = report.psql_backup.median, report.psql_restore.median
    lines = [
        f"### set formats at {report.rows} rows (median of {REPEATS}, interleaved; restores in replace mode, "
        "no safety backup)",
        "",
        "| format | files | size MB | x pg_dump size | backup s | x psql \\copy | MB/s | restore s | x psql \\copy FROM "
        "| RSS N MiB | RSS 4N / N |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for runs in report.formats.values():
        lines.append(
            f"| {runs.name} | {runs.files} | {megabytes(runs.bytes):.1f} | {runs.bytes / report.pg_dump.output_bytes:.2f} "
            f"| {runs.backup.median:.2f} | {runs.backup.median / backup_anchor:.2f} "
            f"| {megabytes(runs.bytes) / runs.backup.median:.0f} | {runs.restore.median:.2f} "
            f"| {runs.restore.median / restore_anchor:.2f} | {runs.rss_n_kb / 1024:.0f} | "
            f"{f'{runs.rss_4n_kb / runs.rss_n_kb:.2f}' if runs.rss_4n_kb else 'not measured'} |"
        )
    lines += [
        f"| psql \\copy csv / \\copy FROM | 2 | {megabytes(report.psql_backup.output_bytes):.1f} | "
        f"{report.psql_backup.output_bytes / report.pg_dump.output_bytes:.2f} | {backup_anchor:.2f} | 1.00 | "
        f"{megabytes(report.psql_backup.output_bytes) / backup_anchor:.0f} | {restore_anchor:.2f} | 1.00 | | |",
        f"| pg_dump -Fc | 1 | {megabytes(report.pg_dump.output_bytes):.1f} | 1.00 | {report.pg_dump.median:.2f} | "
        f"{report.pg_dump.median / backup_anchor:.2f} | | | | | |",
        "",
        *_targets(report),
    ]
    if report.job is not None:
        lines += ["", *_format_job(report.job)]
    if report.backup_jobs:
        lines += ["", *_format_backup_jobs(report.backup_jobs, report.job.rows if report.job else report.rows)]
    return lines


def _format_backup_jobs(measured: dict[str, BackupJobRuns], rows: int) -> list[str]:
    lines = [
        f"### the backup job beside run_backup at {rows} rows (one process each, median of {REPEATS})",
        "",
        "| format | run_backup s | job s | job - core s | target core + 0.3 s + 5% |",
        "|---|---:|---:|---:|---|",
    ]
    for runs in measured.values():
        core, job = runs.core.median, runs.job.median
        lines.append(f"| {runs.format} | {core:.2f} | {job:.2f} | {job - core:.2f} | "
                     f"{verdict(job <= core * JOB_OVERHEAD_SHARE + JOB_OVERHEAD_SECONDS)} |")
    return lines


def _targets(report: FormatsReport) -> list[str]:
    f, psql_b, psql_r, dump = report.formats, report.psql_backup.median, report.psql_restore.median, report.pg_dump
    pgcopy_speedup = psql_b / f["pgcopy"].backup.median
    pgcopy_restore = psql_r / f["pgcopy"].restore.median
    zst_vs_dump = dump.median / f["csv.zst"].backup.median
    zst_size = f["csv.zst"].bytes / dump.output_bytes
    zst_cpu = f["csv.zst"].backup_cpu
    zst_vs_floor = zst_cpu.wall_seconds / zst_cpu.floor_seconds
    csv_vs_psql = f["csv"].backup.median / psql_b
    checks_share = f["pgcopy"].data_checks.median / f["pgcopy"].backup.median
    rss_ratios = [runs.rss_4n_kb / runs.rss_n_kb for runs in f.values() if runs.rss_4n_kb]
    lines = [
        f"- target pgcopy backup >= 3.5 x faster than psql \\copy: {pgcopy_speedup:.2f} x -> {verdict(pgcopy_speedup >= 3.5)}",
        f"- target pgcopy restore >= 3 x faster than psql \\copy FROM: {pgcopy_restore:.2f} x -> {verdict(pgcopy_restore >= 3)}",
        f"- target csv.zst backup >= 12 x faster than pg_dump -Fc: {zst_vs_dump:.2f} x -> {verdict(zst_vs_dump >= 12)}; "
        f"size <= 1.05 x: {zst_size:.2f} x -> {verdict(zst_size <= 1.05)}",
        f"- target csv.zst backup (child process wall) <= 1.10 x its CPU floor: {zst_vs_floor:.2f} x -> "
        f"{verdict(zst_vs_floor <= 1.10)}; {zst_cpu.describe()}; estimated on 4 cores {zst_cpu.floor_on(4):.2f} s, "
        f"on 8 cores {zst_cpu.floor_on(8):.2f} s; x psql \\copy {f['csv.zst'].backup.median / psql_b:.2f}",
        f"- target csv backup <= 1.10 x psql \\copy: {csv_vs_psql:.2f} x -> {verdict(csv_vs_psql <= 1.10)}",
        f"- target data checks <= 5 % of a pgcopy backup: {f['pgcopy'].data_checks.median:.3f} s of "
        f"{f['pgcopy'].backup.median:.2f} s, {checks_share:.1%} -> {verdict(checks_share <= 0.05)}",
    ]
    lines += _data_checks_against_floor(report)
    if rss_ratios:  # not measured at 4N rows (--only-formats-at-4n)
        worst = max(rss_ratios)
        lines.append(f"- target RSS(4N)/RSS(N) <= 1.2 for every format: worst {worst:.2f} -> {verdict(worst <= 1.2)}")
    return lines


def _data_checks_against_floor(report: FormatsReport) -> list[str]:
    """The checks beside the parts share the cores with them: at best they add their CPU seconds
    divided by the cores to the backup, whatever their own wall time beside the parts."""
    if not report.data_checks_alone:
        return []
    alone = sorted(report.data_checks_alone, key=lambda use: use.wall_seconds)[len(report.data_checks_alone) // 2]
    backup = report.formats["pgcopy"].backup_cpu
    least = alone.total / backup.cores
    return [
        f"  - alone: {alone.wall_seconds:.3f} s wall, {alone.total:.3f} CPU s (PostgreSQL {alone.postgres:.3f}); the pgcopy "
        f"backup's CPU {backup.total:.2f} s, floor {backup.floor_seconds:.2f} s on {backup.cores} cores: the checks add at "
        f"least {least:.3f} s, {least / report.formats['pgcopy'].backup.median:.1%} of the backup"
    ]


def _format_job(job: JobReport) -> list[str]:
    ratio = job.job.median / job.psql.median
    overhead = job.job.median - job.call.median
    return [
        f"### the restore job at {job.rows} rows, csv, replace mode (median of {REPEATS})",
        "",
        "| operation | median s | x psql \\copy FROM |",
        "|---|---:|---:|",
        *[f"| {runs.name} | {runs.median:.2f} | {runs.median / job.psql.median:.2f} |" for runs in (job.job, job.call, job.psql)],
        "",
        f"- Dagster's share (job minus run_restore): {overhead:.2f} s",
        f"- target job <= 1.20 x psql \\copy FROM: {ratio:.2f} x -> {verdict(ratio <= 1.20)}",
        *_format_safety(job),
    ]


def _format_safety(job: JobReport) -> list[str]:
    if job.with_safety is None or not job.with_safety.seconds:
        return []
    ratio = job.with_safety.median / job.job.median
    share = job.safety_set.median / job.with_safety.median
    return [
        f"- the default job (safety set first): {job.with_safety.median:.2f} s, {ratio:.2f} x the job without it; "
        f"writing the safety set (a backup of the rows replaced, in the set's format) {job.safety_set.median:.2f} s "
        f"= {share:.0%} of it",
        f"- target default job <= 1.30 x without the safety set: {ratio:.2f} x -> {verdict(ratio <= 1.30)}",
    ]


