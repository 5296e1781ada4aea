"""Sizing index builds after a bulk load, and watching them.

Each rebuilt index gets ``maintenance_work_mem`` from its estimated size (for HNSW, the graph:
every row's vector plus its neighbour lists), capped by the operator's limit and by half the
memory the server has available, and parallel maintenance workers. A build that cannot get its
estimate says so before it starts, in one line: what it would need, what it gets, and how much
slower it will be. While it builds, a second connection reads ``pg_stat_progress_create_index``
for the building backend. pgvector's notice that the graph no longer fits in memory is kept, so
the result can say the build went to disk and took longer.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.errors import VectorAssetsError
from vector_assets.core.pg.catalog import regclass_literal, table_identifier
from vector_assets.core.pg.connection import connect
from vector_assets.core.progress import ProgressReporter
from vector_assets.core.units import human_size

FLOOR_BYTES = 64 * 2**20  # PostgreSQL's own default; a build gets less only when the cap says so
MINIMUM_KILOBYTES = 1024  # the least maintenance_work_mem PostgreSQL accepts
MAX_DEFAULT_WORKERS = 4
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
HNSW_NEIGHBOUR_BYTES = 16  # one neighbour entry: a tuple id and a distance, aligned
HNSW_ELEMENT_OVERHEAD = 100  # the element's header, level and list headers
DEFAULT_HNSW_M = 16
SAFETY_MARGIN = 1.2
GRAPH_NO_LONGER_FITS = "no longer fits into maintenance_work_mem"
# A build never asks for more than this share of what the server has available: the rest is for
# its shared buffers, its other connections and the page cache the build reads the table through.
SERVER_MEMORY_SHARE = 0.5
# Once the graph is full, pgvector inserts each further row into the index on disk, as an INSERT
# into an indexed table does. Measured at 50,000 x 384 with one worker: in memory 12.4 s; with
# 60 MB 27,941 rows fit and it took 62.2 s, with 30 MB 13,966 rows and 82.6 s, with 1 MB 466 rows
# and 123.4 s: a row past the limit costs 9 to 10 x one built in memory.
SPILLED_ROW_COST = 10.0
INDEX_METHOD = re.compile(r" USING (\w+) \(\s*(\"[^\"]+\"|\w+)")
INDEX_ACCESS_METHOD = re.compile(r" USING (\w+) \(")  # an expression index's too
HNSW_M = re.compile(r"\bm\s*=\s*'?(\d+)")


@dataclass(frozen=True)
class IndexBuildSettings:
    """The operator's limits: memory per build, and parallel workers (None: what the server allows,
    at most 4, and fewer than a local server's cores). ``memory_cap_name`` is what a shortfall
    message tells the operator to raise."""

    memory_cap_bytes: int = 10**9
    workers: int | None = None
    memory_cap_name: str = "the index build memory cap"


@dataclass(frozen=True)
class BuildMemory:
    """What a build would like (its estimate), the most it may have and why, and what it gets."""

    needed_bytes: int
    limit_bytes: int
    limited_by: str
    granted_bytes: int

    @property
    def fits(self) -> bool:
        return self.needed_bytes <= self.granted_bytes

    @property
    def slowdown(self) -> float:
        """How many times as long as in memory: the rows past the limit go in at the spilled cost."""
        if self.fits:
            return 1.0
        in_memory = self.granted_bytes / self.needed_bytes
        return in_memory + (1 - in_memory) * SPILLED_ROW_COST

    def shortfall(self, index: str) -> str | None:
        """One line when the build cannot have its estimate; None when it can."""
        if self.fits:
            return None
        return (
            f"index {index} would need about {human_size(self.needed_bytes)} of maintenance_work_mem to build in memory; "
            f"it gets {human_size(self.granted_bytes)} ({self.limited_by}), so the build will take about "
            f"{self.slowdown:.0f} x as long"
        )


def plan_build_memory(estimate: int, settings: IndexBuildSettings, server_available_bytes: int | None) -> BuildMemory:
    """The estimate, at least PostgreSQL's default, and never above the operator's cap or half of
    what the server has available (when it can be read)."""
    limit, limited_by = settings.memory_cap_bytes, settings.memory_cap_name
    if server_available_bytes is not None:
        server_share = int(server_available_bytes * SERVER_MEMORY_SHARE)
        if server_share < limit:
            limit = server_share
            limited_by = f"half of the {human_size(server_available_bytes)} the server has available"
    return BuildMemory(estimate, limit, limited_by, min(max(estimate, FLOOR_BYTES), limit))


def server_available_memory(cursor: psycopg2.extensions.cursor, local: bool | None = None) -> int | None:
    """MemAvailable of the server's machine: read here for a server on this machine, else through
    ``pg_read_file`` when the role may (a superuser or pg_read_server_files); None when neither works."""
    if local is None:
        local = server_is_local(cursor.connection.info.host)
    if local:
        try:
            return mem_available(Path("/proc/meminfo").read_text())
        except OSError:
            return None
    cursor.execute("SAVEPOINT vector_assets_meminfo")
    try:
        cursor.execute("SELECT pg_read_file('/proc/meminfo')")
        text = cursor.fetchone()[0]
    except psycopg2.Error:
        cursor.execute("ROLLBACK TO SAVEPOINT vector_assets_meminfo")
        return None
    finally:
        cursor.execute("RELEASE SAVEPOINT vector_assets_meminfo")
    return mem_available(text)


def mem_available(meminfo: str) -> int | None:
    for line in meminfo.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


@dataclass(frozen=True)
class IndexBuild:
    name: str
    method: str
    memory_bytes: int
    workers: int
    seconds: float
    spilled: str | None  # pgvector's notice when the graph no longer fit in memory
    needed_bytes: int = 0  # the estimate
    shortfall: str | None = None  # said before the build: it could not have its estimate

    @property
    def message(self) -> str:
        text = (
            f"index {self.name} ({self.method}) built in {self.seconds:.1f}s with maintenance_work_mem "
            f"{human_size(self.memory_bytes)} and {self.workers} parallel workers"
        )
        if self.spilled:
            text += f"; the graph did not fit in memory, so the build was slower: {self.spilled}"
        return text


@dataclass(frozen=True)
class IndexBuildProgress:
    """One reading of ``pg_stat_progress_create_index``."""

    index: str
    phase: str
    blocks_done: int
    blocks_total: int
    tuples_done: int
    tuples_total: int
    done: bool = False
    note: str | None = None  # a line said once, before the build (its memory shortfall)

    @property
    def key(self) -> str:
        return f"index {self.index}"

    @property
    def completed(self) -> float:
        return self.tuples_done if self.tuples_total else self.blocks_done

    @property
    def total(self) -> float | None:
        return (self.tuples_total or self.blocks_total) or None

    def describe(self) -> str:
        if self.note:
            return self.note
        if self.done:
            return f"{self.key}: built"
        return (
            f"{self.key}: {self.phase}, blocks {self.blocks_done:,} of {self.blocks_total:,}, "
            f"tuples {self.tuples_done:,} of {self.tuples_total:,}"
        )


def estimated_build_bytes(cursor: psycopg2.extensions.cursor, table: str, definition: str, rows: int) -> int:
    """What the build would like to hold in memory: the HNSW graph, else the table's data."""
    match = INDEX_METHOD.search(definition)
    if match is None or match.group(1) != "hnsw":
        cursor.execute("SELECT pg_table_size(%s::regclass)", (regclass_literal(cursor, table),))
        return int(cursor.fetchone()[0])
    m_match = HNSW_M.search(definition.split(" WITH ", 1)[-1]) if " WITH " in definition else None
    m = int(m_match.group(1)) if m_match else DEFAULT_HNSW_M
    vector_bytes = average_column_bytes(cursor, table, match.group(2).strip('"'))
    return round(rows * (vector_bytes + 2 * m * HNSW_NEIGHBOUR_BYTES + HNSW_ELEMENT_OVERHEAD) * SAFETY_MARGIN)


def average_column_bytes(cursor: psycopg2.extensions.cursor, table: str, column: str) -> float:
    cursor.execute(sql.SQL("SELECT coalesce(avg(pg_column_size(c)), 0) FROM (SELECT {} AS c FROM {} LIMIT 1000) s").format(
        sql.Identifier(column), table_identifier(table)
    ))
    return float(cursor.fetchone()[0])


def build_workers(cursor: psycopg2.extensions.cursor, settings: IndexBuildSettings) -> int:
    """The operator's count, else what the server allows, at most 4; on this machine's own server,
    at most one fewer than its cores, because the leader builds too and more processes than
    cores only contend for the graph's locks (measured: 1 worker 8.0 s, 4 workers 9.0 s on 2 cores)."""
    if settings.workers is not None:
        return settings.workers
    cursor.execute("SELECT least(current_setting('max_parallel_workers')::int, current_setting('max_worker_processes')::int)")
    workers = min(int(cursor.fetchone()[0]), MAX_DEFAULT_WORKERS)
    if server_is_local(cursor.connection.info.host):
        workers = min(workers, max((os.cpu_count() or 1) - 1, 0))
    return workers


def server_is_local(host: str | None) -> bool:
    """A Unix socket or a loopback address: the server shares this machine's cores."""
    return (host or "").startswith("/") or host in LOOPBACK_HOSTS


def size_build(cursor: psycopg2.extensions.cursor, memory_bytes: int, workers: int) -> None:
    kilobytes = max(memory_bytes // 1024, MINIMUM_KILOBYTES)
    cursor.execute(sql.SQL("SET LOCAL maintenance_work_mem = {}").format(sql.Literal(f"{kilobytes}kB")))
    cursor.execute(sql.SQL("SET LOCAL max_parallel_maintenance_workers = {}").format(sql.Literal(workers)))


def spill_notice(conn: psycopg2.extensions.connection) -> str | None:
    for notice in conn.notices:
        if GRAPH_NO_LONGER_FITS in notice:
            return " ".join(notice.split()).removeprefix("NOTICE: ")
    return None


@dataclass(frozen=True)
class BuildWatch:
    """Where the building backend is, and where its progress goes."""

    dsn: str
    backend_pid: int
    reporter: ProgressReporter


@contextmanager
def watching_build(watch: BuildWatch | None, index: str) -> Iterator[None]:
    """Read the build's progress on a second connection every interval, until it is done."""
    if watch is None:
        yield
        return
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(watch, index, stop), name=f"progress of {index}", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(timeout=10)
    watch.reporter.report(IndexBuildProgress(index, "done", 0, 0, 0, 0, done=True))


def _watch(watch: BuildWatch, index: str, stop: threading.Event) -> None:
    try:
        conn = connect(watch.dsn, application_name="vector_assets index progress")
    except VectorAssetsError:  # progress is a courtesy; the build goes on without it
        return
    conn.autocommit = True
    try:
        while not stop.wait(watch.reporter.interval_seconds):
            for reading in read_progress(conn, watch.backend_pid, index):
                watch.reporter.report(reading)
    except psycopg2.Error:
        pass
    finally:
        conn.close()


def read_progress(conn: psycopg2.extensions.connection, backend_pid: int, index: str) -> list[IndexBuildProgress]:
    """The build's row; its index is not committed yet, so the caller names it."""
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT phase, blocks_done, blocks_total, tuples_done, tuples_total "
            "FROM pg_stat_progress_create_index WHERE pid = %s",
            (backend_pid,),
        )
        return [IndexBuildProgress(index, *row) for row in cursor.fetchall()]
