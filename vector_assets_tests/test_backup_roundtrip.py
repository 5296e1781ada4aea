"""A backup loaded back with COPY FROM gives every row exactly: vectors, JSON, NULL versus ''."""

import csv
import json

import psycopg2
import pytest
from psycopg2 import sql

from vector_assets.core.hashing import sha256_of_file
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets.core.sets.csv_files import header_of
from vector_assets_tests.support.database import STORE_TABLES
from vector_assets_tests.support.database import (
    execute,
    fill_store,
    rows_as_text,
    tables_now,
)


def load_set_into_schema(dsn: str, result, schema: str) -> None:
    """Restore by hand, as a user would with psql: same table shapes, COPY FROM with the header's columns."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            for table in STORE_TABLES:
                cursor.execute(
                    sql.SQL("CREATE TABLE {}.{} (LIKE public.{})").format(
                        sql.Identifier(schema), sql.Identifier(table), sql.Identifier(table)
                    )
                )
                path = result.paths[table]
                columns = sql.SQL(", ").join(map(sql.Identifier, header_of(result.folder, path.name)))
                with open(path, "rb") as handle:
                    cursor.copy_expert(
                        sql.SQL("COPY {}.{} ({}) FROM STDIN WITH (FORMAT csv, HEADER, ENCODING 'UTF8')").format(
                            sql.Identifier(schema), sql.Identifier(table), columns
                        ),
                        handle,
                    )
        conn.commit()
    finally:
        conn.close()


@pytest.mark.parametrize("layout", ["current", "community"])
def test_backup_round_trips_every_row_for_both_langchain_layouts(empty_db, backup_root, layout):
    fill_store(empty_db, layout=layout, embeddings=200)
    result = run_backup(BackupRequest(dsn=empty_db, root=backup_root))
    load_set_into_schema(empty_db, result, "restored")
    for table in STORE_TABLES:
        original = rows_as_text(empty_db, table)
        assert sum(original.values()) == result.manifest.tables[table].rows
        assert rows_as_text(empty_db, table, schema="restored") == original


def test_backup_keeps_null_apart_from_empty_string_and_hard_text(store_db, backup_root):
    result = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    load_set_into_schema(store_db, result, "restored")
    restored = execute(store_db, "SELECT document FROM restored.langchain_pg_embedding")
    documents = [row[0] for row in restored]
    assert None in documents and "" in documents
    assert "高速公路服务区的营业收入统计，按月汇总。" in documents
    assert "line one\nline two\r\nline three" in documents
    assert any("\\N" in (doc or "") for doc in documents)
    null_metadata = execute(store_db, "SELECT count(*) FROM restored.langchain_pg_embedding WHERE cmetadata IS NULL")
    assert null_metadata[0][0] == execute(store_db, "SELECT count(*) FROM langchain_pg_embedding WHERE cmetadata IS NULL")[0][0] > 0


def test_backup_files_are_plain_copy_csv_with_catalog_columns(empty_db, backup_root):
    fill_store(empty_db, layout="community", embeddings=20)
    result = run_backup(BackupRequest(dsn=empty_db, root=backup_root))
    path = result.paths["langchain_pg_embedding"]
    header = header_of(result.folder, path.name)
    assert header == ["collection_id", "embedding", "document", "cmetadata", "custom_id", "uuid"]
    with open(path, newline="", encoding="utf-8") as handle:
        first = next(row for row in csv.DictReader(handle))
    assert first["embedding"].startswith("[") and first["embedding"].count(",") == 383


def test_manifest_records_counts_sizes_hashes_types_and_no_password(store_db, backup_root):
    result = run_backup(BackupRequest(dsn=store_db, root=backup_root, task_id="manual_20250720_121007"))
    assert result.folder.path == (backup_root / "manual_20250720_121007" / "vector_bak").resolve()
    manifest_path = result.folder.path / f"vector_backup_{result.timestamp}.json"
    data = json.loads(manifest_path.read_text())
    assert data["format_version"] == 1 and data["consistent_snapshot"] is True
    assert data["pgvector_version"] and data["server_version"].startswith(("1", "2"))
    assert set(data["source"]) == {"host", "port", "database", "user"}
    for table in STORE_TABLES:
        entry = data["tables"][table]
        path = result.folder.path / entry["file"]
        assert entry["bytes"] == path.stat().st_size
        assert entry["sha256"] == sha256_of_file(path)
        assert entry["rows"] == execute(store_db, f"SELECT count(*) FROM {table}")[0][0]
    types = {c["name"]: c["type"] for c in data["tables"]["langchain_pg_embedding"]["columns"]}
    assert types["embedding"] == "vector(384)" and types["cmetadata"] == "jsonb"


def test_log_appends_a_seed_format_block_per_set(store_db, backup_root):
    first = run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp="20250101_010101"))
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp="20250101_010102"))
    log = (first.folder.path / "vector_backup_log.txt").read_text(encoding="utf-8")
    assert log.count("=== Vector Table Backup Log ===") == 2
    assert "Backup Time: 2025-01-01 01:01:01" in log
    rows = first.manifest.tables["langchain_pg_embedding"].rows
    assert f"✓ langchain_pg_embedding: {rows:,} rows -> langchain_pg_embedding_20250101_010101.csv (" in log
    assert "Truncate Status:\n- Not performed" in log


def test_a_generated_column_is_left_out_of_the_files_recorded_in_the_manifest_and_recomputed_on_restore(
    store_db, backup_root
):
    execute(
        store_db,
        "ALTER TABLE langchain_pg_embedding ADD COLUMN search tsvector "
        "GENERATED ALWAYS AS (to_tsvector('simple', coalesce(document, ''))) STORED",
    )
    before = tables_now(store_db)

    result = run_backup(BackupRequest(dsn=store_db, root=backup_root))

    entry = result.manifest.tables["langchain_pg_embedding"]
    (generated,) = entry.generated_columns
    assert generated.name == "search" and generated.type == "tsvector" and "to_tsvector" in generated.expression
    assert "search" not in header_of(result.folder, result.paths["langchain_pg_embedding"].name)
    assert "search" not in [column.name for column in entry.columns]
    execute(store_db, "DELETE FROM langchain_pg_embedding")
    run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=result.timestamp, truncate_before_restore=True))
    assert tables_now(store_db) == before
