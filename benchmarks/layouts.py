"""Stores of every layout in ``make bench`` (issue 27): the same backup and restore on a
langchain-postgres ``PGVectorStore`` table and on a LlamaIndex table (hybrid search: a generated
``tsvector`` column) as on LangChain's two tables, each against ``psql \\copy`` of the same
table(s) in the same format, and four stores backed up at once against one store of their rows.

Targets, reported as MET or MISSED, never raised:
- each layout's ratio to its own ``psql \\copy`` (backup and restore, ``pgcopy`` and ``csv``) is
  within 10% of the LangChain layout's ratio in the same run;
- four stores of N/4 rows, each in its own database and backed up by its own process, all
  launched together, take at most 1.2 x the time of one store of N rows (one process).

The tables are the clients' own (``vector_assets.dev.layouts``: their DDL as pg_dump printed it),
filled on the server and indexed as the clients index them, but without the HNSW index: a
``\\copy FROM`` into an HNSW-indexed table maintains the graph row by row (the HNSW section
measures that), which would make the ratios measure pgvector instead of us. Every other index
stays (GIN on ``cmetadata``; the LlamaIndex table's GIN on ``text_search_tsv`` and btree on
``ref_doc_id``): ``\\copy FROM`` maintains them, ours drops and rebuilds them, as for LangChain.
Timings are in-process calls, like the increments section's; the concurrent backups are child
processes (``python -m benchmarks --child-layout-backup``), timed from launch to exit.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from benchmarks.common import (
    REPEATS,
    build_database,
    fresh_folder,
    log,
    megabytes,
    quote_identifier,
    quote_literal,
    run_command,
    verdict,
)
from vector_assets.core.stores import Store, StoreTable, TableRole, langchain_store
from vector_assets.dev.embedded import ensure_database
from vector_assets.dev.layouts import LLAMAINDEX, PGVECTORSTORE, ClientLayout

LAYOUTS_DATABASE = "bench_layouts"
CONCURRENT_DATABASE = "bench_stores_{}"  # 1..4, and "all" for the one store of N rows
CONCURRENT_STORES = 4
BENCH_FORMATS = ("pgcopy", "csv")
ANCHOR_OPTIONS = {"pgcopy": "(FORMAT binary)", "csv": "(FORMAT csv, HEADER)"}
TARGET_RATIO_SPREAD = 0.10
TARGET_CONCURRENT_RATIO = 1.2
CLIENT_NAMES = {"langchain_postgres": "product_docs", "llamaindex": "notes"}  # the names the clients are given
DOCUMENT = (
    "format('SELECT \"col_%%s\", name FROM t_%%s WHERE a = ''x, y'' -- doc %%s, \"quoted\"%%s', g.i %% 97, "
    "(ARRAY['catalog','manual','faq'])[g.i %% 3 + 1], md5(g.i::text), "
    "CASE WHEN g.i %% 10 = 0 THEN E'\\nsecond line, with \"quotes\"' ELSE '' END) || repeat(' lorem, ipsum', g.i %% 20)"
)  # the LangChain bench table's documents (benchmarks.common.fill_tables), so every layout moves alike text
VECTOR = "(SELECT array_agg(random()::real) FROM generate_series(1, %(dims)s) WHERE g.i > 0)::vector"
FILL = {
    "langchain_postgres": f"""
        INSERT INTO {{table}} (langchain_id, content, embedding, source, langchain_metadata)
        SELECT gen_random_uuid(), {DOCUMENT}, {VECTOR}, (ARRAY['catalog','manual','faq'])[g.i %% 3 + 1],
               json_build_object('page', g.i %% 50, 'tags', json_build_array('a,b', 'c"d'), 'hash', md5(g.i::text))
        FROM generate_series(1, %(rows)s) AS g(i)""",
    "llamaindex": f"""
        INSERT INTO {{table}} (text, metadata_, node_id, embedding)
        SELECT {DOCUMENT},
               json_build_object('_node_content', json_build_object('id_', n.id, 'metadata', json_build_object(),
                                 'class_name', 'TextNode')::text, '_node_type', 'TextNode',
                                 'document_id', 'doc-' || g.i / 10, 'doc_id', 'doc-' || g.i / 10,
                                 'ref_doc_id', 'doc-' || g.i / 10),
               n.id, {VECTOR}
        FROM generate_series(1, %(rows)s) AS g(i), LATERAL (SELECT gen_random_uuid()::text AS id) AS n""",
}


@dataclass(frozen=True)
class BenchStore:
    label: str
    store: Store
    client: ClientLayout | None  # None: LangChain's two tables, built by benchmarks.common


def one_table_store(layout: ClientLayout, name: str) -> Store:
    table = layout.table_name(CLIENT_NAMES[layout.layout])
    return Store(name, layout.layout, (StoreTable(table, TableRole.VECTORS),), "BENCH_PG_DSN")


def bench_stores() -> list[BenchStore]:
    """LangChain's store first: the other layouts' ratios are held against its."""
    return [
        BenchStore("LangChain PGVector (langchain)", langchain_store(), None),
        BenchStore("PGVectorStore (langchain_postgres)", one_table_store(PGVECTORSTORE, "docs"), PGVECTORSTORE),
        BenchStore("LlamaIndex, hybrid (llamaindex)", one_table_store(LLAMAINDEX, "notes"), LLAMAINDEX),
    ]


# ---------------------------------------------------------------------------------------------
# Test data


def build_layout_table(dsn: str, layout: ClientLayout, rows: int, dims: int) -> None:
    """The client's table with ``rows`` rows of ``dims``, generated on the server; one of the
    right shape is reused."""
    name = CLIENT_NAMES[layout.layout]
    table = layout.table_name(name)
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            if table_shape(cursor, table) == (rows, dims):
                log(f"reusing {rows} x {dims} rows of {table} in {database_name(dsn)}")
                return
            log(f"building {rows} x {dims} rows of {table} ({layout.layout}) in {database_name(dsn)} ...")
            started = time.monotonic()
            cursor.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(table)))
            layout.create_tables(cursor, name, dims)
            statement = sql.SQL(FILL[layout.layout]).format(table=sql.Identifier(table))
            cursor.execute(statement, {"rows": rows, "dims": dims})
            layout.create_indexes(cursor, name, vector_index=False)
            cursor.execute(sql.SQL("VACUUM (FREEZE, ANALYZE) {}").format(sql.Identifier(table)))
            log(f"built in {time.monotonic() - started:.1f} s")
    finally:
        conn.close()


def table_shape(cursor: psycopg2.extensions.cursor, table: str) -> tuple[int, int] | None:
    cursor.execute("SELECT to_regclass(%s)", (table,))
    if cursor.fetchone()[0] is None:
        return None
    cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
    rows = cursor.fetchone()[0]
    cursor.execute("SELECT atttypmod FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'embedding'", (table,))
    return int(rows), int(cursor.fetchone()[0])


def database_name(dsn: str) -> str:
    return psycopg2.extensions.parse_dsn(dsn).get("dbname", "?")


def copied_columns(dsn: str, table: str) -> list[str]:
    """The columns a COPY can name, in order: a generated column is recomputed, never copied."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
            "AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
            (table,),
        )
        columns = [name for (name,) in cursor.fetchall()]
    conn.close()
    return columns


def count_rows(dsn: str, tables: tuple[str, ...]) -> dict[str, int]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
        counts = {}
        for table in tables:
            cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
            counts[table] = cursor.fetchone()[0]
    conn.close()
    return counts


# ---------------------------------------------------------------------------------------------
# Ours against psql \copy, per layout and format


@dataclass
class LayoutRuns:
    label: str
    format: str
    backup: list[float] = field(default_factory=list)
    psql_backup: list[float] = field(default_factory=list)
    restore: list[float] = field(default_factory=list)
    psql_restore: list[float] = field(default_factory=list)
    bytes: int = 0

    @property
    def backup_ratio(self) -> float:
        return statistics.median(self.backup) / statistics.median(self.psql_backup)

    @property
    def restore_ratio(self) -> float:
        return statistics.median(self.restore) / statistics.median(self.psql_restore)


@dataclass
class ConcurrentRuns:
    format: str
    one: list[float] = field(default_factory=list)  # one store of N rows: launch to exit
    four: list[float] = field(default_factory=list)  # four stores of N/4 launched together: first launch to last exit
    one_call: list[float] = field(default_factory=list)  # the same, backup calls only
    four_call: list[float] = field(default_factory=list)  # first call's start to last call's end

    @property
    def ratio(self) -> float:
        return statistics.median(self.four) / statistics.median(self.one)


@dataclass
class LayoutsReport:
    rows: int
    dims: int
    runs: list[LayoutRuns]
    concurrent: list[ConcurrentRuns]


def measure_layouts(maintenance_dsn: str, dsn_for, bin_dir: Path, rows: int, dims: int, work: Path) -> LayoutsReport:
    dsn = dsn_for(LAYOUTS_DATABASE)
    build_database(maintenance_dsn, dsn, rows, dims)  # LangChain's two tables, as the other sections have them
    stores = bench_stores()
    for bench in stores:
        if bench.client is not None:
            build_layout_table(dsn, bench.client, rows, dims)
    runs = [measure_store(dsn, bin_dir, bench, fmt, rows, work) for fmt in BENCH_FORMATS for bench in stores]
    vacuum(dsn, [table for bench in stores for table in bench.store.table_names])
    concurrent = measure_concurrent(maintenance_dsn, dsn_for, rows, dims, work)
    return LayoutsReport(rows, dims, runs, concurrent)


def measure_store(dsn: str, bin_dir: Path, bench: BenchStore, fmt: str, rows: int, work: Path) -> LayoutRuns:
    """REPEATS backups and restores of one store, ours and psql's interleaved; every restore
    leaves exactly the rows it started with."""
    from vector_assets import settings
    from vector_assets.core.ops.backup import BackupRequest, run_backup
    from vector_assets.core.ops.restore import RestoreRequest, run_restore

    store, tables = bench.store, bench.store.table_names
    expected = count_rows(dsn, tables)
    columns = {table: copied_columns(dsn, table) for table in tables}
    runs = LayoutRuns(bench.label, fmt)
    root, anchor = work / "layout_sets", work / "layout_psql"
    for repetition in range(1, REPEATS + 1):
        log(f"layouts: {bench.label}, {fmt}, repetition {repetition}/{REPEATS}")
        fresh_folder(root)
        started = time.perf_counter()
        made = run_backup(BackupRequest(dsn=dsn, root=root, format=fmt, store=store))
        runs.backup.append(time.perf_counter() - started)
        runs.bytes = made.total_bytes
        if {name: entry.rows for name, entry in made.manifest.tables.items()} != expected:
            raise RuntimeError(f"{bench.label}: the backup holds {made.manifest.tables}, expected {expected}")
        fresh_folder(anchor)
        files = {table: anchor / f"{table}.{fmt}" for table in tables}
        runs.psql_backup.append(psql_copy(bin_dir, dsn, "TO", files, columns, fmt))
        started = time.perf_counter()
        run_restore(RestoreRequest(
            target_dsn=dsn, root=root, timestamp=made.timestamp, truncate_before_restore=True, safety_backup=False,
            store=store, index_builds=settings.index_build_settings(),
        ))
        runs.restore.append(time.perf_counter() - started)
        check_rows(dsn, expected, f"{bench.label}: run_restore")
        runs.psql_restore.append(psql_copy(bin_dir, dsn, "FROM", files, columns, fmt))
        check_rows(dsn, expected, f"{bench.label}: psql \\copy FROM")
    return runs


def psql_copy(bin_dir: Path, dsn: str, direction: str, files: dict[str, Path], columns: dict[str, list[str]], fmt: str) -> float:
    """``\\copy`` of each table in one psql: TO its file, or (in one transaction, after a
    TRUNCATE of them all, as ours replaces) FROM it. Wall seconds."""
    command = [str(bin_dir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn]
    if direction == "FROM":
        command += ["-1", "-c", "TRUNCATE " + ", ".join(quote_identifier(table) for table in files)]
    for table, path in files.items():
        names = ", ".join(quote_identifier(column) for column in columns[table])
        command += ["-c", f"\\copy {quote_identifier(table)} ({names}) {direction} {quote_literal(str(path))} {ANCHOR_OPTIONS[fmt]}"]
    started = time.perf_counter()
    run_command(command)
    return time.perf_counter() - started


def check_rows(dsn: str, expected: dict[str, int], step: str) -> None:
    found = count_rows(dsn, tuple(expected))
    if found != expected:
        raise RuntimeError(f"{step} left {found}, expected {expected}")


def vacuum(dsn: str, tables: list[str]) -> None:
    """Leave the tables as they were built, so a later run's backups see the same state."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            for table in tables:
                cursor.execute(sql.SQL("VACUUM (FREEZE, ANALYZE) {}").format(sql.Identifier(table)))
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# Four stores at once against one


def measure_concurrent(maintenance_dsn: str, dsn_for, rows: int, dims: int, work: Path) -> list[ConcurrentRuns]:
    """PGVectorStore stores: one of N rows, and four of N/4 rows, each in a database of its own
    (a store's operations share a pool per database; four databases is four platform stores)."""
    share = rows // CONCURRENT_STORES
    one = dsn_for(CONCURRENT_DATABASE.format("all"))
    four = [dsn_for(CONCURRENT_DATABASE.format(index)) for index in range(1, CONCURRENT_STORES + 1)]
    for dsn, size in ((one, rows), *((dsn, share) for dsn in four)):
        ensure_database(maintenance_dsn, database_name(dsn))
        build_layout_table(dsn, PGVECTORSTORE, size, dims)
    results = []
    for fmt in BENCH_FORMATS:
        runs = ConcurrentRuns(fmt)
        for repetition in range(1, REPEATS + 1):
            log(f"layouts: one store of {rows} rows, then {CONCURRENT_STORES} of {share} at once, {fmt}, "
                f"repetition {repetition}/{REPEATS}")
            wall, call = backups_at_once([one], fmt, work, [rows])
            runs.one.append(wall)
            runs.one_call.append(call)
            wall, call = backups_at_once(four, fmt, work, [share] * CONCURRENT_STORES)
            runs.four.append(wall)
            runs.four_call.append(call)
        results.append(runs)
    return results


def backups_at_once(dsns: list[str], fmt: str, work: Path, rows: list[int]) -> tuple[float, float]:
    """Launch one backup process per store together; (first launch to last exit, first call's
    start to last call's end)."""
    roots = [fresh_folder(work / f"concurrent_{index}") for index in range(len(dsns))]
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks", "--child-layout-backup", "--dsn", dsn, "--root", str(root),
             "--layout-format", fmt],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for dsn, root in zip(dsns, roots)
    ]
    outputs = [process.communicate() for process in processes]
    wall = time.perf_counter() - started
    reports = []
    for process, (stdout, stderr) in zip(processes, outputs):
        if process.returncode != 0:
            raise RuntimeError(f"a concurrent backup failed ({process.returncode}): {stderr.strip().splitlines()[-1:]}")
        reports.append(json.loads(stdout.strip().splitlines()[-1]))
    if [report["rows"] for report in reports] != rows:
        raise RuntimeError(f"the concurrent backups copied {[report['rows'] for report in reports]}, expected {rows}")
    return wall, max(report["ended"] for report in reports) - min(report["started"] for report in reports)


def child_layout_backup(dsn: str, root: str, fmt: str) -> int:
    """One PGVectorStore store's backup in this process: its call's start and end (epoch seconds) as JSON."""
    from vector_assets.core.ops.backup import BackupRequest, run_backup

    store = one_table_store(PGVECTORSTORE, "docs")
    started = time.time()
    result = run_backup(BackupRequest(dsn=dsn, root=root, format=fmt, store=store))
    ended = time.time()
    print(json.dumps({"started": started, "ended": ended, "rows": result.manifest.tables[store.table_names[0]].rows}))
    return 0


# ---------------------------------------------------------------------------------------------
# The report


def format_layouts(report: LayoutsReport) -> list[str]:
    lines = [
        "### Stores of every layout",
        "",
        f"- data: {report.rows} x {report.dims} rows per store (LangChain: its embeddings, beside 3 collections); "
        "the clients' own tables (langchain-postgres 0.0.19, llama-index-vector-stores-postgres 0.9.0) without "
        f"their HNSW index; median of {REPEATS} runs each, interleaved, in-process calls; ratio = ours / psql \\copy "
        "of the same table(s) in the same format (FROM: one transaction, after a TRUNCATE)",
        "",
        "| store | format | set MB | backup s | psql \\copy TO s | backup ratio | restore s | psql \\copy FROM s | restore ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for runs in report.runs:
        lines.append(
            f"| {runs.label} | {runs.format} | {megabytes(runs.bytes):.1f} | {statistics.median(runs.backup):.2f} | "
            f"{statistics.median(runs.psql_backup):.2f} | {runs.backup_ratio:.2f} | {statistics.median(runs.restore):.2f} | "
            f"{statistics.median(runs.psql_restore):.2f} | {runs.restore_ratio:.2f} |"
        )
    lines.append("")
    for fmt in BENCH_FORMATS:
        of_format = [runs for runs in report.runs if runs.format == fmt]
        langchain, others = of_format[0], of_format[1:]
        for runs in others:
            for what, ratio, anchor in (("backup", runs.backup_ratio, langchain.backup_ratio),
                                        ("restore", runs.restore_ratio, langchain.restore_ratio)):
                spread = ratio / anchor
                lines.append(
                    f"- target {runs.label} {fmt} {what} ratio within {TARGET_RATIO_SPREAD:.0%} of LangChain's "
                    f"({anchor:.2f}): {ratio:.2f}, {spread:.2f} x -> {verdict(abs(spread - 1) <= TARGET_RATIO_SPREAD)}"
                )
    lines += [
        "",
        f"#### {CONCURRENT_STORES} stores backed up at once against one store of their rows",
        "",
        f"- PGVectorStore stores, each in its own database, each backed up by its own process "
        f"(`python -m benchmarks --child-layout-backup`: run_backup, no Dagster), launched together; "
        f"{CONCURRENT_STORES} x {report.rows // CONCURRENT_STORES} rows against 1 x {report.rows}; "
        f"median of {REPEATS}, interleaved",
        "",
        f"| format | one store s (launch to exit) | {CONCURRENT_STORES} stores s | ratio | one store s (call) | "
        f"{CONCURRENT_STORES} stores s (first call start to last call end) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for runs in report.concurrent:
        lines.append(
            f"| {runs.format} | {statistics.median(runs.one):.2f} | {statistics.median(runs.four):.2f} | {runs.ratio:.2f} | "
            f"{statistics.median(runs.one_call):.2f} | {statistics.median(runs.four_call):.2f} |"
        )
    lines.append("")
    for runs in report.concurrent:
        lines.append(f"- target {CONCURRENT_STORES} stores at once <= {TARGET_CONCURRENT_RATIO} x one store, {runs.format}: "
                     f"{runs.ratio:.2f} x -> {verdict(runs.ratio <= TARGET_CONCURRENT_RATIO)}")
    return lines
