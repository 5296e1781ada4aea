"""Fault machinery: a fault that strikes while an operation waits on a lock the test holds,
restores in a child process, locks, passwords in DSNs, and running the jobs under faults."""

import json
import secrets
import string
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg2
from psycopg2 import sql

from vector_assets.core.ops.restore import RestoreRequest
from vector_assets.core.pg.connection import describe_dsn
from vector_assets_tests.support.database import STORE_TABLES
from vector_assets_tests.support.dagster import run_job as run_dagster_job
from vector_assets_tests.support.database import execute

REPO = Path(__file__).resolve().parents[2]
LOCK_WAIT_SECONDS = 30
HOLD_KEY = 7_350_001  # advisory lock the test holds to park a restore inside its COPY


def random_password() -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(24))


PASSWORD = random_password()


# --- helpers: tables, DSNs, locks, and a fault that strikes while the operation waits -----


def index_names(dsn: str) -> list[str]:
    rows = execute(dsn, "SELECT indexname FROM pg_indexes WHERE tablename = ANY(%s) ORDER BY 1", (list(STORE_TABLES),))
    return [name for (name,) in rows]


def change_the_store(dsn: str) -> None:
    execute(dsn, "DELETE FROM langchain_pg_embedding WHERE id IN (SELECT id FROM langchain_pg_embedding ORDER BY id LIMIT 10)")
    execute(dsn, "UPDATE langchain_pg_embedding SET document = 'changed' WHERE id = (SELECT min(id) FROM langchain_pg_embedding)")


def with_password(dsn: str, password: str, user: str | None = None) -> str:
    params = psycopg2.extensions.parse_dsn(dsn)
    params["password"] = password
    if user:
        params["user"] = user
    return psycopg2.extensions.make_dsn(**params)


def url_with_password(dsn: str, user: str, password: str) -> str:
    """The same database as a URL with the password in it (host and port as query parameters)."""
    params = psycopg2.extensions.parse_dsn(dsn)
    query = "&".join(f"{key}={quote(params[key], safe='')}" for key in ("host", "port") if key in params)
    return f"postgresql://{user}:{password}@/{params['dbname']}" + (f"?{query}" if query else "")


# psycopg2 waits for the end of a COPY FROM holding the GIL, so a restore parked on a lock would
# freeze a fault thread in the same process. The faulted restore therefore runs in a child
# process (as a Dagster op does), and the test process stays free to inject the fault.
RESTORE_CHILD = """
import json, sys
from vector_assets.core.errors import VectorAssetsError
from vector_assets.core.ops.restore import RestoreRequest, run_restore
try:
    run_restore(RestoreRequest(**json.loads(sys.argv[1])))
    print(json.dumps({"error_type": None}))
except VectorAssetsError as error:
    print(json.dumps({"error_type": type(error).__name__, "retryable": error.retryable, "message": str(error)}))
"""


class ChildRestoreError(Exception):
    """What a restore in a child process raised: its type name, retryability and message."""

    def __init__(self, outcome: dict):
        super().__init__(outcome.get("message", ""))
        self.error_type, self.retryable = outcome["error_type"], outcome.get("retryable")


def restore_in_child(request: RestoreRequest) -> ChildRestoreError | None:
    arguments = {
        "target_dsn": request.target_dsn, "root": str(request.root), "timestamp": request.timestamp,
        "truncate_before_restore": request.truncate_before_restore, "fire_triggers": request.fire_triggers,
    }
    done = subprocess.run(
        [sys.executable, "-c", RESTORE_CHILD, json.dumps(arguments)],
        cwd=REPO, capture_output=True, text=True, timeout=LOCK_WAIT_SECONDS * 4,
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    return ChildRestoreError(outcome) if outcome["error_type"] else None


def assert_names_target_without_password(error: Exception, dsn: str) -> None:
    target = describe_dsn(dsn)
    assert f"'{target.database}'" in str(error) and target.host in str(error), str(error)
    assert PASSWORD not in str(error)


@contextmanager
def locked(dsn: str, table: str, mode: str) -> Iterator[psycopg2.extensions.connection]:
    """Hold a table lock in an open transaction, as a long-running reader or writer would."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql.SQL("LOCK TABLE {} IN " + mode + " MODE").format(sql.Identifier(table)))
        yield conn
    finally:
        conn.close()


def advisory_lock(dsn: str) -> psycopg2.extensions.connection:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", (HOLD_KEY,))
    return conn


def hold_embedding_inserts(dsn: str) -> None:
    """A row trigger that waits for the test's advisory lock, so a replace restore parks inside
    the embedding COPY after both tables were truncated and the collections reloaded."""
    execute(
        dsn,
        "CREATE FUNCTION wait_for_fault_test() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" BEGIN PERFORM pg_advisory_xact_lock_shared({HOLD_KEY}); RETURN NEW; END $$;"
        " CREATE TRIGGER wait_for_fault_test BEFORE INSERT ON langchain_pg_embedding"
        " FOR EACH ROW EXECUTE FUNCTION wait_for_fault_test();",
    )


def backend_waiting_on_lock(dsn: str, statement: str, still_running: Callable[[], bool]) -> int:
    """The pid of our backend (application_name vector_assets) once it waits on a lock in ``statement``."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while time.monotonic() < deadline:
        rows = execute(
            dsn,
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = 'vector_assets' AND wait_event_type = 'Lock' AND query LIKE %s",
            (statement + "%",),
        )
        if rows:
            return rows[0][0]
        if not still_running():
            raise AssertionError(f"the operation ended before it waited on a lock in {statement!r}")
        time.sleep(0.05)
    raise AssertionError(f"no vector_assets backend waited on a lock in {statement!r} within {LOCK_WAIT_SECONDS}s")


class Fault(threading.Thread):
    """Once the operation waits on a lock in ``statement``: inject the fault, then always release
    the lock, so a fault that misses never leaves the operation hanging."""

    def __init__(self, dsn: str, statement: str, inject: Callable[[int], object], release: Callable[[], object]):
        super().__init__(daemon=True)
        self.dsn, self.statement, self.inject, self.release = dsn, statement, inject, release
        self.operation_done = threading.Event()
        self.injected = False
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            pid = backend_waiting_on_lock(self.dsn, self.statement, lambda: not self.operation_done.is_set())
            self.inject(pid)
            self.injected = True
        except BaseException as error:  # reported in the test's thread
            self.error = error
        finally:
            self.release()


@contextmanager
def fault_while_waiting(
    dsn: str, statement: str, inject: Callable[[int], object], release: Callable[[], object]
) -> Iterator[Fault]:
    fault = Fault(dsn, statement, inject, release)
    fault.start()
    try:
        yield fault
    finally:
        fault.operation_done.set()
        fault.join(LOCK_WAIT_SECONDS + 30)
    if fault.error is not None:
        raise fault.error
    assert fault.injected


def run_job(instance, job: tuple[str, str], config: dict | None = None, **kwargs):
    """A real run: the fault tests break real restores and truncates, never their dry runs."""
    name, op = job
    if name in ("restore_vector_tables", "truncate_vector_tables"):
        config = {"dry_run": False, **(config or {})}
    return run_dagster_job(instance, name, op, config, **kwargs)


def failure_message(result, job: tuple[str, str]) -> str:
    assert not result.success
    return result.failure_data_for_node(job[1]).error.message
