"""Take the README's screenshot of the asset graph, from `make dev` driven by headless Chromium.

    .venv/bin/pip install -e '.[screenshot]'      # playwright (the Python driver only)
    sudo apt-get install chromium                 # Debian's Chromium; no browser download
    .venv/bin/python scripts/screenshot_asset_graph.py [--url http://127.0.0.1:3000] [--out docs/asset-graph.png]

Without ``--url`` it starts ``vector-assets dev`` (with the interpreter running this script) on a
free port, waits for the UI, takes the picture of the global asset lineage (each store's source
tables -> partitioned backups -> inventory: the LangChain demo store, and the documents
database's ``docs`` and ``notes`` stores), and stops everything again.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
UI_TIMEOUT_SECONDS = 240
GRAPH_NODES = ("langchain_pg_embedding", "langchain_pg_embedding_backup", "vector_backup_inventory",
               "product_docs", "product_docs_backup", "data_notes", "data_notes_backup")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running Dagster UI; default: start make dev's stack on a free port")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "asset-graph.png")
    parser.add_argument("--settle", type=float, default=0.0,
                        help="seconds to wait once the UI answers, so the sensors' first ticks have recorded the checks")
    args = parser.parse_args()
    if args.url:
        take_screenshot(args.url, args.out, args.settle)
    else:
        with dev_stack() as url:
            take_screenshot(url, args.out, args.settle)
    print(f"wrote {args.out}")
    return 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def dev_stack() -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "vector_assets.cli", "dev", "--port", str(port)]
    log = open(REPO / ".vector_assets" / "screenshot-dev.log", "w") if (REPO / ".vector_assets").is_dir() else subprocess.DEVNULL
    process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_ui(url, process)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGINT)  # vector-assets dev stops dagster and the server on SIGINT
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def wait_for_ui(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + UI_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"vector-assets dev exited with {process.returncode} before the UI came up")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"the UI at {url} did not answer within {UI_TIMEOUT_SECONDS} s")


def take_screenshot(url: str, out: Path, settle: float = 0.0) -> None:
    from playwright.sync_api import sync_playwright

    time.sleep(settle)
    out.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1600, "height": 1400}, device_scale_factor=1)  # three stores' groups
        page.goto(f"{url}/asset-groups", wait_until="networkidle", timeout=120_000)
        try:
            dismiss_welcome_dialog(page)
            page.mouse.click(1450, 1300, button="right")  # the graph's background menu, below the groups
            page.get_by_role("menuitem", name="Expand all groups").click(timeout=60_000)
            for node in GRAPH_NODES:
                page.get_by_text(node, exact=True).first.wait_for(timeout=120_000)
        except Exception:
            page.screenshot(path=str(out.with_suffix(".failed.png")))  # what the UI showed instead
            raise
        page.wait_for_timeout(1500)  # let the graph finish its layout animation
        page.screenshot(path=str(out))
        browser.close()


def dismiss_welcome_dialog(page) -> None:
    """A fresh Dagster instance greets the first visitor with a community dialog; later ones not."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.get_by_role("button", name="Skip").click(timeout=8_000)
    except PlaywrightTimeout:
        pass


if __name__ == "__main__":
    sys.exit(main())
