"""One table exported in parts, on several connections, all inside one snapshot.

The backup's own transaction exports its snapshot (``pg_export_snapshot``); each part's
connection adopts it (``SET TRANSACTION SNAPSHOT``) before reading, so the parts together are
exactly the table as the backup saw it, whatever is written meanwhile. Parts are ranges of
heap blocks, read with TID range scans, so no part reads another's pages.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.pg.catalog import column_list, regclass_literal, table_identifier
from vector_assets.core.pg.connection import connect, database_errors, rollback_quietly
from vector_assets.core.pg.copy import COPY_CHUNK_BYTES, Sink


@dataclass(frozen=True)
class BlockRange:
    """Heap blocks [first, end); ``end`` None means to the end of the table."""

    first: int
    end: int | None

    def condition(self) -> sql.Composable:
        lower = sql.SQL("ctid >= {}::tid").format(sql.Literal(f"({self.first},0)"))
        if self.end is None:
            return lower
        return sql.SQL("{} AND ctid < {}::tid").format(lower, sql.Literal(f"({self.end},0)"))


def export_snapshot(cursor: psycopg2.extensions.cursor) -> str:
    """The snapshot of the caller's REPEATABLE READ transaction, for other connections to adopt."""
    cursor.execute("SELECT pg_export_snapshot()")
    return cursor.fetchone()[0]


def table_bytes(cursor: psycopg2.extensions.cursor, table: str) -> int:
    cursor.execute("SELECT pg_relation_size(%s::regclass)", (regclass_literal(cursor, table),))
    return int(cursor.fetchone()[0])


def block_ranges(cursor: psycopg2.extensions.cursor, table: str, part_bytes: int, max_parts: int) -> list[BlockRange]:
    """Split the table's heap into at most ``max_parts`` ranges of about ``part_bytes`` each.

    The last range is open-ended: a row the snapshot sees is never past the table's end, but
    the table may have grown since its size was read.
    """
    cursor.execute("SELECT current_setting('block_size')::int")
    block_size = cursor.fetchone()[0]
    blocks = math.ceil(table_bytes(cursor, table) / block_size)
    parts = max(1, min(max_parts, math.ceil(blocks * block_size / max(part_bytes, 1))))
    step = math.ceil(blocks / parts) if blocks else 1
    bounds = [index * step for index in range(parts)]
    return [BlockRange(first, bounds[i + 1] if i + 1 < len(bounds) else None) for i, first in enumerate(bounds)]


@contextmanager
def at_snapshot(dsn: str, snapshot: str) -> Iterator[psycopg2.extensions.cursor]:
    """A read-only connection whose transaction sees exactly the exported snapshot."""
    conn = connect(dsn, application_name="vector_assets part")
    try:
        conn.set_session(isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True)
        with database_errors(conn, "while adopting the backup's snapshot"), conn.cursor() as cursor:
            cursor.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
            yield cursor
        conn.rollback()
    except BaseException:
        rollback_quietly(conn)
        raise
    finally:
        conn.close()


def copy_part_out(
    cursor: psycopg2.extensions.cursor, table: str, columns: list[str], blocks: BlockRange, sink: Sink, options: str
) -> int:
    """Stream one block range of the table into ``sink``; returns the rows copied."""
    query = sql.SQL("SELECT {columns} FROM {table} WHERE {condition}").format(
        columns=column_list(columns), table=table_identifier(table), condition=blocks.condition()
    )
    statement = sql.SQL("COPY ({}) TO STDOUT WITH (" + options + ")").format(query)
    with database_errors(cursor.connection, f"while copying a part of table {table!r}"):
        cursor.copy_expert(statement, sink, COPY_CHUNK_BYTES)
    return cursor.rowcount
