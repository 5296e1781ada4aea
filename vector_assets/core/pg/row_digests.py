"""Per-row digests, computed inside the database: what an incremental backup compares.

A row's digest is ``md5(record_send(ROW(<each column's send form>)))``: the columns' binary
send forms (``vector_send`` for vectors, never their text), hashed on the server, so the client
receives about 50 bytes per row instead of the row. Each column goes in as its send form (a
bytea) rather than as itself, because ``record_send`` also writes each column's type OID, and
an extension type's OID differs from one database to the next. The stream is sorted by the key's text in the "C"
collation (byte order), the order a streaming merge against the parent's index needs.

The key is the table's primary key. One column gives lines ``key<TAB>md5`` (the format of every
row index); a key of several columns gives one field per column, ``key1<TAB>key2<TAB>md5``,
sorted by the first column's text, then the second's. COPY escapes a tab inside a value, so a
raw tab always separates fields.

A table's content digest is the sum, modulo 2**64, of the first 64 bits of its row digests:
independent of row order, so the server computes it in one scan with no sort, and the backup
computes the same figure from the digest stream it reads anyway.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.pg.catalog import column_names, read_columns, regclass_literal, table_identifier
from vector_assets.core.pg.connection import database_errors
from vector_assets.core.pg.copy import COPY_CHUNK_BYTES, Sink

DIGEST_MODULUS = 1 << 64


@dataclass(frozen=True)
class RowKey:
    """The columns of the primary key, in its order, and their types (to cast keys read back from files)."""

    columns: tuple[str, ...]
    types: tuple[str, ...]

    @property
    def composite(self) -> bool:
        return len(self.columns) > 1

    @property
    def label(self) -> str:
        return ", ".join(self.columns)


def row_key(cursor: psycopg2.extensions.cursor, table: str) -> RowKey | None:
    """The table's primary key, of one column or several; None when it has none (no increments then)."""
    cursor.execute(
        """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_index i
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
        WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)
        """,
        (regclass_literal(cursor, table),),
    )
    found = cursor.fetchall()
    if not found:
        return None
    return RowKey(tuple(name for name, _ in found), tuple(type_name for _, type_name in found))


def _row_digest(
    cursor: psycopg2.extensions.cursor, table: str, columns: list[str], within_transaction: bool = False
) -> sql.Composable:
    """The digest expression for rows of ``table`` (or of a stage shaped like it) aliased ``t``.

    ``within_transaction``: the digests are only compared with others taken in the same
    transaction, never stored, so a 64-bit hash of the same bytes does (a third less CPU than
    md5 at 384 dimensions), where the server has one for bytea."""
    cursor.execute(
        """
        SELECT a.attname, t.typsend::regproc::text FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
        WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
        """,
        (regclass_literal(cursor, table),),
    )
    send = dict(cursor.fetchall())
    fields = sql.SQL(", ").join(
        sql.SQL("{}({})").format(sql.SQL(send[name]), sql.Identifier("t", name)) for name in columns
    )
    row = sql.SQL("record_send(ROW({}))").format(fields)
    if within_transaction and _has_bytea_hash(cursor):
        return sql.SQL("hashbyteaextended({}, 0)").format(row)
    return sql.SQL("md5({})").format(row)


def whole_row_digest(cursor: psycopg2.extensions.cursor, table: str) -> sql.Composable:
    """The md5 of a row of ``table`` (aliased ``t``), every stored column in order: what names a
    row of a table without a primary key, alike in any database whose table has these columns."""
    return _row_digest(cursor, table, column_names(read_columns(cursor, table)))


def _has_bytea_hash(cursor: psycopg2.extensions.cursor) -> bool:
    cursor.execute("SELECT to_regprocedure('hashbyteaextended(bytea, bigint)') IS NOT NULL")
    return bool(cursor.fetchone()[0])


def key_fields(key: RowKey, alias: str = "t") -> sql.Composable:
    """The key's columns as text, one output field each: what a row index's lines start with."""
    return sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(alias, column)) for column in key.columns)


def key_order(key: RowKey, alias: str = "t") -> sql.Composable:
    """ORDER BY items putting rows in the order of their key fields' bytes, column by column."""
    return sql.SQL(", ").join(
        sql.SQL('{}::text COLLATE "C"').format(sql.Identifier(alias, column)) for column in key.columns
    )


def copy_row_digests(
    cursor: psycopg2.extensions.cursor, table: str, columns: list[str], key: RowKey, sink: Sink
) -> int:
    """Stream ``key<TAB>md5 hex`` lines (COPY text format; ``key`` one field per key column)
    sorted by key bytes into ``sink``."""
    statement = sql.SQL(
        "COPY (SELECT {key}, {digest} FROM {relation} AS t ORDER BY {order}) TO STDOUT"
    ).format(key=key_fields(key), digest=_row_digest(cursor, table, columns), relation=table_identifier(table),
             order=key_order(key))
    with database_errors(cursor.connection, "while reading row digests"), _parallel_scan(cursor):
        cursor.copy_expert(statement, sink, COPY_CHUNK_BYTES)
        return cursor.rowcount


def copy_grouped_digests(
    cursor: psycopg2.extensions.cursor, table: str, relation: sql.Composable, columns: list[str], key: RowKey,
    group: str | None, sink: Sink, within_transaction: bool = False,
) -> int:
    """Stream ``key<TAB>md5 hex<TAB>group`` lines sorted by key bytes from ``relation`` (the table,
    or a stage shaped like it): the key (one field per key column), the digest of ``columns``, and
    the text of the ``group`` column (a row's collection; ``\\N`` when NULL or when there is no
    such column). ``within_transaction``: see ``_row_digest``."""
    grouped = sql.SQL("{}::text").format(sql.Identifier("t", group)) if group else sql.SQL("NULL")
    statement = sql.SQL(
        "COPY (SELECT {key}, {digest}, {group} FROM {relation} AS t ORDER BY {order}) TO STDOUT"
    ).format(key=key_fields(key), digest=_row_digest(cursor, table, columns, within_transaction), group=grouped,
             relation=relation, order=key_order(key))
    with _parallel_scan(cursor):
        cursor.copy_expert(statement, sink, COPY_CHUNK_BYTES)
        return cursor.rowcount


def content_digest(
    cursor: psycopg2.extensions.cursor, table: str, relation: sql.Composable, columns: list[str]
) -> tuple[int, str]:
    """(rows, content digest) of a table, or of a stage shaped like it, computed by the server in one scan."""
    statement = sql.SQL(
        "SELECT count(*), coalesce(sum(('x' || left({digest}, 16))::bit(64)::bigint), 0) FROM {relation} AS t"
    ).format(digest=_row_digest(cursor, table, columns), relation=relation)
    with _parallel_scan(cursor):
        cursor.execute(statement)
        rows, total = cursor.fetchone()
    return int(rows), format_content_digest(int(total))


@contextmanager
def _parallel_scan(cursor: psycopg2.extensions.cursor) -> Iterator[None]:
    """Hashing every row is CPU work the planner does not see, so it rarely plans parallel
    workers for it on its own; free workers halve the scan. Only for this one statement."""
    cursor.execute("SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0")
    yield
    cursor.execute("RESET parallel_setup_cost; RESET parallel_tuple_cost")


def format_content_digest(total: int) -> str:
    return f"{total % DIGEST_MODULUS:016x}"
