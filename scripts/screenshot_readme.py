"""Take the README's screenshots of a stale backup and of a partition's metadata plots.

    .venv/bin/python scripts/screenshot_readme.py [--out-dir docs]

Starts ``vector-assets dev`` in a fresh temporary folder, deletes the fresh set it takes of the
demo store at start-up (so the newest set is the demo's legacy set from 2025, and the backups
read stale), takes ``stale-backup.png``, makes four backups with the CLI as a user would, waits
for the sensor to register them and takes ``partition-plots.png``.
Drives Debian's Chromium headless, as ``screenshot_asset_graph.py`` does.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from screenshot_asset_graph import CHROMIUM, REPO, dismiss_welcome_dialog, free_port, wait_for_ui  # noqa: E402

ASSET = "langchain_pg_embedding_backup"
BACKUPS = 4
STACK_ENV = {"VECTOR_ASSETS_SENSOR_INTERVAL": "5", "VECTOR_ASSETS_FRESHNESS_INTERVAL": "5"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=REPO / "docs")
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with dev_stack() as (url, workdir):
        with browser_page() as page:
            shutil.rmtree(workdir / "training_data" / "vector_bak")  # the start-up backup: only the legacy set is left
            open_asset(page, url, "checks", "stale: the newest set", click="freshness_check")
            page.screenshot(path=str(args.out_dir / "stale-backup.png"))
            make_backups(workdir)
            open_asset(page, url, "overview", "throughput_mb_per_s", wait_seconds=120)
            page.get_by_text("Plots", exact=True).first.click(timeout=30_000)
            page.wait_for_timeout(3000)
            page.mouse.move(700, 600)
            page.mouse.wheel(0, 300)  # the plots, with the Metadata heading still in view
            page.wait_for_timeout(1500)
            page.screenshot(path=str(args.out_dir / "partition-plots.png"))
    print(f"wrote {args.out_dir / 'stale-backup.png'} and {args.out_dir / 'partition-plots.png'}")
    return 0


@contextmanager
def dev_stack() -> Iterator[tuple[str, Path]]:
    workdir = Path(tempfile.mkdtemp(prefix="va-screenshots-"))
    shutil.copyfile(REPO / "workspace.yaml", workdir / "workspace.yaml")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "VECTOR_ASSETS_"))}
    environment.update(STACK_ENV, VECTOR_ASSETS_ROOT=str(workdir / "training_data"))
    port = free_port()
    with open(workdir / "dev.log", "wb") as log:
        process = subprocess.Popen(
            [str(REPO / ".venv" / "bin" / "vector-assets"), "dev", "--port", str(port)],
            cwd=workdir, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_ui(url, process)
        yield url, workdir
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def browser_page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser.new_page(viewport={"width": 1600, "height": 1000}, device_scale_factor=1)
        browser.close()


def open_asset(page, url: str, view: str, expected_text: str, wait_seconds: float = 180, click: str | None = None) -> None:
    """The asset's page on a tab, reloaded until the UI shows what the picture is for."""
    deadline = time.monotonic() + wait_seconds
    while True:
        page.goto(f"{url}/assets/{ASSET}?view={view}", wait_until="networkidle", timeout=120_000)
        dismiss_welcome_dialog(page)
        try:
            if click:
                page.get_by_text(click, exact=True).first.click(timeout=10_000)
            page.get_by_text(expected_text).first.wait_for(timeout=10_000)
            page.wait_for_timeout(2000)  # let the charts draw
            return
        except Exception:
            if time.monotonic() > deadline:
                page.screenshot(path=str(REPO / "docs" / f"{view}.failed.png"))
                raise
            time.sleep(5)


def make_backups(workdir: Path) -> None:
    """Backups made with the CLI, a few seconds apart, with rows added in between."""
    environment = dict(os.environ)
    for line in (workdir / ".vector_assets" / "dev.env").read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        environment[key] = shlex.split(value)[0]
    cli = str(REPO / ".venv" / "bin" / "vector-assets")
    for _ in range(BACKUPS):
        subprocess.run([cli, "backup"], cwd=workdir, env=environment, check=True, stdout=subprocess.DEVNULL)
        time.sleep(1.5)


if __name__ == "__main__":
    sys.exit(main())
