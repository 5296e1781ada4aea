"""A backup that fails part-way leaves no complete-looking file and no manifest."""

import os

import psycopg2
import pytest

from vector_assets.core.errors import BackupWriteError, DatabaseUnreachableError
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.sets.catalog import scan_root
from vector_assets_tests.support.database import execute
from vector_assets_tests.support.faults import fault_while_waiting
from vector_assets_tests.support.files import folder_snapshot

TIMESTAMP = "20250301_120000"


@pytest.mark.faults
def test_connection_killed_mid_backup_leaves_no_set(store_db, backup_root):
    """The collection file is written, then the embedding COPY is killed while it waits.

    The fault runs on a thread that always releases the lock, and its failure (no backup ever
    waited) is raised here: a fault that misses fails the test instead of leaving it waiting."""
    blocker = psycopg2.connect(store_db)
    with blocker.cursor() as cursor:
        cursor.execute("LOCK TABLE langchain_pg_embedding IN ACCESS EXCLUSIVE MODE")
    terminate = lambda pid: execute(store_db, "SELECT pg_terminate_backend(%s)", (pid,))  # noqa: E731
    try:
        with pytest.raises(DatabaseUnreachableError, match="langchain_pg_embedding") as raised:
            with fault_while_waiting(store_db, 'COPY "langchain_pg_embedding"', terminate, blocker.close):
                run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TIMESTAMP))
    finally:
        blocker.close()
    assert raised.value.retryable
    assert folder_snapshot(backup_root) == {}
    assert scan_root(backup_root) == []
    # The next backup works.
    assert run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TIMESTAMP)).manifest.tables


def test_disk_write_failure_leaves_no_set_and_says_disk_full(store_db, backup_root):
    folder = backup_root / "vector_bak"
    folder.mkdir()
    # Writes to /dev/full fail with ENOSPC, as on a full disk.
    os.symlink("/dev/full", folder / f"langchain_pg_embedding_{TIMESTAMP}.csv.tmp")
    with pytest.raises(BackupWriteError, match="disk full while writing .*langchain_pg_embedding_20250301_120000"):
        run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TIMESTAMP))
    assert sorted(p.name for p in folder.iterdir()) == []
    assert scan_root(backup_root) == []


def test_unreachable_database_is_retryable_and_names_it_without_password(backup_root):
    dsn = "host=127.0.0.1 port=1 dbname=vectors user=postgres password=hunter2-secret connect_timeout=2"
    with pytest.raises(DatabaseUnreachableError) as raised:
        run_backup(BackupRequest(dsn=dsn, root=backup_root))
    assert "vectors" in str(raised.value) and "127.0.0.1:1" in str(raised.value)
    assert "hunter2" not in str(raised.value)
    assert raised.value.retryable
