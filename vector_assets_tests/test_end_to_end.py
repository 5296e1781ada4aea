"""End to end: the stack as ``make dev`` serves it, driven through GraphQL as the UI drives it.

One ``vector-assets dev`` (embedded PostgreSQL with pgvector, demo store, dagster-webserver,
dagster-daemon, code server) is started for the module. The tests run in file order and end
by stopping it with Ctrl-C and looking for anything left behind.
"""

import hashlib
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
import yaml
from dagster_graphql import DagsterGraphQLClientError

from vector_assets.core.sets.naming import BACKUP_FOLDER_NAME, csv_file_name
from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE
from vector_assets_tests.support.database import STORE_TABLES
from vector_assets.dev.demo import DEMO_EMBEDDINGS, write_legacy_set
from vector_assets_tests.support.dagster import DEFAULT_KEYS
from vector_assets_tests.support.database import execute, rows_as_text
from vector_assets_tests.support.stack import (
    REPO_ROOT,
    RUN_EVENTS_QUERY,
    DevStack,
    StepWindow,
    dev_stack,
    leftover_processes,
    stop_dev_stack,
)

VECTOR_TABLES_POOL = DEFAULT_KEYS.pool  # the default store's

pytestmark = pytest.mark.e2e

SENSOR_NAME = "vector_bak_sensor"
SENSOR_INTERVAL_S = 5
SENSOR_TIMEOUT_S = 120
LEGACY_TASK_ID = "task_20250101_000000"
LEGACY_TIMESTAMP = "20250101_000000"
LEGACY_PATH = f"{LEGACY_TASK_ID}/{BACKUP_FOLDER_NAME}"
LEGACY_DROPPED_ROWS = 400
LEGACY_DOCUMENT = 'restored, "exactly"\nas the legacy set holds it'
EMBEDDING_BACKUP = f"{EMBEDDING_TABLE}_backup"
QUEUE_HOLD_S = 15  # three rounds of the run queue, which dequeues every 5 s


@dataclass(frozen=True)
class LegacySet:
    """A set as the earlier tooling writes it, holding a state the live tables no longer have."""

    folder: Path
    rows: dict[str, Counter]  # every row as Postgres prints a record, per table


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    with dev_stack(extra_env={"VECTOR_ASSETS_SENSOR_INTERVAL": str(SENSOR_INTERVAL_S)}) as running:
        yield running


@pytest.fixture(scope="module")
def legacy_set(stack: DevStack) -> LegacySet:
    """Write ``task_20250101_000000/vector_bak`` from a changed state, then roll the change back."""
    folder = stack.root / LEGACY_TASK_ID / BACKUP_FOLDER_NAME
    conn = psycopg2.connect(stack.vectors_dsn())
    try:
        with conn.cursor() as cursor:
            cursor.execute("DELETE FROM langchain_pg_embedding WHERE id IN "
                           "(SELECT id FROM langchain_pg_embedding ORDER BY id LIMIT %s)", (LEGACY_DROPPED_ROWS,))
            cursor.execute("UPDATE langchain_pg_embedding SET document = %s WHERE id = "
                           "(SELECT min(id) FROM langchain_pg_embedding)", (LEGACY_DOCUMENT,))
            rows = {table: _rows_in_transaction(cursor, table) for table in STORE_TABLES}
        write_legacy_set(conn, folder, LEGACY_TIMESTAMP)
    finally:
        conn.rollback()
        conn.close()
    return LegacySet(folder=folder, rows=rows)


def _rows_in_transaction(cursor: psycopg2.extensions.cursor, table: str) -> Counter:
    cursor.execute(f"SELECT t::text FROM {table} AS t")  # table is one of STORE_TABLES
    return Counter(row[0] for row in cursor.fetchall())


def live_rows(stack: DevStack) -> dict[str, Counter]:
    return {table: rows_as_text(stack.vectors_dsn(), table) for table in STORE_TABLES}


REPLACE_CONFIG = {"ops": {"restore_from_backup_set": {"config": {"truncate_before_restore": True, "dry_run": False}}}}
TRUNCATE_CONFIG = {"ops": {"truncate_after_verified_backup": {"config": {"dry_run": False}}}}


def test_backup_launched_through_graphql_registers_a_partition_with_its_metadata(stack: DevStack) -> None:
    keys_before = set(stack.partition_keys(EMBEDDING_BACKUP))
    run_id = stack.launch("backup_vector_tables")
    stack.wait_for_run(run_id)

    # The sensor may register the demo's legacy set meanwhile; the run's tag names its own set.
    key = stack.run_tags(run_id)["vector_assets/set"]
    assert key in set(stack.partition_keys(EMBEDDING_BACKUP)) - keys_before
    folder = stack.root / BACKUP_FOLDER_NAME
    manifest = json.loads((folder / f"vector_backup_{key}.json").read_text())
    for table in STORE_TABLES:
        metadata = stack.latest_metadata(f"{table}_backup", key)
        assert metadata is not None, f"no materialization of {table}_backup for partition {key}"
        csv_path = folder / csv_file_name(table, key)
        ((db_rows,),) = execute(stack.vectors_dsn(), f"SELECT count(*) FROM {table}")
        assert metadata["path"] == str(csv_path)
        assert metadata["rows"] == db_rows == manifest["tables"][table]["rows"]
        assert metadata["sha256"] == hashlib.sha256(csv_path.read_bytes()).hexdigest()
        assert metadata["sha256"] == manifest["tables"][table]["sha256"]
        assert metadata["consistent_snapshot"] is True
    assert metadata["rows"] == DEMO_EMBEDDINGS  # the loop ends on the embedding table


def test_sensor_in_the_daemon_registers_a_legacy_set_dropped_into_the_root(
    stack: DevStack, legacy_set: LegacySet
) -> None:
    def registered() -> dict | None:
        if LEGACY_TIMESTAMP not in stack.partition_keys(EMBEDDING_BACKUP):
            return None
        return stack.latest_metadata(EMBEDDING_BACKUP, LEGACY_TIMESTAMP)

    try:
        metadata = stack.wait_for(f"{SENSOR_NAME} to register partition {LEGACY_TIMESTAMP}", registered, SENSOR_TIMEOUT_S)
    except AssertionError as error:
        raise AssertionError(f"{error}\n--- sensor ---\n{json.dumps(stack.sensor_state(SENSOR_NAME), indent=1)}") from None
    sensor = stack.sensor_state(SENSOR_NAME)
    assert sensor["sensorState"]["status"] == "RUNNING", "the sensor must be on by default"
    assert metadata["legacy"] is True
    assert metadata["rows"] == sum(legacy_set.rows[EMBEDDING_TABLE].values()) == DEMO_EMBEDDINGS - LEGACY_DROPPED_ROWS
    assert metadata["path"] == str(legacy_set.folder / csv_file_name(EMBEDDING_TABLE, LEGACY_TIMESTAMP))


def test_restore_with_truncate_makes_the_tables_equal_to_the_legacy_set(stack: DevStack, legacy_set: LegacySet) -> None:
    assert live_rows(stack) != legacy_set.rows, "the live tables must differ from the set for the restore to show"
    run_id = stack.launch("restore_vector_tables", REPLACE_CONFIG, partition=LEGACY_TIMESTAMP)
    stack.wait_for_run(run_id)

    restored = live_rows(stack)
    assert restored[COLLECTION_TABLE] == legacy_set.rows[COLLECTION_TABLE]
    assert restored[EMBEDDING_TABLE] == legacy_set.rows[EMBEDDING_TABLE]


def test_truncate_and_restore_launched_together_never_run_their_ops_at_the_same_time(
    stack: DevStack, legacy_set: LegacySet
) -> None:
    """The test holds a lock on the embedding table, so the first op to start stays in its step.

    While it does, the other op must not start: its step waits for the pool's one slot (or its
    run waits in the queue). Without the pool it would start and block on the same lock, and
    the step windows would overlap. Launch timing alone would not show the difference: each
    op takes under a second, far less than a run takes to start.
    """
    run_ids: list[str] = []
    holder = psycopg2.connect(stack.vectors_dsn())
    try:
        with holder.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {EMBEDDING_TABLE} IN ACCESS EXCLUSIVE MODE")
        run_ids += [stack.launch("truncate_vector_tables", TRUNCATE_CONFIG),
                    stack.launch("restore_vector_tables", REPLACE_CONFIG, partition=LEGACY_TIMESTAMP)]
        stack.wait_for("one op to start and block on the held lock", lambda: started_steps(stack, run_ids), 120)
        queued_until = time.monotonic() + QUEUE_HOLD_S
        evidence = stack.wait_for(
            f"the other op to wait for pool {VECTOR_TABLES_POOL}", lambda: waiting_evidence(stack, run_ids, queued_until), 120
        )
        assert evidence != "both started", (
            f"both ops started while one held pool {VECTOR_TABLES_POOL}: {started_steps(stack, run_ids)}\n"
            f"{stack.pool(VECTOR_TABLES_POOL)}"
        )
    finally:
        holder.rollback()
        holder.close()

    for run_id in run_ids:
        stack.wait_for_run(run_id)
    truncate_step, restore_step = (stack.step_windows(run_id)[0] for run_id in run_ids)
    assert not truncate_step.overlaps(restore_step), (
        f"ops overlapped in pool {VECTOR_TABLES_POOL}: {truncate_step} vs {restore_step} (waiting: {evidence})"
    )
    assert_tables_match_the_order(stack, legacy_set, truncate_step, restore_step)


def started_steps(stack: DevStack, run_ids: list[str]) -> list[StepWindow]:
    return [step for run_id in run_ids for step in stack.step_windows(run_id) if step.start is not None]


def waiting_evidence(stack: DevStack, run_ids: list[str], queued_until: float) -> str | None:
    """How the op that has not started is kept waiting, once that is clear; None until then."""
    started = {step.run_id for step in started_steps(stack, run_ids)}
    if len(started) == len(run_ids):
        return "both started"
    (waiting,) = set(run_ids) - started
    pool = stack.pool(VECTOR_TABLES_POOL)
    if any(step["runId"] == waiting and step["assignedTimestamp"] is None for step in pool["pendingSteps"]):
        return f"its step was pending in pool {VECTOR_TABLES_POOL}"
    if stack.run_status(waiting) == "QUEUED" and time.monotonic() >= queued_until:
        return "its run stayed queued"
    return None


def assert_tables_match_the_order(
    stack: DevStack, legacy_set: LegacySet, truncate_step: StepWindow, restore_step: StepWindow
) -> None:
    """Whichever op ran last decides the end state; anything else would mean they interleaved."""
    final = live_rows(stack)
    assert final[COLLECTION_TABLE] == legacy_set.rows[COLLECTION_TABLE]
    if truncate_step.start < restore_step.start:
        assert final[EMBEDDING_TABLE] == legacy_set.rows[EMBEDDING_TABLE], "restore ran last: the legacy rows"
    else:
        assert final[EMBEDDING_TABLE] == Counter(), "truncate ran last: no embeddings"


def test_a_dsn_typed_as_the_target_or_an_unknown_table_is_invalid_config_and_no_run_stores_it(
    stack: DevStack, legacy_set: LegacySet
) -> None:
    secret = f"e2e-secret-{uuid.uuid4().hex[:12]}"
    mistakes = ({"target": f"postgresql://backup_user:{secret}@db.internal:5432/rag"}, {"tables": [f"foo_{secret}"]})
    for config in mistakes:
        with pytest.raises(DagsterGraphQLClientError, match="RunConfigValidationInvalid"):
            stack.launch("restore_vector_tables", {"ops": {"restore_from_backup_set": {"config": config}}},
                         partition=LEGACY_TIMESTAMP)
    storage = stack.dagster_storage_dsn()
    for table, column in (("runs", "run_body"), ("event_logs", "event")):
        assert execute(storage, f"SELECT count(*) FROM {table} WHERE {column} LIKE %s", (f"%{secret}%",)) == [(0,)]


def readme_restore_example() -> tuple[str, dict]:
    """The partition and the config of the README's restore example, exactly as it is written there."""
    text = (REPO_ROOT / "README.md").read_text()
    block = text.split("<!-- restore example -->", 1)[1]
    partition = re.search(r"partition `([^`]+)`", block).group(1)
    config = yaml.safe_load(block.split("```yaml", 1)[1].split("```", 1)[0])
    return partition, config


def test_the_readme_restore_example_works_as_written_and_names_its_safety_set(stack: DevStack) -> None:
    partition, config = readme_restore_example()
    run_id = stack.launch("restore_vector_tables", config, partition=partition)
    stack.wait_for_run(run_id)
    keys = stack.partition_keys(EMBEDDING_BACKUP)
    events = stack.graphql(RUN_EVENTS_QUERY, {"runId": run_id})["logsForRun"]["events"]
    undo = [e["message"] for e in events if "To undo: vector-assets restore" in (e.get("message") or "")]
    assert undo, "the run log must name the safety set and the undo"
    safety_key = re.search(r"pre_restore set (\S+)\.", undo[0]).group(1)
    assert safety_key in keys


def test_the_terminal_shows_a_short_banner_and_no_run_events_or_false_warnings(stack: DevStack) -> None:
    stack.wait_for("runs in progress to finish", lambda: not stack.runs_in_progress(), 120)
    log = stack.log_path.read_text(errors="replace")

    assert f"  UI        http://127.0.0.1:{stack.port}" in log
    assert f"  root      {stack.root}" in log and "  sensor    will register " in log
    assert " - DEBUG - " not in log and "STEP_START" not in log and "RUN_SUCCESS" not in log
    assert "will not be used" not in log


def test_ctrl_c_stops_dagster_and_postgres_leaving_no_process_behind(stack: DevStack) -> None:
    stack.wait_for("runs in progress to finish", lambda: not stack.runs_in_progress(), 120)
    stack.remember_processes()
    commands = "\n".join(stack.seen.values())
    for expected in ("dagster_webserver", "dagster._daemon", "code-server", "api grpc", f"postgres -D {stack.pgdata}"):
        assert expected in commands, f"the stray check must watch a process matching {expected!r}:\n{commands}"

    escalations = stop_dev_stack(stack)

    assert escalations == [], f"{escalations}\n--- log tail ---\n{stack.log_tail()}"
    leftovers = leftover_processes(stack)
    assert leftovers == [], "still running after Ctrl-C:\n" + "\n".join(
        f"{process.pid}: {stack.seen.get(process.pid, '?')[:160]}" for process in leftovers
    )
    assert not (stack.pgdata / "postmaster.pid").exists(), "the embedded server was not shut down"
    assert stack.process.returncode == 0, stack.log_tail()
    log = stack.log_path.read_text(errors="replace")
    assert "Failed postgres command" not in log and "killing it instead" not in log, stack.log_tail()
    assert "Aborted!" not in log, stack.log_tail()
