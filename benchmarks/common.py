"""What the benchmark sections share: the test data, the timed commands and child processes,
the restore checks and the report's words. ``backup_restore`` and the sections it runs
(``formats``, ``increments``, ``object_store``) import from here; this imports none of them."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE
from vector_assets.dev import demo
from vector_assets.dev.embedded import ensure_database

REPEATS = 3
MEMORY_FACTOR = 4
COLLECTIONS = demo.VANNA_COLLECTIONS
RESTORE_TIMESTAMP = "20000101_000000"  # the one set each restore benchmark makes and reuses


def log(message: str) -> None:
    """Progress goes to stderr so stdout holds only the report."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)



def own_peak_rss_kb() -> int:
    """This process's own peak resident set since it started its program (VmHWM), in KiB.

    Not ``ru_maxrss``: Linux keeps it across fork and exec, so a child started by a parent that
    holds a large table reports the parent's size, whatever it used itself (a child of a parent
    holding 300 MiB read 313 MiB from ``ru_maxrss`` and 13 MiB from VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

def build_database(maintenance_dsn: str, dsn: str, rows: int, dims: int) -> None:
    """Make sure ``dsn`` holds the two LangChain tables with ``rows`` embeddings of ``dims``.

    Building takes a while at 4N, so an existing set of the right shape is reused.
    """
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
            cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}").format(
                sql.Identifier(EMBEDDING_TABLE), sql.Identifier(COLLECTION_TABLE)
            ))
            demo.create_tables(cursor, dims=dims)  # the product's DDL: current layout, GIN on cmetadata
            fill_tables(cursor, rows, dims)
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


def hnsw_indexes(cursor: psycopg2.extensions.cursor) -> list[str]:
    """Valid HNSW indexes on the embedding table."""
    cursor.execute(
        """
        SELECT c.relname FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_am am ON am.oid = c.relam
        WHERE i.indrelid = %s::regclass AND am.amname = 'hnsw' AND i.indisvalid
        ORDER BY c.relname
        """,
        (EMBEDDING_TABLE,),
    )
    return [name for (name,) in cursor.fetchall()]


def dsn_database(dsn: str) -> str:
    return psycopg2.extensions.parse_dsn(dsn).get("dbname", "?")


@dataclass
class Runs:
    """Wall times of one operation, plus what it produced."""

    name: str
    seconds: list[float] = field(default_factory=list)
    output_bytes: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


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


def run_child_process(command: list[str]) -> tuple[dict, float]:
    """Run a ``--child…`` mode; return the JSON report it prints last, and the process wall time."""
    started = time.perf_counter()
    completed = run_command(command)
    process_seconds = time.perf_counter() - started
    return json.loads(completed.stdout.strip().splitlines()[-1]), process_seconds


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


def run_ours_restore_at(dsn: str, root: str, timestamp: str) -> float:
    """``run_restore`` of one set (replace mode, no safety set) in a fresh interpreter; the call's seconds."""
    command = [sys.executable, "-m", "benchmarks", "--child-restore", "--dsn", dsn, "--root", root,
               "--timestamp", timestamp, "--no-safety-backup"]
    report, _ = run_child_process(command)
    return report["seconds"]


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def verify_restored(dsn: str, rows: int, dims: int, step: str, *, hnsw: bool = False) -> list[str]:
    """Both tables hold the expected rows after ``step`` (and the HNSW index, when asked for).

    The count also reads every new row once, so hint bits are set here, untimed, and not by
    whatever step comes next.
    """
    with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
        shape = current_shape(cursor)
        indexes = hnsw_indexes(cursor)
    conn.close()
    if shape != (len(COLLECTIONS), rows, dims):
        raise RuntimeError(f"after {step}: (collections, embeddings, dims) = {shape}, expected {rows} embeddings")
    if hnsw and not indexes:
        raise RuntimeError(f"after {step}: no valid HNSW index on {EMBEDDING_TABLE}")
    return indexes


def verdict(met: bool) -> str:
    return "MET" if met else "MISSED"


def megabytes(size: int) -> float:
    return size / 1_000_000


def copy_database(maintenance_dsn: str, source_dsn: str, name: str) -> None:
    source = psycopg2.extensions.parse_dsn(source_dsn)["dbname"]
    drop_database(maintenance_dsn, name)
    admin_statement(maintenance_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{source}"')


def drop_database(maintenance_dsn: str, name: str) -> None:
    admin_statement(maintenance_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def admin_statement(dsn: str, statement: str) -> None:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement)
    finally:
        conn.close()


def execute_statements(dsn: str, statements: list[str]) -> None:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
        conn.commit()
    finally:
        conn.close()
