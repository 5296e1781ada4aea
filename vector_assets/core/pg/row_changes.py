"""An increment's rows: exported by key at backup; applied to a table or a stage at restore
(upsert the changed rows, delete the deleted keys).

Changed rows are updated in place and new ones inserted, never deleted and re-inserted: a
collection row deleted would take its embeddings with it (ON DELETE CASCADE).

Rows are matched on every column of the primary key, so each statement can go through its index:
the rows to export are looked up by the keys themselves, and the deleted keys wait in a
temporary table with one typed column per key column.
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


def create_key_stage(cursor: psycopg2.extensions.cursor, name: str, key: RowKey) -> sql.Identifier:
    """A temporary table for an increment's deleted keys (the key's columns, typed), dropped at commit."""
    stage = sql.Identifier(name)
    typed = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(type_name))
        for column, type_name in zip(key.columns, key.types)
    )
    cursor.execute(sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(stage, typed))
    return stage


def _same_key(key: RowKey, left: str, right: str) -> sql.Composable:
    return sql.SQL(" AND ").join(
        sql.SQL("{} = {}").format(sql.Identifier(left, column), sql.Identifier(right, column)) for column in key.columns
    )


def upsert_rows(
    cursor: psycopg2.extensions.cursor, relation: sql.Composable, changed: sql.Composable, columns: list[str], key: RowKey
) -> AppliedChanges:
    """Rows of ``changed`` replace those with the same key in ``relation``; the others are added."""
    applied = AppliedChanges()
    same_key = _same_key(key, "r", "s")
    others = [column for column in columns if column not in key.columns]
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
            "INSERT INTO {relation} ({names}) OVERRIDING SYSTEM VALUE SELECT {s_names} FROM {changed} AS s "
            "WHERE NOT EXISTS (SELECT 1 FROM {relation} AS r WHERE {same_key})"
        ).format(
            relation=relation, names=names, changed=changed, same_key=same_key,
            s_names=sql.SQL(", ").join(sql.Identifier("s", column) for column in columns),
        )
    )
    applied.inserted = cursor.rowcount
    return applied


def delete_keys(cursor: psycopg2.extensions.cursor, relation: sql.Composable, keys: sql.Composable, key: RowKey) -> int:
    """Delete the rows of ``relation`` whose key is in ``keys`` (a stage from ``create_key_stage``)."""
    cursor.execute(
        sql.SQL("DELETE FROM {relation} AS r USING {keys} AS d WHERE {same_key}").format(
            relation=relation, keys=keys, same_key=_same_key(key, "r", "d")
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
    cursor: psycopg2.extensions.cursor, table: str, columns: list[str], key: RowKey, keys: list[tuple[str, ...]],
    sink: Sink, options: str,
) -> int:
    """Stream the rows whose key is one of ``keys`` (one text value per key column) into ``sink``;
    returns the rows copied."""
    statement = sql.SQL("COPY ({}) TO STDOUT WITH (" + options + ")").format(rows_with_keys(table, columns, key, keys))
    with database_errors(cursor.connection, f"while copying the changed rows of table {table!r}"):
        cursor.copy_expert(statement, sink, COPY_CHUNK_BYTES)
    return cursor.rowcount


def rows_with_keys(table: str, columns: list[str], key: RowKey, keys: list[tuple[str, ...]]) -> sql.Composable:
    """The query for the rows whose key is one of ``keys``: a lookup of the primary key's index per key.
    A key of several columns comes in as one array per column, zipped back into keys by ``unnest``."""
    if not key.composite:
        return sql.SQL("SELECT {columns} FROM {table} WHERE {key} = ANY ({keys}::{type}[])").format(
            columns=column_list(columns), table=table_identifier(table), key=sql.Identifier(key.columns[0]),
            keys=sql.Literal([value for (value,) in keys]), type=sql.SQL(key.types[0]),
        )
    arrays = sql.SQL(", ").join(
        sql.SQL("{}::{}[]").format(sql.Literal([values[position] for values in keys]), sql.SQL(type_name))
        for position, type_name in enumerate(key.types)
    )
    return sql.SQL("SELECT {columns} FROM unnest({arrays}) AS k({names}) JOIN {table} AS t ON {same_key}").format(
        columns=sql.SQL(", ").join(sql.Identifier("t", column) for column in columns), arrays=arrays,
        names=sql.SQL(", ").join(map(sql.Identifier, key.columns)), table=table_identifier(table),
        same_key=_same_key(key, "t", "k"),
    )
