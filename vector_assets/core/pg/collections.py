"""Statements for one collection of a LangChain store: finding it by name, narrowing a stage to
its rows, giving a renamed copy new keys, and replacing it in the target.

Both LangChain layouts name these columns alike: the collection's ``uuid`` and ``name``, and
the embedding's ``collection_id``. Everything else is copied as the set holds it.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.pg.catalog import column_list
from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE

COLLECTION_KEY = "uuid"
COLLECTION_NAME = "name"
COLLECTION_REFERENCE = "collection_id"
KEY_BATCH_ROWS = 10_000  # renamed uuid keys are computed here, this many at a time: memory stays flat


@dataclass(frozen=True)
class StoredCollection:
    uuid: str
    name: str | None  # the older layout allows NULL


def collections_in(cursor: psycopg2.extensions.cursor, relation: sql.Composable) -> list[StoredCollection]:
    """Every collection of a collection table (or of a stage of one), by name."""
    cursor.execute(
        sql.SQL("SELECT {key}::text, {name} FROM {relation} ORDER BY {name}, {key}").format(
            key=sql.Identifier(COLLECTION_KEY), name=sql.Identifier(COLLECTION_NAME), relation=relation
        )
    )
    return [StoredCollection(uuid, name) for uuid, name in cursor.fetchall()]


def collections_named(cursor: psycopg2.extensions.cursor, name: str) -> list[str]:
    """The uuids of the target's collections of this name (the older layout may have several)."""
    cursor.execute(
        sql.SQL("SELECT {key}::text FROM {table} WHERE {name} = %s ORDER BY 1").format(
            key=sql.Identifier(COLLECTION_KEY), table=sql.Identifier(COLLECTION_TABLE), name=sql.Identifier(COLLECTION_NAME)
        ),
        (name,),
    )
    return [uuid for (uuid,) in cursor.fetchall()]


def collection_with_uuid(cursor: psycopg2.extensions.cursor, uuid: str) -> StoredCollection | None:
    cursor.execute(
        sql.SQL("SELECT {key}::text, {name} FROM {table} WHERE {key} = %s::uuid").format(
            key=sql.Identifier(COLLECTION_KEY), table=sql.Identifier(COLLECTION_TABLE), name=sql.Identifier(COLLECTION_NAME)
        ),
        (uuid,),
    )
    row = cursor.fetchone()
    return StoredCollection(*row) if row else None


def keep_only(cursor: psycopg2.extensions.cursor, stage: sql.Identifier, column: str, uuid: str) -> int:
    """Delete the staged rows whose ``column`` is not ``uuid``; returns the rows deleted."""
    cursor.execute(
        sql.SQL("DELETE FROM {} WHERE {} IS DISTINCT FROM %s::uuid").format(stage, sql.Identifier(column)), (uuid,)
    )
    return cursor.rowcount


def rename_staged_collection(cursor: psycopg2.extensions.cursor, stage: sql.Identifier, uuid: str, name: str) -> None:
    cursor.execute(
        sql.SQL("UPDATE {} SET {} = %s::uuid, {} = %s").format(
            stage, sql.Identifier(COLLECTION_KEY), sql.Identifier(COLLECTION_NAME)
        ),
        (uuid, name),
    )


def move_staged_embeddings(cursor: psycopg2.extensions.cursor, stage: sql.Identifier, uuid: str) -> None:
    cursor.execute(sql.SQL("UPDATE {} SET {} = %s::uuid").format(stage, sql.Identifier(COLLECTION_REFERENCE)), (uuid,))


def suffix_staged_keys(cursor: psycopg2.extensions.cursor, stage: sql.Identifier, key: str, suffix: str) -> None:
    """A text key becomes ``key || suffix`` in every staged row."""
    cursor.execute(sql.SQL("UPDATE {stage} SET {key} = {key} || %s").format(stage=stage, key=sql.Identifier(key)), (suffix,))


def map_staged_uuid_keys(
    cursor: psycopg2.extensions.cursor, stage: sql.Identifier, key: str, new_key: Callable[[str], str]
) -> None:
    """A uuid key becomes ``new_key(its text)`` in every staged row.

    PostgreSQL has no name-based uuid function without an extension, so the new keys are
    computed here: the distinct old keys are read a batch at a time through a server-side
    cursor, and each batch's (old, new) pairs are copied into a temporary table that the
    stage is then updated from, in one statement.
    """
    mapping = sql.Identifier(f"{stage.strings[0]}_new_keys")
    cursor.execute(sql.SQL("CREATE TEMP TABLE {} (old uuid, new uuid) ON COMMIT DROP").format(mapping))
    with cursor.connection.cursor(name="vector_assets_staged_keys") as keys:
        keys.execute(sql.SQL("SELECT DISTINCT {key}::text FROM {stage} WHERE {key} IS NOT NULL").format(
            key=sql.Identifier(key), stage=stage
        ))
        while batch := keys.fetchmany(KEY_BATCH_ROWS):
            pairs = "".join(f"{old}\t{new_key(old)}\n" for (old,) in batch)
            cursor.copy_expert(sql.SQL("COPY {} (old, new) FROM STDIN").format(mapping), io.StringIO(pairs))
    cursor.execute(
        sql.SQL("UPDATE {stage} s SET {key} = m.new FROM {mapping} m WHERE s.{key} = m.old").format(
            stage=stage, key=sql.Identifier(key), mapping=mapping
        )
    )


def delete_embeddings_of(cursor: psycopg2.extensions.cursor, uuid: str) -> tuple[int, int]:
    """Delete one collection's embeddings from the target; returns (rows the table held before,
    rows deleted).

    LangChain's tables have no index on ``collection_id``, so finding the collection's rows
    scans the whole table; that one scan also counts the table's rows and gathers the
    collection's row addresses (``ctid``, 6 bytes a row, held by the server), which the delete
    then visits directly instead of scanning the table again. The delete repeats the filter: in
    a partitioned or inherited table an address is not unique, and only the collection's rows go.
    """
    cursor.execute(
        sql.SQL(
            "WITH scanned AS (SELECT count(*) AS rows_before, "
            "array_agg(ctid) FILTER (WHERE {reference} = %(uuid)s::uuid) AS addresses FROM {table}), "
            "deleted AS (DELETE FROM {table} WHERE ctid = ANY ((SELECT addresses FROM scanned)::tid[]) "
            "AND {reference} = %(uuid)s::uuid RETURNING 1) "
            "SELECT (SELECT rows_before FROM scanned), (SELECT count(*) FROM deleted)"
        ).format(table=sql.Identifier(EMBEDDING_TABLE), reference=sql.Identifier(COLLECTION_REFERENCE)),
        {"uuid": uuid},
    )
    rows_before, deleted = cursor.fetchone()
    return int(rows_before), int(deleted)


def delete_collection_row(cursor: psycopg2.extensions.cursor, uuid: str) -> int:
    """Delete one collection's row, once its embeddings are gone; returns how many rows (0 or 1)."""
    cursor.execute(
        sql.SQL("DELETE FROM {} WHERE {} = %s::uuid").format(sql.Identifier(COLLECTION_TABLE), sql.Identifier(COLLECTION_KEY)),
        (uuid,),
    )
    return cursor.rowcount


def overwrite_collection_row(
    cursor: psycopg2.extensions.cursor, stage: sql.Identifier, columns: list[str], uuid: str
) -> int:
    """Give the target's collection ``uuid`` every column of the one staged collection row, its
    uuid included. The row is updated, never deleted: deleting it would cascade."""
    cursor.execute(
        sql.SQL("UPDATE {table} SET ({columns}) = (SELECT {columns} FROM {stage}) WHERE {key} = %s::uuid").format(
            table=sql.Identifier(COLLECTION_TABLE), columns=column_list(columns), stage=stage,
            key=sql.Identifier(COLLECTION_KEY),
        ),
        (uuid,),
    )
    return cursor.rowcount
