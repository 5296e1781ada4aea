"""Statements that change the managed tables: locking, truncating, staged appends."""

from __future__ import annotations

import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.pg.catalog import column_list

LOCK_TIMEOUT = "60s"


def lock_against_writers(cursor: psycopg2.extensions.cursor, tables: tuple[str, ...]) -> None:
    """SHARE ROW EXCLUSIVE: writers wait, readers go on."""
    cursor.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
    cursor.execute(
        sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(sql.SQL(", ").join(map(sql.Identifier, tables)))
    )


def truncate_tables(cursor: psycopg2.extensions.cursor, tables: list[str] | tuple[str, ...]) -> None:
    # One statement: the foreign key forbids truncating collections on their own.
    cursor.execute(sql.SQL("TRUNCATE TABLE {}").format(sql.SQL(", ").join(map(sql.Identifier, tables))))


def create_stage(cursor: psycopg2.extensions.cursor, table: str) -> sql.Identifier:
    """A temporary copy of the table's shape, dropped at commit, to load into before inserting."""
    stage = sql.Identifier(f"restore_stage_{table}")
    cursor.execute(
        sql.SQL("CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP").format(stage, sql.Identifier(table))
    )
    return stage


def count_conflicts(
    cursor: psycopg2.extensions.cursor, table: str, stage: sql.Identifier, key: list[str]
) -> tuple[int, str | None]:
    """(rows of the stage whose key exists in the table, the smallest such key as text)."""
    if not key:
        return 0, None
    join = sql.SQL(" AND ").join(sql.SQL("s.{0} = t.{0}").format(sql.Identifier(column)) for column in key)
    key_text = sql.SQL(" || ', ' || ").join(sql.SQL("s.{}::text").format(sql.Identifier(c)) for c in key)
    cursor.execute(
        sql.SQL("SELECT count(*), min({}) FROM {} s JOIN {} t ON {}").format(key_text, stage, sql.Identifier(table), join)
    )
    count, first = cursor.fetchone()
    return int(count), first


def insert_from_stage(
    cursor: psycopg2.extensions.cursor, table: str, stage: sql.Identifier, columns: list[str]
) -> int:
    """Insert the staged rows, skipping those that conflict; returns the rows inserted."""
    names = column_list(columns)
    cursor.execute(
        sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
            sql.Identifier(table), names, names, stage
        )
    )
    return cursor.rowcount
