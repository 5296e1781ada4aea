"""Reading the catalog: columns and their types, versions, row counts, primary keys."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.errors import TableNotFoundError


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # as format_type() prints it, e.g. "vector(384)" or "character varying"


def split_table(table: str) -> tuple[str | None, str]:
    """(schema or None, table) of a store's table name."""
    schema, _, name = table.rpartition(".")
    return schema or None, name


def table_identifier(table: str) -> sql.Identifier:
    """A store's table as SQL: ``schema.table`` names the table in that schema, a bare name the
    one the search path finds."""
    return sql.Identifier(*table.split(".", 1))


def regclass_literal(cursor: psycopg2.extensions.cursor, table: str) -> str:
    return table_identifier(table).as_string(cursor)


@dataclass(frozen=True)
class GeneratedColumn:
    """A column the server computes (GENERATED ALWAYS AS ...): never copied, recomputed on load."""

    name: str
    type: str
    expression: str


def read_columns(cursor: psycopg2.extensions.cursor, table: str) -> list[Column]:
    """The table's stored columns in order, with their types, read from the catalog.

    Generated columns are left out: COPY refuses them, and the server recomputes them on load.
    """
    return [Column(name, type_name) for name, type_name, expression in _attributes(cursor, table) if expression is None]


def read_generated_columns(cursor: psycopg2.extensions.cursor, table: str) -> list[GeneratedColumn]:
    return [
        GeneratedColumn(name, type_name, expression)
        for name, type_name, expression in _attributes(cursor, table)
        if expression is not None
    ]


def table_exists(cursor: psycopg2.extensions.cursor, table: str) -> bool:
    cursor.execute("SELECT to_regclass(%s)", (regclass_literal(cursor, table),))
    return cursor.fetchone()[0] is not None


def _attributes(cursor: psycopg2.extensions.cursor, table: str) -> list[tuple[str, str, str | None]]:
    cursor.execute("SELECT to_regclass(%s)", (regclass_literal(cursor, table),))
    (oid,) = cursor.fetchone()
    if oid is None:
        raise TableNotFoundError(f"table {table!r} does not exist in this database")
    cursor.execute(
        """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod),
               CASE WHEN a.attgenerated <> '' THEN pg_get_expr(d.adbin, d.adrelid) END
        FROM pg_attribute a
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum
        """,
        (regclass_literal(cursor, table),),
    )
    return cursor.fetchall()


def server_versions(cursor: psycopg2.extensions.cursor) -> tuple[str, str | None]:
    """(PostgreSQL version, pgvector version or None when the extension is missing)."""
    cursor.execute("SHOW server_version")
    (server_version,) = cursor.fetchone()
    cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    row = cursor.fetchone()
    return server_version, (row[0] if row else None)


def count_rows(cursor: psycopg2.extensions.cursor, table: str) -> int:
    cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(table_identifier(table)))
    return int(cursor.fetchone()[0])


def column_list(names: list[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(name) for name in names)


def column_names(columns: list[Column]) -> list[str]:
    return [column.name for column in columns]


def primary_key(cursor: psycopg2.extensions.cursor, table: str) -> list[str]:
    cursor.execute(
        """
        SELECT a.attname FROM pg_index i
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
        WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)
        """,
        (regclass_literal(cursor, table),),
    )
    return [name for (name,) in cursor.fetchall()]


def estimated_size(cursor: psycopg2.extensions.cursor, table: str) -> tuple[int | None, int | None]:
    """(estimated rows, estimated heap bytes), from the catalog and statistics alone.

    Nothing here opens the table, so an estimate never waits behind a lock the COPY would wait
    for anyway. ``pg_class.reltuples`` is -1 until the table is first vacuumed or analyzed; then
    the statistics' count of live rows stands in.
    """
    cursor.execute(
        """
        SELECT CASE WHEN reltuples >= 0 THEN reltuples::bigint ELSE pg_stat_get_live_tuples(oid) END,
               relpages::bigint * current_setting('block_size')::bigint
        FROM pg_class WHERE oid = %s::regclass
        """,
        (regclass_literal(cursor, table),),
    )
    rows, heap_bytes = cursor.fetchone()
    return (rows or None), (heap_bytes or None)
