"""The product as ``make dev`` serves it, started for a test: ``vector-assets dev`` in a temp folder.

``vector-assets dev`` starts the embedded PostgreSQL with pgvector (databases ``vectors`` and
``dagster``), loads the demo store, copies ``dagster.yaml`` into a fresh DAGSTER_HOME and runs
``dagster dev -w workspace.yaml`` (webserver, daemon, code server). Running the command itself,
not a copy of its steps, is the point: the test sees what a user sees.

Every process it spawns inherits a marker in its environment (postgres too: ``pg_ctl`` keeps
the environment), so after shutdown a scan of ``/proc`` finds anything left behind, even a
process that left the process group (the postmaster runs in a session of its own).

The GraphQL side uses ``DagsterGraphQLClient`` and, for what it has no method for, raw queries
through ``client._execute`` as the UI sends them.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil
import requests
from dagster_graphql import DagsterGraphQLClient

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
MARKER_ENV_VAR = "VECTOR_ASSETS_E2E_STACK"
LOCATION_NAME = "vector_assets"
REPOSITORY_NAME = "__repository__"
STARTUP_TIMEOUT_S = 180.0
RUN_TIMEOUT_S = 180.0
SHUTDOWN_TIMEOUT_S = 60.0
FINISHED_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}
IN_PROGRESS_STATUSES = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"]

T = TypeVar("T")


class StackTimeout(AssertionError):
    """A wait on the stack ran out; the message carries the tail of the stack's log."""


@dataclass(frozen=True)
class StepWindow:
    """When a step ran, from the run's step stats; ``start`` is None while it has not started."""

    run_id: str
    step_key: str
    start: float | None
    end: float | None

    def overlaps(self, other: "StepWindow") -> bool:
        if self.start is None or other.start is None:
            return False
        self_end = self.end if self.end is not None else float("inf")
        other_end = other.end if other.end is not None else float("inf")
        return self.start < other_end and other.start < self_end


@dataclass
class DevStack:
    """A running ``vector-assets dev``: its folder, port, process and a GraphQL client."""

    workdir: Path
    root: Path
    port: int
    process: subprocess.Popen
    log_path: Path
    marker: str
    client: DagsterGraphQLClient = field(init=False)
    seen: dict[int, str] = field(default_factory=dict)  # pid -> command line, for the stray check

    def __post_init__(self) -> None:
        self.client = DagsterGraphQLClient("127.0.0.1", port_number=self.port, timeout=60)

    @property
    def state_dir(self) -> Path:
        return self.workdir / ".vector_assets"

    @property
    def pgdata(self) -> Path:
        return self.state_dir / "pg"

    def dev_env(self) -> dict[str, str]:
        """What ``vector-assets dev`` wrote to ``.vector_assets/dev.env`` for a second shell."""
        values: dict[str, str] = {}
        for line in (self.state_dir / "dev.env").read_text().splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            values[key] = shlex.split(value)[0] if value else ""
        return values

    def vectors_dsn(self) -> str:
        return self.dev_env()["VECTOR_ASSETS_PG_DSN"]

    def dagster_storage_dsn(self) -> str:
        """Dagster's own run storage (the embedded server's ``dagster`` database), for psycopg2."""
        return self.dev_env()["DAGSTER_PG_URL"].replace("postgresql+psycopg2://", "postgresql://", 1)

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log yet)"
        return "\n".join(text.splitlines()[-lines:])

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """A raw query, as the UI sends it (for what the client has no method for)."""
        return self.client._execute(query, variables)

    def wait_for(self, what: str, probe: Callable[[], T | None], timeout: float, interval: float = 1.0) -> T:
        """Poll ``probe`` until it returns something truthy; on timeout fail naming ``what``."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            self.remember_processes()
            if self.process.poll() is not None:
                raise StackTimeout(f"vector-assets dev exited ({self.process.returncode}) while waiting for {what}\n"
                                   f"--- log tail ---\n{self.log_tail()}")
            try:
                result = probe()
                if result:
                    return result
            except AssertionError:
                raise
            except Exception as error:  # the webserver may not answer yet
                last_error = error
            time.sleep(interval)
        raise StackTimeout(f"timed out after {timeout:.0f}s waiting for {what}"
                           f"{f' (last error: {last_error!r})' if last_error else ''}\n"
                           f"--- log tail ---\n{self.log_tail()}")

    def remember_processes(self) -> None:
        """Record every process of the stack seen so far, to check after shutdown."""
        for process in stack_processes(self.marker, self.pgdata):
            try:
                self.seen.setdefault(process.pid, " ".join(process.cmdline()))
            except psutil.Error:
                continue

    # --- runs -------------------------------------------------------------------------------

    def launch(self, job_name: str, run_config: dict[str, Any] | None = None, partition: str | None = None) -> str:
        """Launch as the Launchpad does; a partition is picked with the dagster/partition tag."""
        return self.client.submit_job_execution(
            job_name, repository_location_name=LOCATION_NAME, repository_name=REPOSITORY_NAME, run_config=run_config or {},
            tags={"dagster/partition": partition} if partition else None,
        )

    def run_tags(self, run_id: str) -> dict[str, str]:
        run = self.graphql(RUN_TAGS_QUERY, {"runId": run_id})["runOrError"]
        return {tag["key"]: tag["value"] for tag in run["tags"]}

    def run_status(self, run_id: str) -> str:
        return self.client.get_run_status(run_id).value

    def wait_for_run(self, run_id: str, timeout: float = RUN_TIMEOUT_S) -> str:
        """Wait until the run finishes; fail with its error messages unless it succeeded."""
        status = self.wait_for(f"run {run_id} to finish", lambda: self._finished_status(run_id), timeout)
        if status != "SUCCESS":
            raise AssertionError(f"run {run_id} ended {status}:\n{self.run_errors(run_id)}\n"
                                 f"--- log tail ---\n{self.log_tail()}")
        return status

    def _finished_status(self, run_id: str) -> str | None:
        status = self.run_status(run_id)
        return status if status in FINISHED_STATUSES else None

    def run_errors(self, run_id: str) -> str:
        events = self.graphql(RUN_EVENTS_QUERY, {"runId": run_id})["logsForRun"].get("events", [])
        lines = [f"{event['__typename']}: {event.get('message', '')} {((event.get('error') or {}).get('message') or '')}"
                 for event in events if event.get("level") in ("ERROR", "CRITICAL") or event.get("error")]
        return "\n".join(lines) or "(no error events)"

    def step_windows(self, run_id: str) -> list[StepWindow]:
        run = self.graphql(RUN_STEPS_QUERY, {"runId": run_id})["runOrError"]
        return [StepWindow(run_id, step["stepKey"], step["startTime"], step["endTime"]) for step in run["stepStats"]]

    def runs_in_progress(self) -> list[dict[str, str]]:
        result = self.graphql(RUNS_QUERY, {"statuses": IN_PROGRESS_STATUSES})["runsOrError"]
        return result["results"]

    # --- assets and partitions ----------------------------------------------------------------

    def partition_keys(self, asset: str) -> list[str]:
        node = self.graphql(PARTITION_KEYS_QUERY, {"path": [asset]})["assetNodeOrError"]
        return [key for dimension in node["partitionKeysByDimension"] for key in dimension["partitionKeys"]]

    def latest_metadata(self, asset: str, partition: str) -> dict[str, Any] | None:
        """Metadata of the partition's latest materialization as ``{label: value}``, or None."""
        node = self.graphql(MATERIALIZATION_QUERY, {"path": [asset], "partitions": [partition]})["assetNodeOrError"]
        materializations = node["latestMaterializationByPartition"]
        if not materializations or materializations[0] is None:
            return None
        return {entry["label"]: metadata_value(entry) for entry in materializations[0]["metadataEntries"]}

    def sensor_state(self, name: str) -> dict[str, Any]:
        selector = {"repositoryName": REPOSITORY_NAME, "repositoryLocationName": LOCATION_NAME, "sensorName": name}
        return self.graphql(SENSOR_QUERY, {"selector": selector})["sensorOrError"]

    # --- concurrency pools --------------------------------------------------------------------

    def pool(self, name: str) -> dict[str, Any]:
        return self.graphql(POOL_QUERY, {"pool": name})["instance"]["concurrencyLimit"]

    def set_pool_limit(self, name: str, limit: int) -> None:
        assert self.graphql(SET_POOL_LIMIT, {"pool": name, "limit": limit})["setConcurrencyLimit"], f"pool {name}"

    # --- asset checks -------------------------------------------------------------------------

    def execute_all_checks(self, asset: str) -> str:
        """What the Checks tab's "Execute all" sends: the asset's checks that can execute on their
        own (the button leaves out the others), in the job they are listed in, with no partition."""
        node = self.graphql(ASSET_CHECKS_QUERY, {"path": [asset]})["assetNodeOrError"]
        checks = [c for c in node["assetChecksOrError"]["checks"] if c["canExecuteIndividually"] == "CAN_EXECUTE"]
        assert checks, f"the Checks tab of {asset} offers no check to execute"
        selector = {
            "repositoryLocationName": LOCATION_NAME, "repositoryName": REPOSITORY_NAME,
            "pipelineName": checks[0]["jobNames"][0], "assetSelection": [],
            "assetCheckSelection": [{"assetKey": {"path": [asset]}, "name": check["name"]} for check in checks],
        }
        params = {"mode": "default", "executionMetadata": {}, "runConfigData": {}, "selector": selector}
        launched = self.graphql(LAUNCH_QUERY, {"executionParams": params})["launchPipelineExecution"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        return launched["run"]["runId"]

    def check_statuses(self, asset: str, run_id: str) -> dict[str, str]:
        """Each check's resolved status in that run, as the Checks tab shows it."""
        node = self.graphql(ASSET_CHECKS_QUERY, {"path": [asset]})["assetNodeOrError"]
        statuses = {}
        for check in node["assetChecksOrError"]["checks"]:
            executions = self.graphql(CHECK_EXECUTIONS_QUERY, {"path": [asset], "name": check["name"]})
            statuses.update({check["name"]: e["status"] for e in executions["assetCheckExecutions"] if e["runId"] == run_id})
        return statuses

    def latest_check_results(self, asset: str | tuple[str, ...]) -> dict[str, dict[str, Any] | None]:
        """Per check, the execution the asset's node and its Checks tab show (None: "Not evaluated").
        A declared store's asset is named by its key's path: (store, asset)."""
        path = [asset] if isinstance(asset, str) else list(asset)
        node = self.graphql(LATEST_CHECKS_QUERY, {"path": path})["assetNodeOrError"]
        return {check["name"]: check["executionForLatestMaterialization"] for check in node["assetChecksOrError"]["checks"]}

    def check_execution_for(self, asset: str, name: str, partition: str) -> dict[str, Any] | None:
        """The newest execution of a check on one partition."""
        executions = self.graphql(CHECK_EXECUTIONS_QUERY, {"path": [asset], "name": name})["assetCheckExecutions"]
        return next((e for e in executions if e["partition"] == partition), None)

    def all_runs(self) -> list[dict[str, Any]]:
        return self.graphql(RUNS_QUERY, {"statuses": None})["runsOrError"]["results"]

    def reset_pool_limit(self, name: str) -> None:
        """Back to ``dagster.yaml``'s ``default_limit``, as the UI's 'delete limit' does."""
        assert self.graphql(DELETE_POOL_LIMIT, {"pool": name})["deleteConcurrencyLimit"], f"pool {name}"


def metadata_value(entry: dict[str, Any]) -> Any:
    for field_name in ("intValue", "floatValue", "boolValue", "text", "path", "jsonString", "url", "mdStr"):
        if field_name in entry:
            return entry[field_name]
    return entry["__typename"]


METADATA_FIELDS = """
  label __typename
  ... on IntMetadataEntry { intValue }
  ... on FloatMetadataEntry { floatValue }
  ... on BoolMetadataEntry { boolValue }
  ... on TextMetadataEntry { text }
  ... on PathMetadataEntry { path }
"""

PARTITION_KEYS_QUERY = """
query PartitionKeys($path: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) { __typename ... on AssetNode {
    partitionKeysByDimension { name partitionKeys } } }
}"""

MATERIALIZATION_QUERY = """
query LatestMaterialization($path: [String!]!, $partitions: [String!]) {
  assetNodeOrError(assetKey: {path: $path}) { __typename ... on AssetNode {
    latestMaterializationByPartition(partitions: $partitions) { partition runId metadataEntries { %s } } } }
}""" % METADATA_FIELDS

RUN_STEPS_QUERY = """
query RunSteps($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run {
    status startTime endTime stepStats { stepKey status startTime endTime } } }
}"""

RUN_TAGS_QUERY = """
query RunTags($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { tags { key value } } } }
"""

RUN_EVENTS_QUERY = """
query RunEvents($runId: ID!) {
  logsForRun(runId: $runId) { __typename ... on EventConnection { events {
    __typename
    ... on MessageEvent { message level }
    ... on ErrorEvent { error { message } } } } }
}"""

RUNS_QUERY = """
query RunsInProgress($statuses: [RunStatus!]) {
  runsOrError(filter: {statuses: $statuses}) { __typename ... on Runs { results { runId jobName status } } }
}"""

SENSOR_QUERY = """
query Sensor($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) { __typename
    ... on Sensor { name minIntervalSeconds sensorState { status ticks(limit: 5) {
      status timestamp skipReason error { message errorChain { error { message } } } } } }
    ... on PythonError { message } }
}"""

POOL_QUERY = """
query Pool($pool: String!) {
  instance { concurrencyLimit(concurrencyKey: $pool) {
    limit usingDefaultLimit slotCount activeSlotCount pendingStepCount
    claimedSlots { runId stepKey } pendingSteps { runId stepKey assignedTimestamp } } }
}"""

ASSET_CHECKS_QUERY = """
query AssetChecks($path: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) { __typename ... on AssetNode {
    assetChecksOrError { __typename ... on AssetChecks { checks { name jobNames canExecuteIndividually } } } } }
}"""

CHECK_EXECUTIONS_QUERY = """
query CheckExecutions($path: [String!]!, $name: String!) {
  assetCheckExecutions(assetKey: {path: $path}, checkName: $name, limit: 20) {
    runId status partition evaluation { severity description } }
}"""

LATEST_CHECKS_QUERY = """
query LatestChecks($path: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) { __typename ... on AssetNode {
    assetChecksOrError { __typename ... on AssetChecks { checks { name
      executionForLatestMaterialization { runId status partition evaluation { severity description } } } } } } }
}"""

LAUNCH_QUERY = """
mutation Launch($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) { __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } } }
}"""

SET_POOL_LIMIT = "mutation SetPool($pool: String!, $limit: Int!) { setConcurrencyLimit(concurrencyKey: $pool, limit: $limit) }"
DELETE_POOL_LIMIT = "mutation DeletePool($pool: String!) { deleteConcurrencyLimit(concurrencyKey: $pool) }"

LOCATIONS_QUERY = """
query Locations {
  workspaceOrError { __typename ... on Workspace {
    locationEntries { name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } }
}"""


# --- processes --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stack_processes(marker: str, pgdata: Path) -> list[psutil.Process]:
    """Processes carrying the marker, plus postgres processes of this data folder."""
    postmaster = _postmaster_pid(pgdata)
    found = []
    for process in psutil.process_iter():
        try:
            if process.pid == os.getpid():
                continue
            if process.environ().get(MARKER_ENV_VAR) == marker or _is_postgres_of(process, pgdata, postmaster):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _is_postgres_of(process: psutil.Process, pgdata: Path, postmaster: int | None) -> bool:
    if postmaster is not None and postmaster in (process.pid, process.ppid()):
        return True
    return str(pgdata) in " ".join(process.cmdline())


def _postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, IndexError, ValueError):
        return None


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Processes still running (a zombie counts as gone: it holds nothing but a pid)."""
    running = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                running.append(process)
        except psutil.NoSuchProcess:
            continue
    return running


def describe(processes: list[psutil.Process]) -> str:
    lines = []
    for process in processes:
        try:
            lines.append(f"{process.pid}: {' '.join(process.cmdline())[:160]}")
        except psutil.Error:
            lines.append(f"{process.pid}: (gone)")
    return "\n".join(lines)


def start_dev_stack(workdir: Path, extra_env: dict[str, str] | None = None) -> DevStack:
    """``vector-assets dev --port <free>`` in ``workdir``, in its own process group, logging to a file.

    The environment is the test's minus every DAGSTER_/VECTOR_ASSETS_ setting, so the command
    fills them in itself, as it does for a user with a bare shell.
    """
    marker = uuid.uuid4().hex
    root = workdir / "training_data"
    shutil.copyfile(REPO_ROOT / "workspace.yaml", workdir / "workspace.yaml")
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("DAGSTER_", "VECTOR_ASSETS_", "PYTEST_"))}
    environment.update({MARKER_ENV_VAR: marker, "VECTOR_ASSETS_ROOT": str(root), **(extra_env or {})})
    port = free_port()
    log_path = workdir / "dev.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(VENV_BIN / "vector-assets"), "dev", "--host", "127.0.0.1", "--port", str(port)],
            cwd=workdir, env=environment, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return DevStack(workdir=workdir, root=root, port=port, process=process, log_path=log_path, marker=marker)


def wait_until_serving(stack: DevStack) -> None:
    """The webserver answers and the code location ``vector_assets`` has loaded."""
    stack.wait_for("the webserver to answer", lambda: _server_info(stack), STARTUP_TIMEOUT_S)
    stack.wait_for(f"code location {LOCATION_NAME} to load", lambda: _location_loaded(stack), STARTUP_TIMEOUT_S)


def _server_info(stack: DevStack) -> bool:
    return requests.get(f"http://127.0.0.1:{stack.port}/server_info", timeout=5).ok


def _location_loaded(stack: DevStack) -> bool:
    entries = stack.graphql(LOCATIONS_QUERY)["workspaceOrError"]["locationEntries"]
    for entry in entries:
        if entry["name"] == LOCATION_NAME and entry["loadStatus"] == "LOADED":
            error = entry["locationOrLoadError"]
            if error["__typename"] == "PythonError":
                raise AssertionError(f"code location {LOCATION_NAME} failed to load: {error['message']}")
            return True
    return False


def stop_dev_stack(stack: DevStack) -> list[str]:
    """Ctrl-C as a terminal sends it (SIGINT to the process group); escalate only if that fails.

    Returns what had to be escalated, so a test can insist that nothing was.
    """
    stack.remember_processes()
    escalations = []
    _signal_group(stack.process.pid, signal.SIGINT)
    try:
        stack.process.wait(timeout=SHUTDOWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        escalations.append(f"vector-assets dev ignored SIGINT for {SHUTDOWN_TIMEOUT_S:.0f}s")
        _signal_group(stack.process.pid, signal.SIGTERM)
        try:
            stack.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            escalations.append("vector-assets dev ignored SIGTERM for 15s")
    return escalations


def leftover_processes(stack: DevStack, grace: float = 15.0) -> list[psutil.Process]:
    """Processes of the stack still alive after shutdown (waits ``grace`` for stragglers)."""
    candidates = {process.pid: process for process in stack_processes(stack.marker, stack.pgdata)}
    for pid in stack.seen:
        try:
            candidates.setdefault(pid, psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    remaining = alive(list(candidates.values()))
    deadline = time.monotonic() + grace
    while remaining and time.monotonic() < deadline:
        time.sleep(0.5)
        remaining = alive(remaining)
    return remaining


def kill_everything(stack: DevStack) -> None:
    """Last resort in ``finally``: nothing of the stack survives the test, whatever happened."""
    _signal_group(stack.process.pid, signal.SIGKILL)
    for process in stack_processes(stack.marker, stack.pgdata):
        try:
            process.kill()
        except psutil.Error:
            continue
    if stack.process.poll() is None:
        stack.process.wait(timeout=10)


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


@contextmanager
def dev_stack(extra_env: dict[str, str] | None = None) -> Iterator[DevStack]:
    """A serving stack in a short temp folder; always torn down and removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="va-e2e-"))  # short: the postgres socket lives in it
    stack = start_dev_stack(workdir, extra_env)
    try:
        wait_until_serving(stack)
        yield stack
    finally:
        if stack.process.poll() is None:
            stop_dev_stack(stack)
        kill_everything(stack)
        shutil.rmtree(workdir, ignore_errors=True)
