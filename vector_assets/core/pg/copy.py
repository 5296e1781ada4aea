"""Streaming ``COPY ... TO STDOUT`` into a sink and ``COPY ... FROM STDIN`` from a reader.

The caller owns the transaction and the file: these functions speak SQL only. Explicit column
lists go into every COPY, because the two LangChain layouts order their columns differently.
"""

from __future__ import annotations

from typing import Protocol

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.pg.catalog import column_list, table_identifier
from vector_assets.core.pg.connection import database_errors

COPY_CHUNK_BYTES = 1 << 20
CSV_OPTIONS = "FORMAT csv, HEADER, ENCODING 'UTF8'"


class Sink(Protocol):
    def write(self, data: bytes) -> object: ...


class Source(Protocol):
    def read(self, size: int = -1) -> bytes: ...


def copy_out(
    cursor: psycopg2.extensions.cursor, table: str, columns: list[str], sink: Sink, options: str = CSV_OPTIONS
) -> int:
    """Stream one table (CSV with a header unless ``options`` say otherwise) into ``sink``;
    returns the rows copied."""
    statement = sql.SQL("COPY {table} ({columns}) TO STDOUT WITH (" + options + ")").format(
        table=table_identifier(table), columns=column_list(columns)
    )
    with database_errors(cursor.connection, f"while copying table {table!r}"):
        cursor.copy_expert(statement, sink, COPY_CHUNK_BYTES)
    return cursor.rowcount


def copy_in(
    cursor: psycopg2.extensions.cursor,
    target: sql.Composable,
    columns: list[str],
    source: Source,
    *,
    freeze: bool = False,
    options: str = CSV_OPTIONS,
) -> int:
    """Load ``source`` (CSV with a header unless ``options`` say otherwise) into ``target``;
    returns the rows loaded.

    Whatever ``source.read`` raises (the object store broke off, the file is damaged, an
    interrupt) is raised here as it was: psycopg2 would turn it into a cancelled COPY, a
    database error, though the database was never at fault. The COPY is cancelled all the same,
    so the caller's transaction rolls back. Driver errors are left to the caller, which knows
    which file they came from.
    """
    options = options + (", FREEZE" if freeze else "")
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (" + options + ")").format(target, column_list(columns))
    reading = ReadingSide(source)
    try:
        cursor.copy_expert(statement, reading, size=COPY_CHUNK_BYTES)
    except psycopg2.Error:
        if reading.failure is None:
            raise
    if reading.failure is not None:  # raised outside the handler: the error keeps its own cause
        raise reading.failure
    return cursor.rowcount


class ReadingSide:
    """What COPY FROM reads through: keeps whatever the source raised, which psycopg2 swallows
    (it ends the COPY with the exception's text, and raises the server's refusal instead)."""

    def __init__(self, source: Source) -> None:
        self._source = source
        self.failure: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        try:
            return self._source.read(size)
        except BaseException as error:
            self.failure = error
            raise
