"""Past one machine, on this one: the README's production topology run as separate processes.

The code location is its own gRPC code server (``dagster code-server start``, referenced from a
workspace file), ``dagster-daemon`` and ``dagster-webserver`` run beside it, Dagster's storage is
a PostgreSQL database of its own, and the backup root is a bucket on the local S3 server. A
scheduled backup, the sensor's registration of a set another tool uploaded, and a restore of
that set all work, every process seeing the same sets through the object store and the same
runs through the storage.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from vector_assets.core.sets.naming import BACKUP_FOLDER_NAME, csv_file_name
from vector_assets.core.tables import EMBEDDING_TABLE
from vector_assets_tests.support.database import STORE_TABLES, execute, fill_store, fresh_database, rows_as_text
from vector_assets_tests.support.files import psql_legacy_set
from vector_assets_tests.support.stack import (
    MARKER_ENV_VAR,
    REPO_ROOT,
    VENV_BIN,
    DevStack,
    free_port,
    wait_until_serving,
)

pytestmark = pytest.mark.e2e

SCHEDULE = "vector_backup_schedule"
SCHEDULE_TIMEOUT_S = 200.0  # the cron fires every minute; the daemon and a loaded machine add their delay
SENSOR_TIMEOUT_S = 120.0
CODE_SERVER_TIMEOUT_S = 180.0
UPLOADED = "20250301_120000"
REPLACE = {"ops": {"restore_from_backup_set": {"config": {"truncate_before_restore": True, "dry_run": False}}}}
INSTANCE_STORAGE = """
storage:
  postgres:
    postgres_url:
      env: DAGSTER_PG_URL
"""


def start(name: str, command: list[str], environment: dict[str, str], workdir: Path) -> subprocess.Popen:
    with (workdir / f"{name}.log").open("wb") as log:
        return subprocess.Popen(command, cwd=workdir, env=environment, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    for process in processes:
        try:
            process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def topology(tmp_path, maintenance_dsn, s3_root) -> Iterator[tuple[DevStack, str]]:
    """Code server, daemon and webserver as three processes; Dagster's storage in PostgreSQL; the
    root on S3. Yields the stack (reached through the webserver) and the store's DSN."""
    with fresh_database(maintenance_dsn) as store_dsn, fresh_database(maintenance_dsn) as storage_dsn:
        fill_store(store_dsn, embeddings=200)
        home = tmp_path / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text() + INSTANCE_STORAGE)
        code_port, web_port = free_port(), free_port()
        (tmp_path / "workspace.yaml").write_text(
            f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {code_port}\n"
            "      location_name: vector_assets\n"
        )
        marker = uuid.uuid4().hex
        environment = {key: value for key, value in os.environ.items()
                       if not key.startswith(("DAGSTER_", "VECTOR_ASSETS_", "PYTEST_"))}
        environment.update({
            MARKER_ENV_VAR: marker, "DAGSTER_HOME": str(home),
            "DAGSTER_PG_URL": _url_of(storage_dsn),
            "VECTOR_ASSETS_PG_DSN": store_dsn, "VECTOR_ASSETS_ROOT": s3_root.url,
            "VECTOR_ASSETS_BACKUP_CRON": "* * * * *", "VECTOR_ASSETS_SENSOR_INTERVAL": "5",
        })
        processes = [
            start("code_server", [str(VENV_BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p",
                                  str(code_port), "-m", "vector_assets.definitions", "--location-name", "vector_assets"],
                  environment, tmp_path),
        ]
        wait_for_code_server(code_port, processes[0], tmp_path / "code_server.log")
        processes += [
            start("daemon", [str(VENV_BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], environment, tmp_path),
            start("webserver", [str(VENV_BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1",
                                "-p", str(web_port)], environment, tmp_path),
        ]
        stack = DevStack(workdir=tmp_path, root=tmp_path / "unused", port=web_port, process=processes[-1],
                         log_path=tmp_path / "daemon.log", marker=marker)
        try:
            wait_until_serving(stack)
            yield stack, store_dsn
        finally:
            stop(processes)
            shutil.rmtree(home, ignore_errors=True)


def wait_for_code_server(port: int, process: subprocess.Popen, log: Path) -> None:
    """The code server answers its health check (it loads the definitions first)."""
    deadline = time.monotonic() + CODE_SERVER_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the code server exited:\n{log.read_text()[-3000:]}")
        check = subprocess.run([str(VENV_BIN / "dagster"), "api", "grpc-health-check", "-p", str(port)],
                               capture_output=True, text=True)
        if check.returncode == 0:
            return
        time.sleep(2)
    raise AssertionError(f"the code server did not answer in {CODE_SERVER_TIMEOUT_S:.0f} s:\n{log.read_text()[-3000:]}")


def _url_of(dsn: str) -> str:
    """A key=value DSN as the SQLAlchemy URL dagster-postgres takes."""
    import psycopg2.extensions

    params = psycopg2.extensions.parse_dsn(dsn)
    host = params.get("host", "")
    return (f"postgresql+psycopg2://{params.get('user', '')}:{params.get('password', '')}@/"
            f"{params['dbname']}?host={host}&port={params.get('port', '5432')}")


def test_the_production_topology_backs_up_on_schedule_registers_an_uploaded_set_and_restores_it(
    topology, s3_root, tmp_path
):
    stack, store_dsn = topology

    # 1. The daemon's schedule launches a backup; the run writes its set into the bucket.
    def scheduled_run() -> dict | None:
        done = [run for run in stack.all_runs() if run["jobName"] == "backup_vector_tables" and run["status"] == "SUCCESS"]
        return next((run for run in done if stack.run_tags(run["runId"]).get("dagster/schedule_name") == SCHEDULE), None)

    run = stack.wait_for(f"{SCHEDULE} to back up", scheduled_run, SCHEDULE_TIMEOUT_S, interval=3)
    key = stack.run_tags(run["runId"])["vector_assets/set"]
    assert f"vector_backup_{key}.json" in s3_root.names(BACKUP_FOLDER_NAME)
    assert key in stack.partition_keys(f"{EMBEDDING_TABLE}_backup")

    # 2. Another tool uploads a set (the earlier scripts' two CSV files); the sensor registers it.
    local = tmp_path / "uploaded"
    execute(store_dsn, f"DELETE FROM {EMBEDDING_TABLE} WHERE id IN (SELECT id FROM {EMBEDDING_TABLE} LIMIT 25)")
    psql_legacy_set(store_dsn, local, UPLOADED)
    uploaded = {table: rows_as_text(store_dsn, table) for table in STORE_TABLES}
    for table in STORE_TABLES:
        name = csv_file_name(table, UPLOADED)
        s3_root.write(BACKUP_FOLDER_NAME, name, (local / name).read_bytes())
    stack.wait_for("the sensor to register the uploaded set",
                   lambda: UPLOADED in stack.partition_keys(f"{EMBEDDING_TABLE}_backup"), SENSOR_TIMEOUT_S, interval=3)

    # 3. The live tables change; a restore of the uploaded set, launched through the webserver and
    # run next to the daemon, reads it from the bucket and puts its rows back.
    execute(store_dsn, f"UPDATE {EMBEDDING_TABLE} SET document = 'changed'")
    restore = stack.launch("restore_vector_tables", REPLACE, partition=UPLOADED)
    assert stack.wait_for_run(restore) == "SUCCESS", stack.run_errors(restore)
    assert {table: rows_as_text(store_dsn, table) for table in STORE_TABLES} == uploaded
    safety = stack.run_tags(restore)["vector_assets/safety_set"]  # what it replaced, kept in the bucket too
    assert f"vector_backup_{safety.split('__')[0]}.json" in s3_root.names(BACKUP_FOLDER_NAME)
