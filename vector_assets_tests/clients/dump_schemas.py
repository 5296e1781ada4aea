"""python -m vector_assets_tests.clients.dump_schemas: each client's store as its client makes it,
schema only (``pg_dump -s --no-owner``), written beside this file as ``<layout>.schema.sql``.

Run by the project's python after ``make test`` has made the clients' venv. It starts an
embedded PostgreSQL in a temporary folder (or uses VECTOR_ASSETS_TEST_PG_DSN's server), has each
client make its store in a new database, and dumps it with the server's own pg_dump. The files
are for reading: what each layout's DDL is, as tested. A rerun writes the same files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2.extensions

from vector_assets.dev.embedded import bundled_client, start_embedded
from vector_assets_tests.support.clients import CLIENTS_FOLDER, run_client
from vector_assets_tests.support.database import fresh_database

LAYOUTS = ("langchain_postgres", "llamaindex", "pgai")
# pgai installs its own catalog (schema ai, thousands of lines): its file holds the store's schema.
ONLY_SCHEMA = {"pgai": "public"}
RESTRICT_KEY = "vectorassetsschema"  # pg_dump 18 picks a random one per run otherwise


@contextmanager
def maintenance_dsn() -> Iterator[str]:
    if os.environ.get("VECTOR_ASSETS_TEST_PG_DSN"):
        yield os.environ["VECTOR_ASSETS_TEST_PG_DSN"]
        return
    folder = Path(tempfile.mkdtemp(prefix="va-schema-dump-"))
    server = start_embedded(folder)
    try:
        yield server.dsn("postgres")
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def dump_schema(dsn: str, schema: str | None = None) -> str:
    params = psycopg2.extensions.parse_dsn(dsn)
    database = params.pop("dbname")
    environment = {**os.environ, **{f"PG{name.upper()}": value for name, value in params.items()
                                    if name in ("host", "port", "user", "password")}}
    done = subprocess.run(
        [str(bundled_client("pg_dump")), "--schema-only", "--no-owner", f"--restrict-key={RESTRICT_KEY}",
         *([f"--schema={schema}"] if schema else []), database],
        env=environment, capture_output=True, text=True, check=True,
    )
    return done.stdout


def main() -> None:
    with maintenance_dsn() as maintenance:
        for layout in LAYOUTS:
            with fresh_database(maintenance) as dsn:
                run_client(layout, "make", dsn)
                path = CLIENTS_FOLDER / f"{layout}.schema.sql"
                path.write_text(dump_schema(dsn, ONLY_SCHEMA.get(layout)))
                print(f"{path}")


if __name__ == "__main__":
    main()
