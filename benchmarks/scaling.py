"""How cost grows with the table: ``make bench``'s scaling section (``python -m benchmarks --only-scaling``).

For each size (50,000 to 800,000 rows x 384 by default; ``--scaling-sizes`` for others, and
``--scaling-big`` adds 1,600,000), in one run and on one server:

- backups in ``csv``, ``csv.zst``, ``pgcopy`` and ``pgcopy.zst`` beside ``psql \\copy`` of the same tables;
- replace-mode restores (no safety set) of ``csv``, ``pgcopy`` and ``pgcopy.zst`` beside
  ``psql -1`` TRUNCATE + ``\\copy FROM``, with the WAL written and the checkpoints started;
- peak RSS of each of our backups and restores (each runs in a fresh child process);
- an increment after 1% of the rows changed, and the restore of that chain;
- the drill of a set whose table has an HNSW index, with the index's rebuild.

Autovacuum is held off each size's tables (they start vacuumed and analyzed), so no worker
shares the cores with a timed step, ours or the anchor's.

Every step is measured with the CPU meter (``benchmarks.cpu_floor``): CPU seconds of ours,
PostgreSQL's and the longest thread, and the step's CPU floor on this machine's cores.

The figures go into one pandas DataFrame per run, written as CSV beside a picture of time per
million rows and MB/s against rows (log scales), under ``benchmarks/results/``.

Targets, as ratios within the run (the sizes 100,000 and 800,000, or else the smallest and the
largest measured), reported as MET or MISSED:
- our seconds per million rows at 800,000 <= 1.15 x at 100,000, every format, backup and restore;
- peak RSS at 800,000 <= 1.1 x at 100,000 (the worst of our backups and restores);
- our time over ``\\copy``'s at 800,000 <= 1.10 x the same ratio at 100,000;
- the ``csv.zst`` backup's wall time <= 1.10 x its CPU floor.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psycopg2

from benchmarks.common import (
    RESTORE_TIMESTAMP,
    build_database,
    fresh_folder,
    log,
    run_child_process,
    run_psql_copy,
    verdict,
    verify_restored,
)
from benchmarks.cpu_floor import CpuMeter, CpuUse, postmaster_pid
from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE

DEFAULT_SIZES = (50_000, 100_000, 200_000, 400_000, 800_000)
BIG_SIZE = 1_600_000
BACKUP_FORMATS = ("csv", "csv.zst", "pgcopy", "pgcopy.zst")
RESTORE_FORMATS = ("csv", "pgcopy", "pgcopy.zst")
INCREMENT_FORMAT = "pgcopy.zst"
DRILL_FORMAT = "pgcopy"
CHANGED_SHARE = 0.01
DEFAULT_REPEATS = 3
# The drill's HNSW graph at 800,000 x 384 is about 2 GB: the benchmark lets it fit, so the build
# it times is the one an operator who sized VECTOR_ASSETS_INDEX_BUILD_MEMORY would get.
BUILD_MEMORY_BYTES = 4 * 10**9
RESULTS_DIR = Path("benchmarks/results")
TARGET_PER_ROW_GROWTH = 1.15
TARGET_RSS_GROWTH = 1.1
TARGET_ANCHOR_DRIFT = 1.10
TARGET_FLOOR_RATIO = 1.10
PSQL = "psql \\copy"
FORMAT_COLORS = {"csv": "tab:blue", "csv.zst": "tab:orange", "pgcopy": "tab:green", "pgcopy.zst": "tab:red"}


@dataclass
class Measurement:
    """One timed step at one size: what the DataFrame gets a row of."""

    rows: int
    operation: str  # backup, restore, increment, chain restore, drill, HNSW build
    tool: str  # ours, or the anchor's name
    format: str
    seconds: list[float] = field(default_factory=list)
    bytes: int = 0
    max_rss_kb: int = 0
    cpu: list[CpuUse] = field(default_factory=list)
    extra: dict[str, float | str] = field(default_factory=dict)

    def record(self, seconds: float, cpu: CpuUse | None) -> None:
        self.seconds.append(seconds)
        if cpu is not None:
            self.cpu.append(cpu)

    def as_row(self, dims: int) -> dict:
        median = statistics.median(self.seconds)
        cpu = sorted(self.cpu, key=lambda use: use.wall_seconds)[len(self.cpu) // 2] if self.cpu else None
        row = {
            "rows": self.rows, "dims": dims, "operation": self.operation, "tool": self.tool, "format": self.format,
            "seconds": median, "runs": " ".join(f"{s:.3f}" for s in self.seconds),
            "s_per_million_rows": median / self.rows * 1e6, "bytes": self.bytes,
            "mb_per_s": self.bytes / 1e6 / median if self.bytes else None,
            "max_rss_mb": self.max_rss_kb / 1024 if self.max_rss_kb else None,
        }
        if cpu is not None:
            row |= {
                "cpu_ours_s": cpu.ours, "cpu_postgres_s": cpu.postgres, "cpu_s3_s": cpu.s3_server,
                "longest_thread_s": cpu.longest_thread, "cores": cpu.cores, "cpu_floor_s": cpu.floor_seconds,
                "wall_over_floor": cpu.wall_seconds / cpu.floor_seconds if cpu.floor_seconds else None,
                "floor_4_cores_s": cpu.floor_on(4), "floor_8_cores_s": cpu.floor_on(8),
                "cpu_others_s": cpu.others, "floor_with_others_s": cpu.floor_with_others,
                "wall_over_floor_with_others": cpu.wall_seconds / cpu.floor_with_others if cpu.floor_with_others else None,
            }
        return row | self.extra


def measure_scaling(
    server, sizes: list[int], dims: int, work: Path, repeats: int = DEFAULT_REPEATS, csv_path: Path | None = None,
    drill_max: int | None = None,
):
    """Every size in turn, smallest first; returns the run's DataFrame. With ``csv_path`` the
    sizes done so far are written there after each one, so a long run that breaks keeps them.
    ``drill_max``: drill only sizes up to it (the HNSW builds at 400,000 and 800,000 rows are most
    of a full run's 90 minutes here, and none of the growth targets reads them)."""
    import pandas as pd

    meter = CpuMeter(postmaster=postmaster_pid(server.dsn("postgres")))
    measurements: list[Measurement] = []
    for rows in sorted(sizes):
        dsn = server.dsn(f"scale_{rows}")
        build_database(server.dsn("postgres"), dsn, rows, dims)
        _hold_autovacuum_off(dsn)
        measurements += measure_backups(server.bin_dir, dsn, rows, work, meter, repeats)
        measurements += measure_restores(server.bin_dir, dsn, rows, dims, work, meter, repeats)
        measurements += measure_increment(server, dsn, rows, work, meter)
        if drill_max is None or rows <= drill_max:
            measurements += measure_drill(server, rows, dims, work, meter)
        if csv_path is not None:
            pd.DataFrame([m.as_row(dims) for m in measurements]).to_csv(csv_path, index=False, float_format="%.4f")
    return pd.DataFrame([measurement.as_row(dims) for measurement in measurements])


# --- backups --------------------------------------------------------------------------------------


def measure_backups(bin_dir: Path, dsn: str, rows: int, work: Path, meter: CpuMeter, repeats: int) -> list[Measurement]:
    ours = {name: Measurement(rows, "backup", "ours", name) for name in BACKUP_FORMATS}
    anchor = Measurement(rows, "backup", PSQL, "csv")
    log(f"scaling {rows:,}: warm-up \\copy")
    run_psql_copy(bin_dir, dsn, work)
    for repetition in range(1, repeats + 1):
        log(f"scaling {rows:,}: backups, repetition {repetition}/{repeats}")
        for name, measurement in ours.items():
            root = fresh_folder(work / "scaling_backup")
            with meter.step() as reading:
                report, _ = run_child_process([
                    sys.executable, "-m", "benchmarks", "--child-format-backup", name, "--dsn", dsn, "--root", str(root),
                ])  # fmt: skip
            shutil.rmtree(root)
            if report["rows"].get(EMBEDDING_TABLE) != rows:
                raise RuntimeError(f"{name} backup copied {report['rows']}, expected {rows} embeddings")
            measurement.record(report["seconds"], reading.use)
            measurement.bytes = report["bytes"]
            measurement.max_rss_kb = max(measurement.max_rss_kb, report["max_rss_kb"])
        with meter.step() as reading:
            seconds, size = run_psql_copy(bin_dir, dsn, work)
        anchor.record(seconds, reading.use)
        anchor.bytes = size
    return [*ours.values(), anchor]


# --- restores -------------------------------------------------------------------------------------


def measure_restores(
    bin_dir: Path, dsn: str, rows: int, dims: int, work: Path, meter: CpuMeter, repeats: int
) -> list[Measurement]:
    from benchmarks.formats import psql_copy_from

    roots = {}
    for name in RESTORE_FORMATS:
        roots[name] = fresh_folder(work / f"scaling_restore_{name.replace('.', '_')}")
        report, _ = run_child_process([
            sys.executable, "-m", "benchmarks", "--child-format-backup", name, "--dsn", dsn, "--root", str(roots[name]),
            "--timestamp", RESTORE_TIMESTAMP,
        ])  # fmt: skip
    ours = {name: Measurement(rows, "restore", "ours", name, bytes=_set_bytes(roots[name])) for name in RESTORE_FORMATS}
    anchor = Measurement(rows, "restore", "psql -1 \\copy FROM", "csv", bytes=ours["csv"].bytes)
    server_work = {name: [] for name in [*RESTORE_FORMATS, "psql"]}
    for repetition in range(1, repeats + 1):
        log(f"scaling {rows:,}: restores, repetition {repetition}/{repeats}")
        for name, measurement in ours.items():
            before = server_counters(dsn)
            with meter.step() as reading:
                report, _ = run_child_process([
                    sys.executable, "-m", "benchmarks", "--child-restore", "--no-safety-backup", "--dsn", dsn,
                    "--root", str(roots[name]), "--timestamp", RESTORE_TIMESTAMP,
                ])  # fmt: skip
            server_work[name].append(counter_changes(before, server_counters(dsn)))
            verify_restored(dsn, rows, dims, f"the {name} restore")
            measurement.record(report["seconds"], reading.use)
            measurement.max_rss_kb = max(measurement.max_rss_kb, report["max_rss_kb"])
            measurement.extra["copy_s"] = sum(report["copy_seconds"].values())
        before = server_counters(dsn)
        with meter.step() as reading:
            seconds = psql_copy_from(bin_dir, dsn, roots["csv"] / "vector_bak")
        server_work["psql"].append(counter_changes(before, server_counters(dsn)))
        verify_restored(dsn, rows, dims, "psql \\copy FROM")
        anchor.record(seconds, reading.use)
    for name, measurement in [*ours.items(), ("psql", anchor)]:
        measurement.extra |= median_counters(server_work[name])
    for root in roots.values():
        shutil.rmtree(root, ignore_errors=True)
    _vacuum(dsn)
    return [*ours.values(), anchor]


def _set_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in (root / "vector_bak").iterdir() if not path.name.endswith((".json", ".txt")))


def server_counters(dsn: str) -> dict[str, float]:
    """WAL written and checkpoints begun so far, server-wide (PostgreSQL 17 and later)."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT wal_bytes, wal_fpi FROM pg_stat_wal")
            wal_bytes, wal_fpi = cursor.fetchone()
            cursor.execute("SELECT num_timed + num_requested, num_requested, buffers_written FROM pg_stat_checkpointer")
            checkpoints, requested, buffers = cursor.fetchone()
    finally:
        conn.close()
    return {"wal_mb": float(wal_bytes) / 1e6, "wal_fpi": float(wal_fpi), "checkpoints": float(checkpoints),
            "checkpoints_requested": float(requested), "checkpoint_buffers": float(buffers)}


@contextmanager
def server_max_wal_size(dsn: str, size: str | None):
    """Run the series with the bench server's ``max_wal_size`` set to ``size`` (reset after), to
    tell the checkpoints a large restore starts from the restore's own cost; yields the value in force."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            if size is not None:
                cursor.execute("ALTER SYSTEM SET max_wal_size = %s", (size,))
                cursor.execute("SELECT pg_reload_conf()")
                time.sleep(0.5)  # the postmaster applies a reload asynchronously
            cursor.execute("CHECKPOINT")
            cursor.execute("SHOW max_wal_size")
            effective = cursor.fetchone()[0]
        yield effective
    finally:
        if size is not None:
            with conn.cursor() as cursor:
                cursor.execute("ALTER SYSTEM RESET max_wal_size")
                cursor.execute("SELECT pg_reload_conf()")
        conn.close()


def counter_changes(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in before}


def median_counters(readings: list[dict[str, float]]) -> dict[str, float]:
    return {name: statistics.median(reading[name] for reading in readings) for name in readings[0]} if readings else {}


def _hold_autovacuum_off(dsn: str) -> None:
    """No autovacuum worker on the size's tables while their steps are timed: one started by the
    build, or by the reload before, took two cores' CPU from whichever step it overlapped (the
    anchor's backups at 100,000 rows in one run). The tables start vacuumed and analyzed instead."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            for table in (COLLECTION_TABLE, EMBEDDING_TABLE):
                cursor.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false, toast.autovacuum_enabled = false)")
    finally:
        conn.close()
    _vacuum(dsn)


def _vacuum(dsn: str) -> None:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"VACUUM (FREEZE, ANALYZE) {COLLECTION_TABLE}, {EMBEDDING_TABLE}")
            cursor.execute("CHECKPOINT")  # the next size's first step does not pay for this one's dirty pages
    finally:
        conn.close()


# --- an increment and its chain -------------------------------------------------------------------


def measure_increment(server, dsn: str, rows: int, work: Path, meter: CpuMeter) -> list[Measurement]:
    """A full set with its row index, 1% of the rows changed, an increment, and the restore of
    that chain, in a copy of the table (checked row for row against the copy)."""
    from benchmarks.common import copy_database, drop_database
    from benchmarks.increments import _change_rows, _table_digest, _timed_backup, _timed_restore
    from vector_assets.core.ops.backup import BackupRequest, run_backup
    from vector_assets.core.sets.manifest import INCREMENTAL

    maintenance, name = server.dsn("postgres"), f"scale_{rows}_increment"
    copy_database(maintenance, dsn, name)
    copy = server.dsn(name)
    root = fresh_folder(work / "scaling_chain")
    log(f"scaling {rows:,}: an increment at {CHANGED_SHARE:.0%} change, and its chain restore")
    _timed_backup(copy, root, INCREMENT_FORMAT, row_index=True)
    _change_rows(copy, max(3, int(rows * CHANGED_SHARE)), 1)
    increment = Measurement(rows, "increment", "ours", INCREMENT_FORMAT)
    with meter.step() as reading:
        started = time.perf_counter()
        result = run_backup(BackupRequest(dsn=copy, root=root, format=INCREMENT_FORMAT, kind=INCREMENTAL))
        seconds = time.perf_counter() - started
    if result.manifest.kind != INCREMENTAL:
        raise RuntimeError(f"the increment fell back to a full set: {result.manifest.fallback}")
    increment.record(seconds, reading.use)
    increment.bytes = sum(entry.bytes for entry in result.manifest.tables.values())
    increment.extra["row_index_bytes"] = sum(
        part.bytes for entry in result.manifest.tables.values() for part in (entry.rows_index, entry.deleted_keys) if part
    )
    expected = _table_digest(copy)
    chain = Measurement(rows, "chain restore", "ours", INCREMENT_FORMAT)
    with meter.step() as reading:
        seconds = _timed_restore(copy, root, result.timestamp)
    chain.record(seconds, reading.use)
    if _table_digest(copy) != expected:
        raise RuntimeError("the chain restore does not hold the rows it was made from")
    shutil.rmtree(root, ignore_errors=True)
    drop_database(maintenance, name)
    return [increment, chain]


# --- the drill, with its HNSW rebuild -------------------------------------------------------------


def measure_drill(server, rows: int, dims: int, work: Path, meter: CpuMeter) -> list[Measurement]:
    """The drill of a set of a table with an HNSW index: its restore rebuilds the index."""
    from vector_assets.core.ops.backup import BackupRequest, run_backup
    from vector_assets.core.ops.drill import DrillRequest, run_drill
    from vector_assets.core.pg.index_builds import IndexBuildSettings

    dsn = server.dsn(f"scale_{rows}_hnsw")
    build_database(server.dsn("postgres"), dsn, rows, dims)
    ensure_hnsw_index(dsn)
    root = fresh_folder(work / "scaling_drill")
    backup = run_backup(BackupRequest(dsn=dsn, root=root, format=DRILL_FORMAT))
    log(f"scaling {rows:,}: the drill of a {DRILL_FORMAT} set with an HNSW index")
    settings = IndexBuildSettings(memory_cap_bytes=BUILD_MEMORY_BYTES, memory_cap_name="the benchmark's build memory")
    with meter.step() as reading:
        result = run_drill(DrillRequest(dsn=dsn, root=root, index_builds=settings))
    shutil.rmtree(root, ignore_errors=True)
    if not result.passed or not result.restore.index_builds:
        raise RuntimeError(f"the drill of {rows} rows failed or rebuilt no index: {[t.message for t in result.tables]}")
    drill = Measurement(rows, "drill", "ours", DRILL_FORMAT, bytes=backup.total_bytes)
    drill.record(result.duration_seconds, reading.use)
    drill.extra |= {"restore_s": result.restore.duration_seconds, "recall_s": result.recall_seconds}
    hnsw = max(result.restore.index_builds, key=lambda build: build.seconds)
    build = Measurement(rows, "HNSW build", "ours", DRILL_FORMAT)
    build.record(hnsw.seconds, None)
    build.extra |= {
        "workers": hnsw.workers, "maintenance_work_mem_mb": hnsw.memory_bytes / 1e6,
        "estimated_need_mb": hnsw.needed_bytes / 1e6, "spilled": "yes" if hnsw.spilled else "no",
    }
    return [drill, build]


def ensure_hnsw_index(dsn: str) -> None:
    """The source's HNSW index, built once with memory for its graph and reused by later runs."""
    from benchmarks.common import hnsw_indexes

    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cursor:
            if hnsw_indexes(cursor):
                return
            log("building the source's HNSW index (once) ...")
            cursor.execute(f"SET maintenance_work_mem = '{BUILD_MEMORY_BYTES // 10**6}MB'")
            cursor.execute(f"CREATE INDEX ON {EMBEDDING_TABLE} USING hnsw (embedding vector_cosine_ops)")
        conn.commit()
    finally:
        conn.close()


# --- results: the CSV, the picture, the targets ---------------------------------------------------


def results_path(folder: Path = RESULTS_DIR) -> Path:
    """``scaling-<UTC start time>.csv`` in ``folder``; its picture is the same name in ``.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"scaling-{datetime.now(timezone.utc):%Y%m%d-%H%M}.csv"


def write_results(frame, csv_path: Path) -> tuple[Path, Path]:
    """The frame as CSV, and the picture drawn from it beside it."""
    png_path = csv_path.with_suffix(".png")
    frame.to_csv(csv_path, index=False, float_format="%.4f")
    draw(frame, png_path)
    return csv_path, png_path


def draw(frame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (per_row, rate) = plt.subplots(1, 2, figsize=(13, 5.2))
    lines = frame[frame.operation.isin(["backup", "restore"])]
    for (operation, tool, fmt), group in lines.groupby(["operation", "tool", "format"], sort=False):
        group = group.sort_values("rows")
        ours = tool == "ours"
        color = FORMAT_COLORS.get(fmt) if ours else ("black" if operation == "backup" else "grey")
        style = dict(marker="o" if ours else "s", linestyle="-" if operation == "backup" else "--",
                     linewidth=1.6 if ours else 2.4, color=color)
        label = f"{operation}: {'ours ' + fmt if ours else tool}"
        per_row.plot(group.rows, group.s_per_million_rows, label=label, **style)
        rate.plot(group.rows, group.mb_per_s, label=label, **style)
    for axes, title, unit in ((per_row, "time per million rows", "s per million rows"), (rate, "throughput", "MB/s (set size / time)")):
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel(f"rows (x {int(frame.dims.iloc[0])} dims)")
        axes.set_ylabel(unit)
        axes.set_title(title)
        axes.grid(True, which="both", alpha=0.3)
    rate.legend(fontsize=7, loc="best")
    figure.suptitle(f"vector_assets scaling, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC (solid: backup, dashed: restore; black/grey: psql)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def reference_sizes(frame) -> tuple[int, int]:
    """100,000 and 800,000 when both were measured, else the smallest and the largest."""
    sizes = sorted(frame.rows.unique())
    low = 100_000 if 100_000 in sizes else sizes[0]
    high = 800_000 if 800_000 in sizes else sizes[-1]
    return int(low), int(high)


def targets(frame) -> list[str]:
    low, high = reference_sizes(frame)
    if low == high:
        return [f"- the growth targets compare two sizes; this run measured only {low:,} rows"]
    lines = [f"- targets compare {low:,} rows with {high:,} rows in this run"]
    ours = frame[(frame.tool == "ours") & frame.operation.isin(["backup", "restore"])]
    at = {size: ours[ours.rows == size].set_index(["operation", "format"]) for size in (low, high)}
    growth = (at[high].s_per_million_rows / at[low].s_per_million_rows).dropna()
    worst = growth.idxmax()
    lines.append(
        f"- s per million rows at {high:,} <= {TARGET_PER_ROW_GROWTH} x at {low:,}, every format: "
        + ", ".join(f"{op} {fmt} {ratio:.2f}" for (op, fmt), ratio in growth.items())
        + f"; worst {growth.max():.2f} ({' '.join(worst)}) -> {verdict(growth.max() <= TARGET_PER_ROW_GROWTH)}"
    )
    rss = (at[high].max_rss_mb / at[low].max_rss_mb).dropna()
    lines.append(f"- peak RSS at {high:,} <= {TARGET_RSS_GROWTH} x at {low:,}: worst {rss.max():.2f} "
                 f"({' '.join(rss.idxmax())}) -> {verdict(rss.max() <= TARGET_RSS_GROWTH)}")
    drift = []
    for operation in ("backup", "restore"):
        anchor = frame[(frame.operation == operation) & (frame.tool != "ours")].set_index("rows").seconds
        for fmt in ours[ours.operation == operation].format.unique():
            mine = at[low].loc[(operation, fmt)].seconds, at[high].loc[(operation, fmt)].seconds
            drift.append((f"{operation} {fmt}", (mine[1] / anchor[high]) / (mine[0] / anchor[low])))
    worst_drift = max(drift, key=lambda item: item[1])
    lines.append(
        f"- ours / \\copy at {high:,} <= {TARGET_ANCHOR_DRIFT} x the same at {low:,}: "
        + ", ".join(f"{what} {ratio:.2f}" for what, ratio in drift)
        + f"; worst {worst_drift[1]:.2f} -> {verdict(worst_drift[1] <= TARGET_ANCHOR_DRIFT)}"
    )
    zst = frame[(frame.operation == "backup") & (frame.format == "csv.zst") & (frame.tool == "ours")].set_index("rows")
    if "wall_over_floor" in zst:
        ratios = zst.wall_over_floor.dropna()
        lines.append(
            f"- csv.zst backup wall <= {TARGET_FLOOR_RATIO} x its CPU floor: "
            + ", ".join(f"{rows:,} {ratio:.2f}" for rows, ratio in ratios.items())
            + f" -> {verdict(ratios.max() <= TARGET_FLOOR_RATIO)}"
        )
    return lines


def per_row_table(frame) -> str:
    """Seconds per million rows by size (rows) and step (columns), ours beside the anchors; then
    peak RSS and the drill. The README's scaling table."""
    steps = frame.assign(step=frame.operation + " " + frame.tool.where(frame.tool != "ours", "") + " " + frame.format)
    steps["step"] = steps.step.str.replace("  ", " ").str.replace("psql \\copy csv", "\\copy").str.replace(
        "psql -1 \\copy FROM csv", "\\copy FROM")
    table = steps.pivot_table(index="rows", columns="step", values="s_per_million_rows", sort=False)
    rss = frame[frame.tool == "ours"].groupby("rows").max_rss_mb.max().rename("peak RSS MiB")
    table = table.join(rss)
    table.index = [f"{rows:,}" for rows in table.index]
    return table.to_markdown(floatfmt=".1f") if _has_tabulate() else table.to_string(float_format="%.1f")


def format_scaling(frame, csv_path: Path, png_path: Path) -> list[str]:
    columns = ["rows", "operation", "tool", "format", "seconds", "s_per_million_rows", "mb_per_s", "max_rss_mb",
               "cpu_floor_s", "wall_over_floor"]
    table = frame[[c for c in columns if c in frame]].copy()
    return [
        "### scaling (time per million rows, throughput and memory against rows)",
        "",
        f"- results: {csv_path} and {png_path}",
        *([f"- the server's max_wal_size: {frame['max_wal_size'].iloc[0]}"] if "max_wal_size" in frame else []),
        "",
        table.to_markdown(index=False, floatfmt=".2f") if _has_tabulate() else table.to_string(index=False),
        "",
        "seconds per million rows:",
        "",
        per_row_table(frame),
        "",
        *targets(frame),
    ]


def _has_tabulate() -> bool:
    """pandas writes Markdown through tabulate, which Dagster brings; plain text without it."""
    import importlib.util

    return importlib.util.find_spec("tabulate") is not None


def run_scaling(
    server, sizes: list[int], dims: int, work: Path, repeats: int, output: Path = RESULTS_DIR, drill_max: int | None = None,
    max_wal_size: str | None = None,
) -> list[str]:
    started = time.monotonic()
    partial = results_path(output)
    with server_max_wal_size(server.dsn("postgres"), max_wal_size) as effective:
        frame = measure_scaling(server, sizes, dims, work, repeats, csv_path=partial, drill_max=drill_max)
    frame["max_wal_size"] = effective
    csv_path, png_path = write_results(frame, partial)
    log(f"scaling: {len(sizes)} sizes in {time.monotonic() - started:.0f} s; {csv_path}")
    return format_scaling(frame, csv_path, png_path)


def main(paths: list[str]) -> int:
    """Read saved runs again: ``python -m benchmarks.scaling RESULTS.csv ...`` prints each one's
    table of seconds per million rows and its targets."""
    import pandas as pd

    for path in paths:
        frame = pd.read_csv(path)
        print("\n".join([f"## {path}", "", per_row_table(frame), "", *targets(frame), ""]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
