"""Tables whose rows a COPY of them would not hold: a table with inheritance children (COPY
leaves the children's rows out, while count(*) sees them and TRUNCATE empties them) and a
partitioned table (COPY refuses it). Every operation that writes a set stops before anything
changes, in one line naming the tables; nothing is lost and nothing is half written (the guarded
truncate's case is in test_truncate.py)."""

from __future__ import annotations

import pytest

from vector_assets.core.errors import SafetyBackupError, TableShapeError
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets.core.stores import Store, StoreTable, TableRole
from vector_assets_tests.support.database import execute
from vector_assets_tests.support.files import folder_snapshot

CHILD = """
CREATE TABLE archived_embeddings () INHERITS (langchain_pg_embedding);
INSERT INTO archived_embeddings SELECT id || '-archived', collection_id, embedding, document, cmetadata
  FROM langchain_pg_embedding ORDER BY id LIMIT 5;
"""


def table_state(dsn: str) -> list[tuple]:
    return execute(dsn, """
        SELECT 'all', count(*), md5(string_agg(id, ',' ORDER BY id)) FROM langchain_pg_embedding
        UNION ALL SELECT 'only', count(*), md5(string_agg(id, ',' ORDER BY id)) FROM ONLY langchain_pg_embedding
        UNION ALL SELECT 'child', count(*), md5(string_agg(id, ',' ORDER BY id)) FROM archived_embeddings""")


def test_a_backup_of_a_table_with_child_tables_is_refused_in_one_line_before_any_file(store_db, backup_root):
    execute(store_db, CHILD)
    before, files = table_state(store_db), folder_snapshot(backup_root)
    with pytest.raises(TableShapeError) as refused:
        run_backup(BackupRequest(dsn=store_db, root=backup_root))
    message = str(refused.value)
    assert "\n" not in message and "langchain_pg_embedding has child tables (archived_embeddings)" in message
    assert table_state(store_db) == before and folder_snapshot(backup_root) == files


def test_a_restore_over_it_is_refused_by_its_safety_set_and_changes_nothing(store_db, backup_root):
    made = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    execute(store_db, CHILD)
    before, files = table_state(store_db), folder_snapshot(backup_root)
    with pytest.raises(SafetyBackupError, match=r"nothing was restored: langchain_pg_embedding has child tables \(archived_embeddings\)"):
        run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=made.timestamp))
    assert table_state(store_db) == before and folder_snapshot(backup_root) == files


def test_a_partitioned_table_is_refused_naming_its_partitions(empty_db, backup_root):
    execute(empty_db, """
        CREATE EXTENSION IF NOT EXISTS vector;
        CREATE TABLE chunks (tenant int NOT NULL, id bigint NOT NULL, embedding vector(3), PRIMARY KEY (tenant, id))
          PARTITION BY LIST (tenant);
        CREATE TABLE chunks_1 PARTITION OF chunks FOR VALUES IN (1);
        INSERT INTO chunks VALUES (1, 1, '[1,2,3]');""")
    store = Store(name="chunks", layout="generic", tables=(StoreTable("chunks", TableRole.VECTORS),))
    files = folder_snapshot(backup_root)
    with pytest.raises(TableShapeError) as refused:
        run_backup(BackupRequest(dsn=empty_db, root=backup_root, store=store))
    assert str(refused.value) == ("chunks is a partitioned table: a backup copies plain tables; "
                                  "declare its partitions (chunks_1) as the store's tables")
    assert folder_snapshot(backup_root) == files
    assert execute(empty_db, "SELECT count(*) FROM chunks") == [(1,)]
