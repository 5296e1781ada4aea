"""What a new user meets after `make dev`: the real `vector-assets dev` on a fresh folder.

The first screen is green and true: the demo's newest set is fresh (a backup taken at start-up,
the old legacy set kept as history), every check that ran passed, the legacy set's checksum
check is a warning that says nothing could be compared, and the Runs page holds only what
people did. The tests run in file order on one stack and end with a restart.
"""

import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from vector_assets_tests.support.database import STORE_TABLES
from vector_assets.dev.demo import LEGACY_TIMESTAMP
from vector_assets_tests.support.stack import (
    VENV_BIN,
    DevStack,
    dev_stack,
    kill_everything,
    start_dev_stack,
    stop_dev_stack,
    wait_until_serving,
)

pytestmark = pytest.mark.e2e

INTERVAL_S = 3  # both sensors
BACKUPS = [f"{table}_backup" for table in STORE_TABLES]
DOCUMENT_STORES = {"docs": "product_docs", "notes": "data_notes"}  # the documents database's stores and tables
FILE_CHECKS = ("file_present", "sha256_matches_manifest", "row_count_matches_manifest")
FRESHNESS = "freshness_check"
DRILL_CHECKS = ("restore_drill", "restore_rto")
QUALITY = "vector_data_quality"  # the demo stores hold no broken rows: a first screen with a warning is not green


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    intervals = {"VECTOR_ASSETS_SENSOR_INTERVAL": str(INTERVAL_S), "VECTOR_ASSETS_FRESHNESS_INTERVAL": str(INTERVAL_S)}
    with dev_stack(extra_env=intervals) as running:
        yield running


def startup_set(stack: DevStack, store: str = "the demo store") -> str:
    """The set `vector-assets dev` took of a demo store at start-up, as its banner names it."""
    said = f"backed {store} up as set "
    for line in stack.log_path.read_text(errors="replace").splitlines():
        if said in line:
            return line.split(said)[1].split()[0]
    raise AssertionError(f"the banner names no start-up backup of {store}:\n{stack.log_tail()}")


def first_screen(stack: DevStack, backups: list = BACKUPS) -> dict[str, dict[str, Any]] | None:
    """Each backup asset's checks as its node shows them, once the sensors have recorded them."""
    results = {asset: stack.latest_check_results(asset) for asset in backups}
    recorded = all(results[asset][name] for asset in backups for name in (*FILE_CHECKS, FRESHNESS))
    recorded = recorded and all(results[asset][QUALITY] for asset in backups if QUALITY in results[asset])
    return results if recorded else None


def failed_with_error(result: dict[str, Any] | None) -> bool:
    return bool(result) and result["status"] != "SUCCEEDED" and (result["evaluation"] or {}).get("severity") != "WARN"


def test_the_first_screen_after_make_dev_is_green_and_true_and_no_run_was_made(stack: DevStack) -> None:
    fresh = startup_set(stack)
    screen = stack.wait_for("the sensors to record the first checks", lambda: first_screen(stack), 120)

    for asset, results in screen.items():
        assert not [name for name, result in results.items() if failed_with_error(result)], (asset, results)
        for name in (*FILE_CHECKS, FRESHNESS):
            assert results[name]["status"] == "SUCCEEDED", (asset, name, results[name])
        for name in FILE_CHECKS:
            assert results[name]["partition"] == fresh, "the newest set's results are the ones shown"
        assert results[FRESHNESS]["evaluation"]["description"].startswith(f"fresh: the newest set {fresh} is ")
        assert all(results[name] is None for name in DRILL_CHECKS), "never drilled: not evaluated, never failed"
        if QUALITY in results:
            assert results[QUALITY]["status"] == "SUCCEEDED", (asset, results[QUALITY])
    assert stack.all_runs() == [], "the sensors record checks and freshness without a run"
    log = stack.log_path.read_text(errors="replace")
    assert "will register 2 new backup sets found under the root (1 legacy)" in log


def test_the_documents_databases_two_stores_start_as_green_and_true_beside_it(stack: DevStack) -> None:
    backups = {store: (store, f"{table}_backup") for store, table in DOCUMENT_STORES.items()}
    screen = stack.wait_for("the document stores' first checks", lambda: first_screen(stack, list(backups.values())), 120)

    for store, asset in backups.items():
        fresh, results = startup_set(stack, f"store {store}"), screen[asset]
        assert not [name for name, result in results.items() if failed_with_error(result)], (asset, results)
        for name in FILE_CHECKS:
            assert (results[name]["status"], results[name]["partition"]) == ("SUCCEEDED", fresh), (asset, name)
        assert results[FRESHNESS]["evaluation"]["description"].startswith(f"fresh: the newest set {fresh} is ")
        assert all(results[name] is None for name in DRILL_CHECKS), "never drilled: not evaluated, never failed"
        assert results[QUALITY]["status"] == "SUCCEEDED", (asset, results[QUALITY])
    assert stack.all_runs() == []
    log = stack.log_path.read_text(errors="replace")
    for store, layout in (("docs", "langchain_postgres"), ("notes", "llamaindex")):
        assert (f"store     {store} ({layout}, database DOCUMENTS_PG_DSN): its sensor will register "
                "1 new backup set found under its root (0 legacy)\n") in log, log


def test_the_legacy_sets_checksum_check_is_a_warning_that_says_nothing_could_be_compared(stack: DevStack) -> None:
    for asset in BACKUPS:
        sha256 = stack.wait_for(f"{asset}'s legacy checks", lambda: stack.check_execution_for(
            asset, "sha256_matches_manifest", LEGACY_TIMESTAMP), 60)
        assert (sha256["status"], sha256["evaluation"]["severity"]) == ("FAILED", "WARN")
        assert sha256["evaluation"]["description"].startswith("no checksum recorded: counted rows only")
        for name in ("file_present", "row_count_matches_manifest"):
            assert stack.check_execution_for(asset, name, LEGACY_TIMESTAMP)["status"] == "SUCCEEDED"


def test_a_backup_a_person_launches_is_the_only_run_it_makes(stack: DevStack) -> None:
    run_id = stack.launch("backup_vector_tables")
    stack.wait_for_run(run_id)
    key = stack.run_tags(run_id)["vector_assets/set"]

    def checked() -> bool:
        results = stack.latest_check_results(BACKUPS[-1])
        return results["file_present"]["partition"] == key and key in results[FRESHNESS]["evaluation"]["description"]

    stack.wait_for(f"the file checks and freshness of {key}", checked, 60)
    time.sleep(3 * INTERVAL_S)  # a run a sensor asked for would be queued by now
    assert [run["runId"] for run in stack.all_runs()] == [run_id]


def test_execute_all_on_the_checks_tab_replaces_no_sets_results(stack: DevStack) -> None:
    before = stack.latest_check_results(BACKUPS[-1])
    run_id = stack.execute_all_checks(BACKUPS[-1])

    assert stack.wait_for_run(run_id) == "SUCCESS"
    assert stack.check_statuses(BACKUPS[-1], run_id) == {FRESHNESS: "SUCCEEDED"}
    after = stack.latest_check_results(BACKUPS[-1])
    assert {name: after[name] for name in FILE_CHECKS} == {name: before[name] for name in FILE_CHECKS}


def test_a_user_error_reaches_the_terminal_in_one_line(stack: DevStack) -> None:
    config = {"ops": {"restore_from_backup_set": {"config": {"collection": "no_such_collection"}}}}
    run_id = stack.launch("restore_vector_tables", config, partition=LEGACY_TIMESTAMP)
    assert stack.wait_for("the restore to fail", lambda: stack._finished_status(run_id), 120) == "FAILURE"
    stack.wait_for("its failure in the terminal", lambda: "RUN_FAILURE" in stack.log_path.read_text(errors="replace"), 30)

    log = stack.log_path.read_text(errors="replace")
    assert log.count("holds no collection named 'no_such_collection'") == 1, stack.log_tail()
    assert "Stack Trace" not in log and 'File "' not in log


def test_alert_links_point_at_the_ui_that_is_running(stack: DevStack) -> None:
    stack.remember_processes()
    code_servers = [pid for pid, command in stack.seen.items() if "code-server" in command or "api grpc" in command]
    assert code_servers
    for pid in code_servers:
        try:
            assert psutil.Process(pid).environ()["VECTOR_ASSETS_UI_URL"] == f"http://127.0.0.1:{stack.port}"
        except psutil.NoSuchProcess:
            continue


def test_dagster_job_launch_prints_no_beta_warning(stack: DevStack) -> None:
    environment = {**{k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "VECTOR_ASSETS_"))},
                   **stack.dev_env()}
    done = subprocess.run(
        [str(VENV_BIN / "dagster"), "job", "launch", "-w", "workspace.yaml", "-j", "backup_vector_tables"],
        cwd=stack.workdir, env=environment, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr


def test_a_restart_registers_nothing_twice_and_takes_no_second_backup(stack: DevStack) -> None:
    stack.wait_for("runs in progress to finish", lambda: not stack.runs_in_progress(), 120)
    assert stop_dev_stack(stack) == []
    restarted = start_dev_stack(stack.workdir, {"VECTOR_ASSETS_SENSOR_INTERVAL": str(INTERVAL_S)})
    try:
        wait_until_serving(restarted)
        banner = restarted.log_path.read_text(errors="replace")
        assert "will register 0 new backup sets found under the root (0 legacy); " in banner, banner
        assert "already registered" in banner and "backed the demo store up" not in banner
        assert "backed store" not in banner and "created the documents database" not in banner, banner
        assert banner.count("its sensor will register 0 new backup sets found under its root (0 legacy); "
                            "1 already registered") == 2, banner
    finally:
        stop_dev_stack(restarted)
        kill_everything(restarted)
        stack.process = restarted.process  # the module's teardown sees the stack stopped
