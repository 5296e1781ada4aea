"""What a round trip must keep of a table, read from the catalog: every row (generated columns
included), the columns with their types, defaults and generation expressions, the constraints,
each index's definition, access method, operator classes and parameters, and the sequences its
columns own. Two tables with equal facts are the same table to every client."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import psycopg2
from psycopg2 import sql


@dataclass(frozen=True)
class TableFacts:
    rows: int
    rows_sha256: str  # of the rows as PostgreSQL prints records, sorted
    columns: tuple[tuple, ...]  # (name, type, not null, default, generated, identity, collation, storage, compression)
    constraints: tuple[tuple[str, str], ...]  # (name, definition)
    indexes: tuple[tuple, ...]  # (name, pg_indexes.indexdef, access method, operator classes, WITH parameters)
    sequences: tuple[tuple, ...]  # (column, sequence, type, start, increment, min, max, cache, cycle)

    def without_rows(self) -> TableFacts:
        return TableFacts(0, "", self.columns, self.constraints, self.indexes, self.sequences)


def table_facts(dsn: str, table: str, schema: str = "public") -> TableFacts:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cursor:
            oid = _oid(cursor, schema, table)
            return TableFacts(
                *_rows(cursor, schema, table), columns=_query(cursor, COLUMNS, oid),
                constraints=_query(cursor, CONSTRAINTS, oid), indexes=_query(cursor, INDEXES, oid),
                sequences=_query(cursor, SEQUENCES, oid),
            )
    finally:
        conn.close()


def _oid(cursor, schema: str, table: str) -> int:
    cursor.execute("SELECT %s::regclass::oid", (sql.Identifier(schema, table).as_string(cursor),))
    return cursor.fetchone()[0]


def _rows(cursor, schema: str, table: str) -> tuple[int, str]:
    cursor.execute(sql.SQL("SELECT t::text FROM {} AS t").format(sql.Identifier(schema, table)))
    rows = sorted(row[0] for row in cursor.fetchall())
    return len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest()


def _query(cursor, statement: str, oid: int) -> tuple[tuple, ...]:
    cursor.execute(statement, {"oid": oid})
    return tuple(tuple(row) for row in cursor.fetchall())


COLUMNS = """
    SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid),
           a.attgenerated::text, a.attidentity::text, co.collname, a.attstorage::text, a.attcompression::text
    FROM pg_attribute a
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    LEFT JOIN pg_collation co ON co.oid = a.attcollation
    WHERE a.attrelid = %(oid)s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""
CONSTRAINTS = """
    SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
    WHERE conrelid = %(oid)s AND contype <> 'n' ORDER BY conname
"""
INDEXES = """
    SELECT c.relname, x.indexdef, am.amname,
           (SELECT array_agg(oc.opcname ORDER BY k.n) FROM unnest(i.indclass) WITH ORDINALITY AS k(cls, n)
            JOIN pg_opclass oc ON oc.oid = k.cls),
           c.reloptions
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid
    JOIN pg_am am ON am.oid = c.relam
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_indexes x ON x.schemaname = n.nspname AND x.indexname = c.relname
    WHERE i.indrelid = %(oid)s ORDER BY c.relname
"""
SEQUENCES = """
    SELECT a.attname, s.relname, format_type(q.seqtypid, NULL), q.seqstart, q.seqincrement, q.seqmin, q.seqmax,
           q.seqcache, q.seqcycle
    FROM pg_depend d
    JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
    JOIN pg_sequence q ON q.seqrelid = s.oid
    JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
    WHERE d.refobjid = %(oid)s AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
    ORDER BY a.attnum
"""


def sequences_behind(dsn: str, table: str, schema: str = "public") -> list[str]:
    """Each sequence of the table whose next value is not past its column's largest value: the
    next row a client inserts would collide with a restored one."""
    behind = []
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cursor:
            oid = _oid(cursor, schema, table)
            for column, sequence, *_ in _query(cursor, SEQUENCES, oid):
                cursor.execute(
                    sql.SQL("SELECT (SELECT max({}) FROM {}), last_value, is_called FROM {}").format(
                        sql.Identifier(column), sql.Identifier(schema, table), sql.Identifier(schema, sequence)
                    )
                )
                largest, last_value, is_called = cursor.fetchone()
                following = last_value + 1 if is_called else last_value
                if largest is not None and following <= largest:
                    behind.append(f"{sequence}: next {following}, largest {column} {largest}")
    finally:
        conn.close()
    return behind
