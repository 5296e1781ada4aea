"""An increment's rows: exported by key at backup; applied to a table or a stage at restore
(upsert the changed rows, delete the deleted keys).

Changed rows are updated in place and new ones inserted, never deleted and re-inserted: a
collection row deleted would take its embeddings with it (ON DELETE CASCADE).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.pg.catalog import column_list, table_identifier
from vector_assets.core.pg.connection import database_errors
from vector_assets.core.pg.copy import COPY_CHUNK_BYTES, Sink
from vector_assets.core.pg.row_digests import RowKey


@dataclass
class AppliedChanges:
    updated: int = 0
    inserted: int = 0
    deleted: int = 0


def create_key_stage(cursor: psycopg2.extensions.cursor, name: str, key_type: str) -> sql.Identifier:
    """A temporary one-column table for an increment's deleted keys, dropped at commit."""
    stage = sql.Identifier(name)
    cursor.execute(sql.SQL("CREATE TEMP TABLE {} (key {}) ON COMMIT DROP").format(stage, sql.SQL(key_type)))
    return stage


def upsert_rows(
    cursor: psycopg2.extensions.cursor, relation: sql.Composable, changed: sql.Composable, columns: list[str], key: str
) -> AppliedChanges:
    """Rows of ``changed`` replace those with the same key in ``relation``; the others are added."""
    applied = AppliedChanges()
    same_key = sql.SQL("r.{key} = s.{key}").format(key=sql.Identifier(key))
    others = [column for column in columns if column != key]
    if others:
        assignments = sql.SQL(", ").join(
            sql.SQL("{column} = s.{column}").format(column=sql.Identifier(column)) for column in others
        )
        cursor.execute(
            sql.SQL("UPDATE {relation} AS r SET {assignments} FROM {changed} AS s WHERE {same_key}").format(
                relation=relation, assignments=assignments, changed=changed, same_key=same_key
            )
        )
        applied.updated = cursor.rowcount
    names = column_list(columns)
    cursor.execute(
        sql.SQL(
            "INSERT INTO {relation} ({names}) SELECT {s_names} FROM {changed} AS s "
            "WHERE NOT EXISTS (SELECT 1 FROM {relation} AS r WHERE {same_key})"
        ).format(
            relation=relation, names=names, changed=changed, same_key=same_key,
            s_names=sql.SQL(", ").join(sql.Identifier("s", column) for column in columns),
        )
    )
    applied.inserted = cursor.rowcount
    return applied


def delete_keys(cursor: psycopg2.extensions.cursor, relation: sql.Composable, keys: sql.Composable, key: str) -> int:
    cursor.execute(
        sql.SQL("DELETE FROM {relation} AS r USING {keys} AS d WHERE r.{key} = d.key").format(
            relation=relation, keys=keys, key=sql.Identifier(key)
        )
    )
    return cursor.rowcount


def analyze(cursor: psycopg2.extensions.cursor, stage: sql.Identifier) -> None:
    """A fresh temporary table has no statistics; with none the planner may join a few changed
    rows against the whole table by scanning it, instead of through its key's index."""
    cursor.execute(sql.SQL("ANALYZE {}").format(stage))


def drop_stage(cursor: psycopg2.extensions.cursor, stage: sql.Identifier) -> None:
    cursor.execute(sql.SQL("DROP TABLE {}").format(stage))


def copy_rows_with_keys(
    cursor: psycopg2.extensions.cursor, table: str, columns: list[str], key: RowKey, keys: list[str],
    sink: Sink, options: str,
) -> int:
    """Stream the rows whose key is one of ``keys`` into ``sink``; returns the rows copied."""
    query = sql.SQL("SELECT {columns} FROM {table} WHERE {key} = ANY ({keys}::{type}[])").format(
        columns=column_list(columns), table=table_identifier(table), key=sql.Identifier(key.column),
        keys=sql.Literal(keys), type=sql.SQL(key.type),
    )
    statement = sql.SQL("COPY ({}) TO STDOUT WITH (" + options + ")").format(query)
    with database_errors(cursor.connection, f"while copying the changed rows of table {table!r}"):
        cursor.copy_expert(statement, sink, COPY_CHUNK_BYTES)
    return cursor.rowcount

