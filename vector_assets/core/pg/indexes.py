"""Dropping and rebuilding secondary indexes around a bulk load (pgvector's own advice).

Loading into a table with an HNSW index is several times slower than loading and then
building the index once; the same holds, less dramatically, for the GIN index on cmetadata.
Indexes that back a constraint (the primary key, UNIQUE) stay, so the load is still checked.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.pg.catalog import regclass_literal

INDEX_BUILD_MEMORY = "512MB"


@dataclass(frozen=True)
class SavedIndex:
    schema: str
    name: str
    definition: str  # pg_get_indexdef(), replayed as-is


def size_index_builds(cursor: psycopg2.extensions.cursor) -> None:
    cursor.execute(sql.SQL("SET LOCAL maintenance_work_mem = {}").format(sql.Literal(INDEX_BUILD_MEMORY)))


def drop_secondary_indexes(cursor: psycopg2.extensions.cursor, table: str) -> list[SavedIndex]:
    cursor.execute(
        """
        SELECT n.nspname, c.relname, pg_get_indexdef(i.indexrelid)
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE i.indrelid = %s::regclass
          AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
        ORDER BY c.relname
        """,
        (regclass_literal(cursor, table),),
    )
    saved = [SavedIndex(schema, name, definition) for schema, name, definition in cursor.fetchall()]
    for index in saved:
        cursor.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index.schema, index.name)))
    return saved


def recreate_indexes(cursor: psycopg2.extensions.cursor, saved: list[SavedIndex]) -> list[str]:
    for index in saved:
        cursor.execute(index.definition)
    return [index.name for index in saved]
