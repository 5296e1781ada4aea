"""A small deterministic demo store, and the LangChain table layouts it is built on.

The documents and metadata include what breaks naive CSV handling: commas, double quotes,
newlines, backslashes, Chinese text, and NULL next to the empty string. The store `make dev`
shows a newcomer leaves out the NULL and the empty document: the data checks rightly warn about
them, and a first screen should be green because the store is sound, not because a warning was
silenced. The tests' stores keep both.
"""

from __future__ import annotations

import io
import random
import uuid
from datetime import datetime
from pathlib import Path, PurePosixPath

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from vector_assets import settings
from vector_assets.core.errors import ConfigError
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.sets.catalog import scan_root
from vector_assets.core.sets.disk_store import DiskFolder
from vector_assets.core.sets.naming import (
    BACKUP_FOLDER_NAME,
    LOG_FILE_NAME,
    csv_file_name,
    timestamp_time,
)
from vector_assets.core.sets.roots import open_root
from vector_assets.core.sets.storage import Root, SetFolder
from vector_assets.core.stores import Store, langchain_store
from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE, LEGACY_TABLES

DEMO_SEED = 20250721
DEMO_EMBEDDINGS = 3000
DEMO_DIMENSIONS = 384
VANNA_COLLECTIONS = ("sql", "ddl", "documentation")
LEGACY_TASK_ID = "task_20250721_213627"
LEGACY_TIMESTAMP = "20250721_213627"

# langchain-postgres PGVector (current layout).
CURRENT_LAYOUT_DDL = """
CREATE TABLE langchain_pg_collection (
  uuid UUID NOT NULL PRIMARY KEY, name VARCHAR NOT NULL UNIQUE, cmetadata JSON);
CREATE TABLE langchain_pg_embedding (
  id VARCHAR NOT NULL PRIMARY KEY,
  collection_id UUID REFERENCES langchain_pg_collection (uuid) ON DELETE CASCADE,
  embedding VECTOR({dims}), document VARCHAR, cmetadata JSONB);
CREATE INDEX ix_cmetadata_gin ON langchain_pg_embedding USING gin (cmetadata jsonb_path_ops);
"""

# langchain_community PGVector (older layout, still common): uuid key plus custom_id, JSON
# metadata, no UNIQUE on the collection name, and another column order.
COMMUNITY_LAYOUT_DDL = """
CREATE TABLE langchain_pg_collection (
  name VARCHAR, cmetadata JSON, uuid UUID NOT NULL PRIMARY KEY);
CREATE TABLE langchain_pg_embedding (
  collection_id UUID REFERENCES langchain_pg_collection (uuid) ON DELETE CASCADE,
  embedding VECTOR({dims}), document VARCHAR, cmetadata JSON, custom_id VARCHAR,
  uuid UUID NOT NULL PRIMARY KEY);
"""

TRICKY_DOCUMENTS = (
    'SELECT name, "total" FROM sales WHERE region = \'north, east\';',
    "line one\nline two\r\nline three",
    "C:\\data\\export\\N \\N and a trailing backslash \\",
    "高速公路服务区的营业收入统计，按月汇总。",
    'she said "hello, world" and left',
    "",
    None,
    "tab\tseparated\tvalues, with \"quotes\"\nand a newline",
)


def tables_exist(cursor: psycopg2.extensions.cursor) -> bool:
    cursor.execute("SELECT to_regclass(%s), to_regclass(%s)", (COLLECTION_TABLE, EMBEDDING_TABLE))
    return all(oid is not None for oid in cursor.fetchone())


def create_tables(cursor: psycopg2.extensions.cursor, *, layout: str = "current", dims: int = DEMO_DIMENSIONS) -> None:
    ddl = {"current": CURRENT_LAYOUT_DDL, "community": COMMUNITY_LAYOUT_DDL}[layout]
    cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
    cursor.execute(ddl.format(dims=int(dims)))


def demo_rows(
    *, embeddings: int = DEMO_EMBEDDINGS, dims: int = DEMO_DIMENSIONS, seed: int = DEMO_SEED,
    blank_documents: bool = True,
) -> tuple[list[dict], list[dict]]:
    """Deterministic collections and embeddings as plain dicts (values are Python objects);
    without ``blank_documents``, the NULL and the empty document are ordinary ones instead."""
    rng = random.Random(seed)
    collections = [
        {"uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "name": name,
         "cmetadata": None if name == "documentation" else f'{{"source": "vanna", "kind": "{name}"}}'}
        for name in VANNA_COLLECTIONS
    ]
    rows = []
    for index in range(embeddings):
        collection = collections[index % len(collections)]
        rows.append({
            "id": f"{uuid.UUID(int=rng.getrandbits(128), version=4)}-{collection['name']}",
            "collection_id": collection["uuid"],
            "embedding": "[" + ",".join(f"{rng.uniform(-1, 1):.6f}" for _ in range(dims)) + "]",
            "document": _document(index, rng, blank_documents),
            "cmetadata": _metadata(index),
        })
    return collections, rows


def _document(index: int, rng: random.Random, blank: bool) -> str | None:
    if index < len(TRICKY_DOCUMENTS):
        tricky = TRICKY_DOCUMENTS[index]
        return tricky if tricky or blank else f"document {index}: which tables hold the monthly totals?"
    return f"question {index}: how many rows, in total, does \"table_{rng.randint(1, 99)}\" hold?"


def _metadata(index: int) -> str | None:
    if index % 50 == 7:
        return None
    return (
        '{"source": "a,b", "note": "he said \\"hi\\"\\n", "zh": "中文", '
        f'"backslash": "\\\\", "index": {index}}}'
    )


def load_rows(conn: psycopg2.extensions.connection, table: str, rows: list[dict]) -> None:
    """COPY rows in; NULL stays NULL and the empty string stays empty."""
    if not rows:
        return
    columns = list(rows[0])
    buffer = io.StringIO()
    for row in rows:
        buffer.write("\t".join(_copy_text(row[column]) for column in columns) + "\n")
    buffer.seek(0)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with conn.cursor() as cursor:
        cursor.copy_expert(statement, buffer)


def _copy_text(value: object) -> str:
    if value is None:
        return "\\N"
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def ensure_demo_store(dsn: str, root: Root | Path | str) -> bool:
    """Create and fill the LangChain tables if they are missing; drop in a legacy set. True if created."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cursor:
            if tables_exist(cursor):
                return False
            create_tables(cursor)
        collections, embeddings = demo_rows(blank_documents=False)
        load_rows(conn, COLLECTION_TABLE, collections)
        load_rows(conn, EMBEDDING_TABLE, embeddings)
        conn.commit()
        write_legacy_set(conn, open_root(root).folder_at(f"{LEGACY_TASK_ID}/{BACKUP_FOLDER_NAME}"), LEGACY_TIMESTAMP)
        return True
    finally:
        conn.close()


def ensure_fresh_demo_backup(
    dsn: str, root: Root | Path | str, now: datetime | None = None, *, store: Store | None = None
) -> str | None:
    """Back a demo store up (the LangChain one unless told) when no set under the root is newer
    than its VECTOR_ASSETS_BACKUP_MAX_AGE, so a demo starts out as a healthy store: a fresh set,
    with the old legacy set kept as history. Returns what it did, for the banner, or None when a
    fresh set is there already."""
    store = store or langchain_store()
    environment = store.environment()
    try:
        max_age = settings.BACKUP_MAX_AGE.seconds(environment)
    except ConfigError:
        return None  # the freshness check names the malformed setting; nothing to judge by here
    now = now or datetime.now()
    newest = max((backup_set.timestamp for backup_set in scan_root(root)), default=None)
    if newest is not None and (now - timestamp_time(newest)).total_seconds() < max_age:
        return None
    made = run_backup(BackupRequest(dsn=dsn, root=root, format=settings.backup_format(environment), store=store))
    why = ("no set yet" if newest is None
           else f"the newest set, {newest}, is older than {settings.BACKUP_MAX_AGE.get(environment)}")
    which = "the demo store" if store.is_default else f"store {store.name}"
    return f"backed {which} up as set {made.timestamp} ({why})"


def write_legacy_set(conn: psycopg2.extensions.connection, folder: SetFolder | Path, timestamp: str) -> None:
    """A set as the earlier tooling wrote it: plain COPY ... CSV HEADER files and a log, no manifest."""
    folder = DiskFolder(folder) if isinstance(folder, Path) else folder
    folder.prepare()
    task_id = PurePosixPath(str(folder)).parent.name
    lines = ["=== Vector Table Backup Log ===", "Backup Time: 2025-07-21 21:36:27",
             f"Task ID: {task_id}", "", "Tables Backup Status:"]
    for table in LEGACY_TABLES:
        buffer = io.BytesIO()
        with conn.cursor() as cursor:
            cursor.copy_expert(sql.SQL("COPY {} TO STDOUT WITH CSV HEADER").format(sql.Identifier(table)), buffer)
            rows = cursor.rowcount
        folder.write_bytes(csv_file_name(table, timestamp), buffer.getvalue())
        lines.append(f"✓ {table}: {rows} rows -> {csv_file_name(table, timestamp)}")
    lines += ["", "Truncate Status:", "- Not performed", ""]
    folder.write_bytes(LOG_FILE_NAME, "\n".join(lines).encode("utf-8"))
