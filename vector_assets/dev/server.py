"""``vector-assets dev``: fill in what the environment does not say with the embedded server
and the demo store, then run ``dagster dev`` on this code location."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from vector_assets import settings
from vector_assets.core.sets.object_store import is_object_store_url
from vector_assets.dev.demo import ensure_demo_store
from vector_assets.dev.embedded import EmbeddedServer, start_embedded

STATE_DIR = Path(".vector_assets")
# Added to dagster.yaml's shared settings in DAGSTER_HOME. The URL must be postgresql+psycopg2://
# (SQLAlchemy 2.1 would otherwise pick psycopg 3, which is not installed).
POSTGRES_STORAGE_YAML = f"""
storage:
  postgres:
    postgres_url:
      env: {settings.DAGSTER_PG_URL.name}
"""


def run_dev(host: str, port: str) -> int:
    environment = dict(os.environ)
    environment.setdefault(settings.ROOT.name, str(Path(settings.ROOT.default).resolve()))
    if not is_object_store_url(environment[settings.ROOT.name]):  # a bucket has no folder to make
        Path(environment[settings.ROOT.name]).mkdir(parents=True, exist_ok=True)
    server = None
    if not environment.get(settings.PG_DSN.name) or not environment.get(settings.DAGSTER_PG_URL.name):
        server = start_embedded_defaults(environment)
    try:
        return run_dagster_dev(host, port, environment)
    finally:
        if server is not None:
            server.stop()


def run_dagster_dev(host: str, port: str, environment: dict[str, str]) -> int:
    environment["DAGSTER_HOME"] = str(prepare_dagster_home())
    write_shell_env(environment)
    command = [str(Path(sys.executable).with_name("dagster")), "dev", "-h", host, "-p", port]
    command += ["-w", "workspace.yaml"] if Path("workspace.yaml").is_file() else ["-m", "vector_assets.definitions"]
    print(f"vector-assets: Dagster UI on http://{host}:{port}", flush=True)
    # A shell's background job inherits SIGINT ignored; give dagster dev the default back.
    process = subprocess.Popen(command, env=environment, preexec_fn=restore_default_sigint)

    def stop_dagster(signum: int, frame: object) -> None:
        process.send_signal(signal.SIGINT)  # dagster dev shuts its children down on SIGINT

    signal.signal(signal.SIGINT, stop_dagster)
    signal.signal(signal.SIGTERM, stop_dagster)
    return process.wait()


def write_shell_env(environment: dict[str, str]) -> None:
    """Let a second shell use the dagster CLI on this instance: ``source .vector_assets/dev.env``.

    Only settings we filled in ourselves are written; a DSN the user exported (which may hold a
    password) stays in the user's environment and never lands in a file.
    """
    filled_in = [s.name for s in (settings.PG_DSN, settings.DAGSTER_PG_URL) if s.name not in os.environ]
    keys = ["DAGSTER_HOME", settings.ROOT.name] + filled_in
    lines = [f"export {key}={shlex.quote(environment[key])}" for key in keys]
    (STATE_DIR / "dev.env").write_text("\n".join(lines) + "\n")


def restore_default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_embedded_defaults(environment: dict[str, str]) -> EmbeddedServer:
    server = start_embedded(STATE_DIR)
    if not environment.get(settings.PG_DSN.name):
        environment[settings.PG_DSN.name] = server.dsn()
        if ensure_demo_store(server.dsn(), environment[settings.ROOT.name]):
            print("vector-assets: created the LangChain tables with a demo store", flush=True)
    if not environment.get(settings.DAGSTER_PG_URL.name):
        environment[settings.DAGSTER_PG_URL.name] = server.dagster_storage_url()
    print(f"vector-assets: embedded PostgreSQL with pgvector in {server.pgdata}", flush=True)
    return server


def prepare_dagster_home() -> Path:
    """DAGSTER_HOME for make dev: dagster.yaml's shared settings plus dagster-postgres storage."""
    home = (STATE_DIR / "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    source = Path("dagster.yaml")
    if not source.is_file():
        source = Path(__file__).resolve().parents[2] / "dagster.yaml"
    (home / "dagster.yaml").write_text(source.read_text() + POSTGRES_STORAGE_YAML)
    return home
