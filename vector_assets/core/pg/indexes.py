"""Dropping and rebuilding secondary indexes around a bulk load (pgvector's own advice).

Loading into a table with an HNSW index is several times slower than loading and then
building the index once; the same holds, less dramatically, for the GIN index on cmetadata.
Indexes that back a constraint (UNIQUE) stay, so the load is still checked. The primary key
is the exception pg_restore also makes: it is dropped and added back right after the load, which
checks every key at once and builds its index from the loaded rows, about twice as fast here as
updating it row by row; it stays when anything depends on it. Foreign keys to tables the load
holds are dropped too and added back after it: checking each loaded row on its own took 1.25 s of
a 4 s COPY of 400,000 rows here, and adding the key back checks them all with one join in 0.12 s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.pg.catalog import regclass_literal
from vector_assets.core.pg.index_builds import (
    INDEX_ACCESS_METHOD,
    BuildWatch,
    IndexBuild,
    IndexBuildProgress,
    IndexBuildSettings,
    build_workers,
    estimated_build_bytes,
    plan_build_memory,
    server_available_memory,
    size_build,
    spill_notice,
    watching_build,
)


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

    @property
    def qualified_table(self) -> str:
        return f"{self.schema}.{self.table}"


@dataclass(frozen=True)
class SavedKey:
    schema: str
    table: str
    name: str
    definition: str  # pg_get_constraintdef(): PRIMARY KEY (id), with any INCLUDE, WITH, TABLESPACE


def drop_primary_key(cursor: psycopg2.extensions.cursor, table: str) -> SavedKey | None:
    """Drop the table's primary key for a bulk load, unless a foreign key references the table,
    the key serves as replica identity by name or CLUSTER, or it carries a comment."""
    cursor.execute(
        """
        SELECT n.nspname, t.relname, k.conname, pg_get_constraintdef(k.oid)
        FROM pg_constraint k
        JOIN pg_class t ON t.oid = k.conrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        JOIN pg_index i ON i.indexrelid = k.conindid
        WHERE k.conrelid = %s::regclass AND k.contype = 'p'
          AND t.relreplident = 'd' AND NOT i.indisclustered AND NOT i.indisreplident
          AND obj_description(k.oid, 'pg_constraint') IS NULL AND obj_description(k.conindid, 'pg_class') IS NULL
          AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.confrelid = k.conrelid)
        """,
        (regclass_literal(cursor, table),),
    )
    found = cursor.fetchone()
    if found is None:
        return None
    key = SavedKey(*found)
    _drop_constraint(cursor, key)
    return key


def drop_foreign_keys(cursor: psycopg2.extensions.cursor, table: str, held: tuple[str, ...]) -> list[SavedKey]:
    """Drop the table's validated foreign keys that point at a table in ``held`` (truncated or
    created by this transaction, so locked), unless a key is inherited or carries a comment."""
    cursor.execute(
        """
        SELECT n.nspname, t.relname, k.conname, pg_get_constraintdef(k.oid)
        FROM pg_constraint k
        JOIN pg_class t ON t.oid = k.conrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE k.conrelid = %s::regclass AND k.contype = 'f' AND k.convalidated
          AND k.conparentid = 0 AND k.coninhcount = 0 AND t.relkind = 'r'
          AND obj_description(k.oid, 'pg_constraint') IS NULL
          AND k.confrelid = ANY(%s::regclass[])
        ORDER BY k.conname
        """,
        (regclass_literal(cursor, table), [regclass_literal(cursor, name) for name in held]),
    )
    keys = [SavedKey(*found) for found in cursor.fetchall()]
    for key in keys:
        _drop_constraint(cursor, key)
    return keys


def drop_unique_constraints(cursor: psycopg2.extensions.cursor, table: str) -> list[SavedKey]:
    """Drop the table's UNIQUE constraints (not its primary key) that no foreign key relies on
    and that are neither inherited nor commented."""
    cursor.execute(
        """
        SELECT n.nspname, t.relname, k.conname, pg_get_constraintdef(k.oid)
        FROM pg_constraint k
        JOIN pg_class t ON t.oid = k.conrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE k.conrelid = %s::regclass AND k.contype = 'u'
          AND k.conparentid = 0 AND k.coninhcount = 0 AND t.relkind = 'r'
          AND obj_description(k.oid, 'pg_constraint') IS NULL AND obj_description(k.conindid, 'pg_class') IS NULL
          AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = k.conindid)
        ORDER BY k.conname
        """,
        (regclass_literal(cursor, table),),
    )
    keys = [SavedKey(*found) for found in cursor.fetchall()]
    for key in keys:
        _drop_constraint(cursor, key)
    return keys


def drop_unique_indexes(cursor: psycopg2.extensions.cursor, table: str) -> list[SavedIndex]:
    """Drop the table's unique indexes that back no constraint (``CREATE UNIQUE INDEX``)."""
    return _drop_indexes(cursor, table, unique=True)


def _drop_constraint(cursor: psycopg2.extensions.cursor, key: SavedKey) -> None:
    cursor.execute(
        sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.Identifier(key.schema, key.table), sql.Identifier(key.name))
    )


def add_constraint(cursor: psycopg2.extensions.cursor, key: SavedKey) -> None:
    """Put a dropped key back: every loaded row is checked here, in the same transaction."""
    cursor.execute(
        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(sql.Identifier(key.schema, key.table), sql.Identifier(key.name))
        + sql.SQL(key.definition)
    )


def drop_secondary_indexes(cursor: psycopg2.extensions.cursor, table: str) -> list[SavedIndex]:
    """Drop the table's non-unique indexes that back no constraint (HNSW, IVFFlat, GIN, ...).

    Unique indexes stay: they keep the load checked, and a replica identity index is unique.
    """
    return _drop_indexes(cursor, table, unique=False)


def _drop_indexes(cursor: psycopg2.extensions.cursor, table: str, unique: bool) -> list[SavedIndex]:
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
        WHERE i.indrelid = %s::regclass AND i.indisunique = %s AND NOT i.indisprimary AND NOT i.indisreplident
          AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
        ORDER BY c.relname
        """,
        (regclass_literal(cursor, table), unique),
    )
    saved = [
        SavedIndex(schema, table_name, name, definition, tablespace, comment, clustered, tuple(map(tuple, statistics)))
        for schema, table_name, name, definition, tablespace, comment, clustered, statistics in cursor.fetchall()
    ]
    for index in saved:
        cursor.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index.schema, index.name)))
    return saved


def recreate_indexes(
    cursor: psycopg2.extensions.cursor,
    saved: list[SavedIndex],
    rows: int = 0,
    build_settings: IndexBuildSettings = IndexBuildSettings(),
    watch: BuildWatch | None = None,
) -> list[IndexBuild]:
    """Build each index again exactly as it was (tablespace, comment, statistics, CLUSTER mark),
    each with memory for its ``rows`` and parallel workers."""
    workers = build_workers(cursor, build_settings) if saved else 0
    server_memory = server_available_memory(cursor) if saved else None
    builds = []
    for index in saved:
        cursor.execute(sql.SQL("SET LOCAL default_tablespace = {}").format(sql.Literal(index.tablespace or "")))
        builds.append(_build(cursor, index, rows, build_settings, workers, server_memory, watch))
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
    return builds


def _build(
    cursor: psycopg2.extensions.cursor,
    index: SavedIndex,
    rows: int,
    build_settings: IndexBuildSettings,
    workers: int,
    server_memory: int | None,
    watch: BuildWatch | None,
) -> IndexBuild:
    estimate = estimated_build_bytes(cursor, index.qualified_table, index.definition, rows)
    memory = plan_build_memory(estimate, build_settings, server_memory)
    shortfall = memory.shortfall(index.name)
    if shortfall and watch is not None:
        watch.reporter.report(IndexBuildProgress(index.name, "planned", 0, 0, 0, 0, note=shortfall))
    size_build(cursor, memory.granted_bytes, workers)
    del cursor.connection.notices[:]
    started = time.monotonic()
    with watching_build(watch, index.name):
        cursor.execute(index.definition)
    method = match.group(1) if (match := INDEX_ACCESS_METHOD.search(index.definition)) else "?"
    return IndexBuild(
        index.name, method, memory.granted_bytes, workers, time.monotonic() - started, spill_notice(cursor.connection),
        needed_bytes=estimate, shortfall=shortfall,
    )
