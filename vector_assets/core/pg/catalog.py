"""Reading the catalog: columns and their types, versions, row counts, primary keys."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.errors import TableNotFoundError


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # as format_type() prints it, e.g. "vector(384)" or "character varying"


def regclass_literal(cursor: psycopg2.extensions.cursor, table: str) -> str:
    return sql.Identifier(table).as_string(cursor)


def read_columns(cursor: psycopg2.extensions.cursor, table: str) -> list[Column]:
    """The table's columns in order, with their types, read from the catalog."""
    cursor.execute("SELECT to_regclass(%s)", (regclass_literal(cursor, table),))
    (oid,) = cursor.fetchone()
    if oid is None:
        raise TableNotFoundError(f"table {table!r} does not exist in this database")
    cursor.execute(
        """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod)
        FROM pg_attribute a
        WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum
        """,
        (regclass_literal(cursor, table),),
    )
    return [Column(name=name, type=type_name) for name, type_name in cursor.fetchall()]


def server_versions(cursor: psycopg2.extensions.cursor) -> tuple[str, str | None]:
    """(PostgreSQL version, pgvector version or None when the extension is missing)."""
    cursor.execute("SHOW server_version")
    (server_version,) = cursor.fetchone()
    cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    row = cursor.fetchone()
    return server_version, (row[0] if row else None)


def count_rows(cursor: psycopg2.extensions.cursor, table: str) -> int:
    cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
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
