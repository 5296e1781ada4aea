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
    """Everything that makes an index what it was, not only its CREATE INDEX statement."""

    schema: str
    table: str
    name: str
    definition: str  # pg_get_indexdef(), replayed as-is
    tablespace: str | None
    comment: str | None
    clustered: bool
    statistics: tuple[tuple[int, int], ...]  # (index column, statistics target) set by ALTER INDEX


def size_index_builds(cursor: psycopg2.extensions.cursor) -> None:
    cursor.execute(sql.SQL("SET LOCAL maintenance_work_mem = {}").format(sql.Literal(INDEX_BUILD_MEMORY)))


def drop_secondary_indexes(cursor: psycopg2.extensions.cursor, table: str) -> list[SavedIndex]:
    """Drop the table's non-unique indexes that back no constraint (HNSW, IVFFlat, GIN, ...).

    Unique indexes stay: they keep the load checked, and a replica identity index is unique.
    """
    cursor.execute(
        """
        SELECT n.nspname, t.relname, c.relname, pg_get_indexdef(i.indexrelid), ts.spcname,
               obj_description(i.indexrelid, 'pg_class'), i.indisclustered,
               ARRAY(SELECT ARRAY[a.attnum::int, a.attstattarget::int] FROM pg_attribute a
                     WHERE a.attrelid = i.indexrelid AND a.attstattarget >= 0 ORDER BY a.attnum)
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_class t ON t.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_tablespace ts ON ts.oid = c.reltablespace
        WHERE i.indrelid = %s::regclass AND NOT i.indisunique
          AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
        ORDER BY c.relname
        """,
        (regclass_literal(cursor, table),),
    )
    saved = [
        SavedIndex(schema, table_name, name, definition, tablespace, comment, clustered, tuple(map(tuple, statistics)))
        for schema, table_name, name, definition, tablespace, comment, clustered, statistics in cursor.fetchall()
    ]
    for index in saved:
        cursor.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index.schema, index.name)))
    return saved


def recreate_indexes(cursor: psycopg2.extensions.cursor, saved: list[SavedIndex]) -> list[str]:
    """Build each index again exactly as it was: tablespace, comment, statistics, CLUSTER mark."""
    for index in saved:
        cursor.execute(sql.SQL("SET LOCAL default_tablespace = {}").format(sql.Literal(index.tablespace or "")))
        cursor.execute(index.definition)
        name = sql.Identifier(index.schema, index.name)
        if index.comment is not None:
            cursor.execute(sql.SQL("COMMENT ON INDEX {} IS {}").format(name, sql.Literal(index.comment)))
        for column, target in index.statistics:
            cursor.execute(sql.SQL("ALTER INDEX {} ALTER COLUMN {} SET STATISTICS {}").format(
                name, sql.Literal(column), sql.Literal(target)
            ))
        if index.clustered:
            cursor.execute(sql.SQL("ALTER TABLE {} CLUSTER ON {}").format(
                sql.Identifier(index.schema, index.table), sql.Identifier(index.name)
            ))
    cursor.execute("SET LOCAL default_tablespace = ''")
    return [index.name for index in saved]
