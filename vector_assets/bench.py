"""The backup benchmark behind ``make bench``: our ``run_backup`` against psql ``\\copy`` and pg_dump.

It runs on its own embedded server in ``.vector_assets/bench`` so it never touches dev data.
The design targets are: a backup takes at most 1.10 x the time of psql ``\\copy`` of both
tables, and the peak RSS of a backup of 4N rows is at most 1.2 x that of N rows (memory stays
flat). Our backup runs in a fresh child process, so its peak RSS is its own and nothing else's.
Missed targets are reported, not raised: the exit code says only whether something broke.

    python -m vector_assets.bench [--rows N] [--dims D] [--data-dir PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

DEFAULT_ROWS = 100_000
DEFAULT_DIMS = 384
DEFAULT_DATA_DIR = Path(".vector_assets/bench")
REPEATS = 3
BENCH_DATABASE = "bench"
BENCH4_DATABASE = "bench4"
MEMORY_FACTOR = 4
COLLECTIONS = ("ddl", "documentation", "sql")  # what Vanna stores
COLLECTION_TABLE = "langchain_pg_collection"
EMBEDDING_TABLE = "langchain_pg_embedding"
TARGET_TIME_RATIO = 1.10
TARGET_RSS_RATIO = 1.2


# ---------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="vector_assets.bench", description="Benchmark run_backup against psql \\copy and pg_dump."
    )
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="embedding rows (N)")
    parser.add_argument("--dims", type=int, default=DEFAULT_DIMS, help="vector dimensions (D)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="bench server folder")
    # Internal: one backup in this process, result printed as JSON (see run_child).
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rows < 1 or args.dims < 1:
        parser.error("--rows and --dims must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return run_child(args.dsn, args.root)
    started = time.monotonic()
    report = run_benchmark(args.rows, args.dims, args.data_dir)
    print(format_report(report, time.monotonic() - started))
    return 0


def log(message: str) -> None:
    """Progress goes to stderr so stdout holds only the report."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# The child: one backup, measured from inside


def run_child(dsn: str | None, root: Path | None) -> int:
    """Back up once and print the call's wall time and this process's peak RSS as JSON.

    Runs in a fresh interpreter so ``ru_maxrss`` is the backup's own peak, not the parent's.
    """
    if not dsn or root is None:
        print("--child needs --dsn and --root", file=sys.stderr)
        return 2
    from vector_assets.core.backup import BackupRequest, run_backup

    started = time.perf_counter()
    result = run_backup(BackupRequest(dsn=dsn, root=root))
    seconds = time.perf_counter() - started
    rows = {name: entry.rows for name, entry in result.manifest.tables.items()}
    print(
        json.dumps(
            {
                "seconds": seconds,
                "manifest_seconds": result.manifest.duration_seconds,
                "bytes": result.total_bytes,
                "rows": rows,
                "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
        )
    )
    return 0


# ---------------------------------------------------------------------------------------------
# Test data, built on the server


def build_database(maintenance_dsn: str, dsn: str, rows: int, dims: int) -> None:
    """Make sure ``dsn`` holds the two LangChain tables with ``rows`` embeddings of ``dims``.

    Building takes a while at 4N, so an existing set of the right shape is reused.
    """
    from vector_assets.embedded import ensure_database

    ensure_database(maintenance_dsn, psycopg2.extensions.parse_dsn(dsn)["dbname"])
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
            if current_shape(cursor) == (len(COLLECTIONS), rows, dims):
                log(f"reusing {rows} x {dims} rows in {dsn_database(dsn)}")
                return
            log(f"building {rows} x {dims} rows in {dsn_database(dsn)} ...")
            started = time.monotonic()
            create_tables(cursor, dims)
            fill_tables(cursor, rows, dims)
            cursor.execute(
                "CREATE INDEX ix_cmetadata_gin ON langchain_pg_embedding USING gin (cmetadata jsonb_path_ops)"
            )
            # Sets hint bits and visibility now, so no timed run pays for the first read.
            cursor.execute("VACUUM (FREEZE, ANALYZE) langchain_pg_collection, langchain_pg_embedding")
            log(f"built in {time.monotonic() - started:.1f} s")
    finally:
        conn.close()


def current_shape(cursor: psycopg2.extensions.cursor) -> tuple[int, int, int] | None:
    """(collections, embeddings, dims) of what is there now, or None when the tables are missing."""
    cursor.execute("SELECT to_regclass(%s), to_regclass(%s)", (COLLECTION_TABLE, EMBEDDING_TABLE))
    if None in cursor.fetchone():
        return None
    cursor.execute(
        """
        SELECT (SELECT count(*) FROM langchain_pg_collection),
               (SELECT count(*) FROM langchain_pg_embedding),
               (SELECT atttypmod FROM pg_attribute
                 WHERE attrelid = 'langchain_pg_embedding'::regclass AND attname = 'embedding')
        """
    )
    collections, embeddings, dims = cursor.fetchone()
    return int(collections), int(embeddings), int(dims)


def create_tables(cursor: psycopg2.extensions.cursor, dims: int) -> None:
    """The current langchain-postgres layout (DESIGN.md section 3), with VECTOR(dims)."""
    cursor.execute("DROP TABLE IF EXISTS langchain_pg_embedding, langchain_pg_collection")
    cursor.execute(
        "CREATE TABLE langchain_pg_collection ("
        " uuid UUID NOT NULL PRIMARY KEY, name VARCHAR NOT NULL UNIQUE, cmetadata JSON)"
    )
    cursor.execute(
        sql.SQL(
            "CREATE TABLE langchain_pg_embedding ("
            " id VARCHAR NOT NULL PRIMARY KEY,"
            " collection_id UUID REFERENCES langchain_pg_collection (uuid) ON DELETE CASCADE,"
            " embedding VECTOR({dims}), document VARCHAR, cmetadata JSONB)"
        ).format(dims=sql.Literal(dims))
    )


def fill_tables(cursor: psycopg2.extensions.cursor, rows: int, dims: int) -> None:
    """Generate everything server-side: fast, and the data never crosses the socket.

    Documents carry commas, double quotes and some newlines, so the CSV quoting path is
    exercised as it is with real Vanna data. The vector subquery mentions ``g.i`` so the
    planner runs it per row instead of once.
    """
    cursor.execute(
        """
        INSERT INTO langchain_pg_collection (uuid, name, cmetadata)
        SELECT gen_random_uuid(), name, json_build_object('source', 'bench', 'note', 'a, "quoted" note')
        FROM unnest(%s::text[]) AS name
        """,
        (list(COLLECTIONS),),
    )
    cursor.execute(
        """
        WITH c AS (
            SELECT uuid, name, (row_number() OVER (ORDER BY name) - 1)::int AS k
            FROM langchain_pg_collection
        )
        INSERT INTO langchain_pg_embedding (id, collection_id, embedding, document, cmetadata)
        SELECT gen_random_uuid()::text || '-' || c.name,
               c.uuid,
               (SELECT array_agg(random()::real) FROM generate_series(1, %(dims)s) WHERE g.i > 0)::vector,
               format('SELECT "col_%%s", name FROM t_%%s WHERE a = ''x, y'' -- doc %%s, "quoted"%%s',
                      g.i %% 97, c.name, md5(g.i::text),
                      CASE WHEN g.i %% 10 = 0 THEN E'\\nsecond line, with "quotes"' ELSE '' END)
                 || repeat(' lorem, ipsum', g.i %% 20),
               jsonb_build_object('source', 'bench', 'n', g.i, 'tags', jsonb_build_array('a,b', 'c"d'),
                                  'hash', md5(g.i::text))
        FROM generate_series(1, %(rows)s) AS g(i)
        JOIN c ON c.k = g.i %% %(collections)s
        """,
        {"rows": rows, "dims": dims, "collections": len(COLLECTIONS)},
    )


def dsn_database(dsn: str) -> str:
    return psycopg2.extensions.parse_dsn(dsn).get("dbname", "?")


# ---------------------------------------------------------------------------------------------
# Timed operations


@dataclass
class Runs:
    """Wall times of one operation, plus what it produced."""

    name: str
    seconds: list[float] = field(default_factory=list)
    output_bytes: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


@dataclass(frozen=True)
class ChildResult:
    call_seconds: float
    process_seconds: float
    csv_bytes: int
    rows: dict[str, int]
    max_rss_kb: int


def run_ours(dsn: str, work: Path) -> ChildResult:
    """``run_backup`` in a fresh interpreter; the set is deleted right after."""
    root = fresh_folder(work / "ours")
    command = [sys.executable, "-m", "vector_assets.bench", "--child", "--dsn", dsn, "--root", str(root)]
    started = time.perf_counter()
    completed = run_command(command)
    process_seconds = time.perf_counter() - started
    shutil.rmtree(root)
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    return ChildResult(
        call_seconds=report["seconds"],
        process_seconds=process_seconds,
        csv_bytes=report["bytes"],
        rows=report["rows"],
        max_rss_kb=report["max_rss_kb"],
    )


def run_psql_copy(bin_dir: Path, dsn: str, work: Path) -> tuple[float, int]:
    """Both tables with client-side ``\\copy`` in one psql, as ours copies both in one process."""
    folder = fresh_folder(work / "psql")
    copies = [
        f"\\copy {table} TO {quote_literal(str(folder / (table + '.csv')))} csv header"
        for table in (COLLECTION_TABLE, EMBEDDING_TABLE)
    ]
    command = [str(bin_dir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn]
    for copy in copies:
        command += ["-c", copy]
    return timed_command(command, folder)


def run_pg_dump(bin_dir: Path, dsn: str, work: Path) -> tuple[float, int]:
    folder = fresh_folder(work / "pg_dump")
    command = [
        str(bin_dir / "pg_dump"), "-Fc", "-t", EMBEDDING_TABLE, "-t", COLLECTION_TABLE,
        "-f", str(folder / "bench.dump"), "-d", dsn,
    ]  # fmt: skip
    return timed_command(command, folder)


def timed_command(command: list[str], folder: Path) -> tuple[float, int]:
    """(wall seconds, bytes written into folder); the folder is deleted afterwards."""
    started = time.perf_counter()
    run_command(command)
    seconds = time.perf_counter() - started
    size = folder_bytes(folder)
    shutil.rmtree(folder)
    return seconds, size


def run_command(command: list[str]) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"{Path(command[0]).name} failed ({completed.returncode}): {completed.stderr.strip()}")
    return completed


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def fresh_folder(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class Report:
    rows: int
    dims: int
    ours: Runs
    ours_process: Runs
    psql: Runs
    pg_dump: Runs
    rss_n_kb: int
    rss_4n_kb: int
    backup_4n_seconds: float
    csv_4n_bytes: int
    server_version: str


def run_benchmark(rows: int, dims: int, data_dir: Path) -> Report:
    """Build (or reuse) both databases, time the three operations interleaved, then check memory.

    Repetitions are interleaved (ours, psql, pg_dump, ours, ...) so a warming page cache or a
    noisy neighbour hits all three alike instead of favouring whichever runs last.
    """
    from vector_assets.embedded import start_embedded

    server = start_embedded(data_dir, stop_on_exit=True)
    maintenance = server.dsn("postgres")
    dsn, dsn4 = server.dsn(BENCH_DATABASE), server.dsn(BENCH4_DATABASE)
    build_database(maintenance, dsn, rows, dims)
    build_database(maintenance, dsn4, rows * MEMORY_FACTOR, dims)
    work = fresh_folder(Path(data_dir).resolve() / "work")
    try:
        return measure(server.bin_dir, dsn, dsn4, rows, dims, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(bin_dir: Path, dsn: str, dsn4: str, rows: int, dims: int, work: Path) -> Report:
    ours, ours_process = Runs("ours: run_backup (call)"), Runs("ours: child process wall")
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
        record(psql, lambda: run_psql_copy(bin_dir, dsn, work))
        record(pg_dump, lambda: run_pg_dump(bin_dir, dsn, work))
    log(f"memory: one backup of {rows * MEMORY_FACTOR} rows")
    child4 = run_ours(dsn4, work)
    check_rows(child4, rows * MEMORY_FACTOR)
    return Report(
        rows=rows, dims=dims, ours=ours, ours_process=ours_process, psql=psql, pg_dump=pg_dump,
        rss_n_kb=rss_n, rss_4n_kb=child4.max_rss_kb, backup_4n_seconds=child4.call_seconds,
        csv_4n_bytes=child4.csv_bytes, server_version=read_server_version(dsn),
    )  # fmt: skip


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
    for runs in (report.ours, report.ours_process, report.psql, report.pg_dump):
        lines.append(table_row(runs, anchor, csv_bytes))
    lines += [
        "",
        f"- peak RSS, backup of N = {report.rows}: {report.rss_n_kb / 1024:.1f} MiB",
        f"- peak RSS, backup of 4N = {report.rows * MEMORY_FACTOR}: {report.rss_4n_kb / 1024:.1f} MiB "
        f"(backup {report.backup_4n_seconds:.2f} s, {megabytes(report.csv_4n_bytes) / report.backup_4n_seconds:.0f} MB/s)",
        "",
        f"- target backup <= {TARGET_TIME_RATIO:.2f} x \\copy: {time_ratio:.2f} x -> {verdict(time_ratio <= TARGET_TIME_RATIO)}",
        f"- target RSS(4N)/RSS(N) <= {TARGET_RSS_RATIO}: {rss_ratio:.2f} -> {verdict(rss_ratio <= TARGET_RSS_RATIO)}",
        f"- total benchmark runtime: {total_seconds:.1f} s",
    ]
    return "\n".join(lines)


def table_row(runs: Runs, anchor: float, csv_bytes: int) -> str:
    times = ", ".join(f"{seconds:.2f}" for seconds in runs.seconds)
    rate = megabytes(csv_bytes) / runs.median
    return f"| {runs.name} | {runs.median:.2f} | {runs.median / anchor:.2f} | {rate:.0f} | {times} |"


def verdict(met: bool) -> str:
    return "MET" if met else "MISSED"


def megabytes(size: int) -> float:
    return size / 1_000_000


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
