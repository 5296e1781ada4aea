"""A set that cannot be read is the storage's fault, never the database's.

A restore reading a set from an object store whose download breaks part-way through a file
rolls back, and says so as an object-store error naming the bucket and key, retryable as the
broken connection is; a file on disk that fails to read is a file error naming the file.
Object-store messages keep their cause on one line and name the provider's own endpoint
setting; no secret appears in them.
"""

from __future__ import annotations

import base64
import socket

import pytest

from vector_assets.core.errors import (
    BackupReadError,
    ObjectStoreError,
    ObjectStoreUnreachableError,
    StatementCancelledError,
)
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets.core.sets.catalog import scan_root
from vector_assets_tests.support.database import execute, tables_now
from vector_assets_tests.support.faults import (
    advisory_lock,
    fault_while_waiting,
    hold_embedding_inserts,
    restore_in_child,
)
from vector_assets_tests.support.http_proxy import CuttingProxy
from vector_assets_tests.test_object_store_faults import grow_embeddings

TS = "20250301_020000"
EMBEDDING_FILE = f"langchain_pg_embedding_{TS}.csv"
AZURE_KEY = base64.b64encode(b"Azure-Secret-Hunter2x-SeaLion9!!").decode()
AZURE_SAS = "sv=2022-11-02&ss=b&srt=co&sp=rl&sig=SECRETSIG%2Bhunter2"


@pytest.fixture
def cutting_proxy(s3_server, s3_root, monkeypatch):
    """The product talks to the S3 server through a proxy that can break a download."""
    proxy = CuttingProxy(s3_server.endpoint).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    yield proxy
    proxy.stop()


@pytest.mark.faults
def test_a_download_cut_mid_file_is_the_object_stores_fault_and_the_restore_rolls_back(
    cutting_proxy, s3_root, store_db
):
    grow_embeddings(store_db, 800)  # a file of a few MB: several chunks of a COPY
    run_backup(BackupRequest(dsn=store_db, root=s3_root.url, timestamp=TS))
    size = len(s3_root.read("vector_bak", EMBEDDING_FILE))
    execute(store_db, "DELETE FROM langchain_pg_embedding WHERE id IN (SELECT id FROM langchain_pg_embedding LIMIT 10)")
    before = tables_now(store_db)
    cut = cutting_proxy.cut_downloads(EMBEDDING_FILE, after_bytes=size * 3 // 4)

    with pytest.raises(ObjectStoreError) as raised:
        run_restore(RestoreRequest(target_dsn=store_db, root=s3_root.url, timestamp=TS, truncate_before_restore=True))

    error = raised.value
    message = str(error)
    assert cut.cuts >= 1, "the proxy never cut the download"
    assert isinstance(error, ObjectStoreUnreachableError) and error.retryable, message
    assert f"{s3_root.bucket}/rag-backups/vector_bak/{EMBEDDING_FILE}" in message
    assert "database" not in message and "on the target" not in message, message
    assert "AWS_ENDPOINT_URL" in message and "\n" not in message, message
    assert s3_root.s3.secret_key not in message
    assert tables_now(store_db) == before
    assert [found.timestamp for found in scan_root(s3_root.url)] == [TS]  # no safety set left behind

    cutting_proxy.cut = None  # the store is back: the same restore now succeeds
    run_restore(RestoreRequest(target_dsn=store_db, root=s3_root.url, timestamp=TS, truncate_before_restore=True))
    assert tables_now(store_db) != before


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("s3_endpoint_set", [True, False], ids=["with-an-s3-endpoint", "azure-only"])
def test_an_azure_error_keeps_its_cause_and_names_the_azure_endpoint_setting(s3_server, monkeypatch, s3_endpoint_set):
    """A long error (well over 200 characters) still ends in its cause, and the endpoint named
    is Azure's own, not the S3 one that may be set too. An http:// endpoint in Azure's own
    setting is allowed (obstore refuses one unless told, with a bare "builder error")."""
    endpoint = f"http://127.0.0.1:{closed_port()}/devstoreaccount1"
    if s3_endpoint_set:
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    else:
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "devstoreaccount1")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", AZURE_KEY)
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", AZURE_SAS)
    monkeypatch.setenv("AZURE_STORAGE_ENDPOINT", endpoint)
    root = "az://backups-container-with-a-long-name/some/deep/prefix/for/the/vector/sets"

    with pytest.raises(ObjectStoreUnreachableError) as raised:
        scan_root(root)

    message = str(raised.value)
    assert raised.value.retryable
    assert message.startswith(f"cannot list {root}/: ") and len(message) > 200, message
    assert f"endpoint {endpoint} from AZURE_STORAGE_ENDPOINT" in message, message
    assert message.endswith("HTTP error: error sending request (Connection refused), after 10 retries"), message
    assert "AWS_ENDPOINT_URL" not in message and s3_server.endpoint not in message, message
    assert "\n" not in message and AZURE_KEY not in message and "SECRETSIG" not in message


@pytest.mark.faults
def test_a_disk_read_error_mid_copy_is_the_files_fault(store_db, backup_root):
    """Reading /proc/self/mem at offset 0 fails with EIO, as a failing disk does. In the binary
    format the restore reads nothing of the file before its COPY, so the COPY meets the error."""
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS, format="pgcopy"))
    data_file = backup_root / "vector_bak" / f"langchain_pg_embedding_{TS}.pgcopy"
    data_file.unlink()
    data_file.symlink_to("/proc/self/mem")
    execute(store_db, "DELETE FROM langchain_pg_embedding WHERE id IN (SELECT id FROM langchain_pg_embedding LIMIT 10)")
    before = tables_now(store_db)

    with pytest.raises(BackupReadError) as raised:
        run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=TS, truncate_before_restore=True))

    assert str(raised.value) == f"cannot read {data_file}: Input/output error"
    assert not raised.value.retryable
    assert tables_now(store_db) == before
    assert [found.timestamp for found in scan_root(backup_root)] == [TS]  # no safety set left behind


@pytest.mark.faults
def test_a_cancelled_copy_is_not_a_lost_connection(store_db, backup_root):
    """An administrator's cancel request stops the COPY; the connection stays open, so the
    error says the statement was cancelled (retryable), not that the connection was lost."""
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS))
    execute(store_db, "DELETE FROM langchain_pg_embedding WHERE id IN (SELECT id FROM langchain_pg_embedding LIMIT 10)")
    before = tables_now(store_db)
    hold_embedding_inserts(store_db)
    request = RestoreRequest(fire_triggers=True, target_dsn=store_db, root=backup_root, timestamp=TS, truncate_before_restore=True)
    holder = advisory_lock(store_db)
    cancel = lambda pid: execute(store_db, "SELECT pg_cancel_backend(%s)", (pid,))  # noqa: E731
    with fault_while_waiting(store_db, 'COPY "langchain_pg_embedding"', cancel, holder.close):
        error = restore_in_child(request)

    assert error is not None and error.error_type == StatementCancelledError.__name__, error
    assert error.retryable and "lost the database connection" not in str(error)
    assert "canceling statement due to user request" in str(error)
    assert tables_now(store_db) == before
