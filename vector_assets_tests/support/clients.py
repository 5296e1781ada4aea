"""The RAG clients' own steps (``vector_assets_tests/clients/run.py``), run by their own python in
``.venv/clients``, which ``make test`` makes: llama-index pins SQLAlchemy below 2.1, Dagster needs
2.1, so the clients cannot share the test venv.

The clients' venv is found inside the venv running the tests, where the Makefile makes it beside
Azurite, not under the checkout: a git worktree tested with the main checkout's venv finds it too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLIENTS_FOLDER = REPO / "vector_assets_tests" / "clients"
CLIENTS_PYTHON = Path(sys.prefix) / "clients" / "bin" / "python"
STAMP = CLIENTS_PYTHON.parent.parent / ".installed"
CLIENT_TIMEOUT_SECONDS = 300


def require_clients() -> Path:
    """The clients' python, or a one-line failure saying how to make it (never a skip)."""
    if not STAMP.exists():
        pytest.fail(f"the RAG clients' venv {STAMP.parent} is missing: run `make test` (it makes it)", pytrace=False)
    return CLIENTS_PYTHON


def run_client(layout: str, step: str, dsn: str) -> object:
    """One client step (make, change, answer) on the database at ``dsn``; its JSON result. The
    DSN goes in the environment, never on a command line."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith(("PYTHON", "VIRTUAL_ENV"))}
    done = subprocess.run(
        [str(require_clients()), str(CLIENTS_FOLDER / "run.py"), layout, step],
        cwd=CLIENTS_FOLDER, env={**clean, "CLIENT_PG_DSN": dsn}, capture_output=True, text=True,
        timeout=CLIENT_TIMEOUT_SECONDS,
    )
    if done.returncode != 0:
        raise AssertionError(f"{layout} client's {step} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout)
