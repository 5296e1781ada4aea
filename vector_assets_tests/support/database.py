"""Databases for tests: fresh ones on the test server, the demo store in either layout, and
ways to read them back exactly."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.stores import langchain_store
from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE
from vector_assets.dev.demo import create_tables, demo_rows, load_rows

STORE_TABLES = langchain_store().table_names  # the default store's, in load order


def dsn_for(maintenance: str, database: str) -> str:
    params = psycopg2.extensions.parse_dsn(maintenance)
    params["dbname"] = database
    return psycopg2.extensions.make_dsn(**params)


@contextmanager
def fresh_database(maintenance_dsn: str, *, with_vector: bool = True) -> Iterator[str]:
    """A new database with the vector extension (unless ``with_vector`` is False) and no tables;
    dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(maintenance_dsn)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = dsn_for(maintenance_dsn, name)
    if with_vector:
        execute(dsn, "CREATE EXTENSION IF NOT EXISTS vector")
    try:
        yield dsn
    finally:
        with admin.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


def fill_store(dsn: str, *, layout: str = "current", embeddings: int = 300, dims: int = 384) -> None:
    collections, rows = demo_rows(embeddings=embeddings, dims=dims)
    if layout == "community":
        rows = [
            {"uuid": str(uuid.UUID(int=index + 1)), "custom_id": row["id"], **{k: v for k, v in row.items() if k != "id"}}
            for index, row in enumerate(rows)
        ]
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cursor:
            create_tables(cursor, layout=layout, dims=dims)
        load_rows(conn, COLLECTION_TABLE, collections)
        load_rows(conn, EMBEDDING_TABLE, rows)
        conn.commit()
    finally:
        conn.close()


def rows_as_text(dsn: str, table: str, schema: str = "public") -> Counter:
    """Every row as Postgres prints a record: NULL and '' print differently, JSON as text."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
        cursor.execute(sql.SQL("SELECT t::text FROM {}.{} AS t").format(sql.Identifier(schema), sql.Identifier(table)))
        found = Counter(row[0] for row in cursor.fetchall())
    conn.close()
    return found


def execute(dsn: str, statement: str, params: tuple | None = None) -> list[tuple]:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else []
    finally:
        conn.close()


def tables_now(dsn: str) -> dict[str, Counter]:
    """Every managed table's rows, to compare a database before and after."""
    return {table: rows_as_text(dsn, table) for table in STORE_TABLES}
