"""The ``vector-assets`` command: ``dev`` (embedded default + dagster dev), ``backup``, ``list``, ``bench``."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from vector_assets.core.backup import BackupRequest, run_backup
from vector_assets.core.backup_log import human_size
from vector_assets.core.errors import VectorAssetsError
from vector_assets.core.inventory import InventoryRequest, build_inventory
from vector_assets.core.tables import MANAGED_TABLES
from vector_assets.defs.resources import DEFAULT_ROOT, DSN_ENV_VAR, ROOT_ENV_VAR

if TYPE_CHECKING:
    from vector_assets.embedded import EmbeddedServer

DAGSTER_URL_ENV_VAR = "DAGSTER_PG_URL"
STATE_DIR = Path(".vector_assets")


def main(argv: list[str] | None = None) -> int:
    command_parser = parser()
    args, unknown = command_parser.parse_known_args(argv)
    if args.command is run_bench:
        args.bench_args = unknown + args.bench_args  # argparse hands a leading --option to unknown
    elif unknown:
        command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return args.command(args)
    except VectorAssetsError as error:
        print(f"vector-assets: {error}", file=sys.stderr)
        return 75 if error.retryable else 2  # 75 = EX_TEMPFAIL: worth retrying


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="vector-assets", description=__doc__)
    commands = root.add_subparsers(required=True)

    dev = commands.add_parser("dev", help="start the embedded PostgreSQL+pgvector (unless configured) and dagster dev")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", default="3000")
    dev.set_defaults(command=run_dev)

    backup = commands.add_parser("backup", help="back up the tables of $VECTOR_ASSETS_PG_DSN to a new set")
    backup.add_argument("--task-id", default=None, help="write into <root>/<task_id>/vector_bak")
    backup.add_argument("--tables", nargs="+", default=list(MANAGED_TABLES), choices=MANAGED_TABLES)
    backup.set_defaults(command=run_backup_command)

    listing = commands.add_parser("list", help="list the complete backup sets under $VECTOR_ASSETS_ROOT")
    listing.add_argument("--global-only", action="store_true", help="only <root>/vector_bak")
    listing.add_argument("--task-id", default=None, help="only <root>/<task_id>/vector_bak (wins over --global-only)")
    listing.add_argument("--json", action="store_true", help="print the list API's JSON instead of text")
    listing.set_defaults(command=run_list_command)

    bench = commands.add_parser("bench", help="benchmark backup against psql \\copy and pg_dump", add_help=False)
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(command=run_bench)
    return root


def configured_root() -> str:
    return os.environ.get(ROOT_ENV_VAR) or DEFAULT_ROOT


def backup_root() -> Path:
    return Path(configured_root())


def run_backup_command(args: argparse.Namespace) -> int:
    dsn = os.environ.get(DSN_ENV_VAR, "")
    result = run_backup(BackupRequest(dsn=dsn, root=backup_root(), task_id=args.task_id, tables=tuple(args.tables)))
    for name, entry in result.manifest.tables.items():
        print(f"{name}: {entry.rows:,} rows -> {result.folder / entry.file} ({human_size(entry.bytes)})")
    print(f"set {result.timestamp}: {result.manifest.duration_seconds:.2f}s, {result.megabytes_per_second:.1f} MB/s")
    return 0


def run_list_command(args: argparse.Namespace) -> int:
    request = InventoryRequest(
        root=backup_root(), global_only=args.global_only, task_id=args.task_id, configured_root=configured_root()
    )
    inventory = build_inventory(request)
    print(json.dumps(inventory.to_json(), indent=2, ensure_ascii=False) if args.json else inventory.format_text())
    return 0


def run_bench(args: argparse.Namespace) -> int:
    from vector_assets import bench

    return bench.main(args.bench_args)


def run_dev(args: argparse.Namespace) -> int:
    """Fill in what the environment does not say with the embedded server, then run dagster dev."""
    environment = dict(os.environ)
    environment.setdefault(ROOT_ENV_VAR, str(Path(DEFAULT_ROOT).resolve()))
    Path(environment[ROOT_ENV_VAR]).mkdir(parents=True, exist_ok=True)
    server = None
    if not environment.get(DSN_ENV_VAR) or not environment.get(DAGSTER_URL_ENV_VAR):
        server = start_embedded_defaults(environment)
    try:
        return run_dagster_dev(args, environment)
    finally:
        if server is not None:
            server.stop()


def run_dagster_dev(args: argparse.Namespace, environment: dict[str, str]) -> int:
    environment["DAGSTER_HOME"] = str(prepare_dagster_home())
    write_shell_env(environment)
    command = [str(Path(sys.executable).with_name("dagster")), "dev", "-h", args.host, "-p", args.port]
    command += ["-w", "workspace.yaml"] if Path("workspace.yaml").is_file() else ["-m", "vector_assets.definitions"]
    print(f"vector-assets: Dagster UI on http://{args.host}:{args.port}", flush=True)
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
    keys = ["DAGSTER_HOME", ROOT_ENV_VAR] + [key for key in (DSN_ENV_VAR, DAGSTER_URL_ENV_VAR) if key not in os.environ]
    lines = [f"export {key}={shlex.quote(environment[key])}" for key in keys]
    (STATE_DIR / "dev.env").write_text("\n".join(lines) + "\n")


def restore_default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_embedded_defaults(environment: dict[str, str]) -> "EmbeddedServer":
    from vector_assets.demo import ensure_demo_store
    from vector_assets.embedded import start_embedded

    server = start_embedded(STATE_DIR)
    if not environment.get(DSN_ENV_VAR):
        environment[DSN_ENV_VAR] = server.dsn()
        if ensure_demo_store(server.dsn(), Path(environment[ROOT_ENV_VAR])):
            print("vector-assets: created the LangChain tables with a demo store", flush=True)
    if not environment.get(DAGSTER_URL_ENV_VAR):
        environment[DAGSTER_URL_ENV_VAR] = server.dagster_storage_url()
    print(f"vector-assets: embedded PostgreSQL with pgvector in {server.pgdata}", flush=True)
    return server


def prepare_dagster_home() -> Path:
    home = (STATE_DIR / "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    source = Path("dagster.yaml")
    if not source.is_file():
        source = Path(__file__).resolve().parent.parent / "dagster.yaml"
    shutil.copyfile(source, home / "dagster.yaml")
    return home


if __name__ == "__main__":
    raise SystemExit(main())
