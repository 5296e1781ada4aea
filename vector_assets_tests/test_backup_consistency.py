"""A concurrent writer never yields a set with an embedding whose collection is missing."""

import csv
import threading
import time
import uuid

import psycopg2

from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets_tests.support.database import execute, fill_store


def writer(dsn: str, stop: threading.Event, inserted: list[int]) -> None:
    """Each transaction adds a new collection and embeddings that reference it."""
    conn = psycopg2.connect(dsn)
    vector = "[" + ",".join(["0.5"] * 384) + "]"
    try:
        while not stop.is_set():
            collection = str(uuid.uuid4())
            with conn.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO langchain_pg_collection (uuid, name) VALUES (%s, %s)", (collection, collection)
                )
                for _ in range(5):
                    cursor.execute(
                        "INSERT INTO langchain_pg_embedding (id, collection_id, embedding, document)"
                        " VALUES (%s, %s, %s, 'written during backup')",
                        (str(uuid.uuid4()), collection, vector),
                    )
            conn.commit()
            inserted[0] += 1
    finally:
        conn.close()


def csv_column(path, column: str) -> list[str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [row[column] for row in csv.DictReader(handle)]


def test_concurrent_writer_never_leaves_orphan_embeddings_in_a_set(empty_db, backup_root):
    fill_store(empty_db, embeddings=20000)
    stop, inserted = threading.Event(), [0]
    thread = threading.Thread(target=writer, args=(empty_db, stop, inserted))
    thread.start()
    try:
        time.sleep(0.2)
        results = []
        for second in range(3):
            before = inserted[0]
            results.append(run_backup(BackupRequest(dsn=empty_db, root=backup_root, timestamp=f"20250101_00000{second}")))
            assert inserted[0] > before, "the writer made no progress during the backup; the test proves nothing"
    finally:
        stop.set()
        thread.join()
    for result in results:
        collections = set(csv_column(result.paths["langchain_pg_collection"], "uuid"))
        referenced = set(csv_column(result.paths["langchain_pg_embedding"], "collection_id"))
        assert referenced <= collections, f"set {result.timestamp} has embeddings of missing collections"
        assert result.manifest.tables["langchain_pg_embedding"].rows == len(
            csv_column(result.paths["langchain_pg_embedding"], "id")
        )
    total = execute(empty_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0]
    assert total > results[-1].manifest.tables["langchain_pg_embedding"].rows
