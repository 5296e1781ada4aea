"""Sensor tick times at 10, 1,000 and 10,000 sets: the first ticks, an unchanged tick, one new set.

Sets are small (the point is how a tick scales with the number of sets, not with their size),
written directly as the writer leaves them, spread ten to a task folder, one in five legacy.
Each tick runs the real ``vector_bak_sensor`` against a temporary Dagster instance and applies
its result as the daemon would. An audit hook lists the files under the root each tick opens
(files, not the folders a write syncs): an unchanged tick must open none, and a tick with one
new set (with a manifest, then a legacy one) at most ``TARGET_FILES`` at any number of sets.

The first ticks (as many as the sensor's time budget needs) register every set; the instance
stores their partitions and materializations (the freshness asks storage which of the newest
partitions are materialized) but not their seven file and data checks a set: the sqlite test
instance takes 5 to 25 ms an event, and the ticks after them look check results up only for
the partitions they report. Storing the materializations is most of this section's time at
10,000 sets. Each result's cursor size is given too: Dagster keeps the cursor with every tick.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from unittest import mock

SET_COUNTS = (10, 1000, 10000)
SETS_PER_FOLDER = 10
LEGACY_EVERY = 5
UNCHANGED_REPEATS = 5
TARGET_FILES = 10
TARGET_SECONDS = 0.5
CSV_HEADERS = {
    "langchain_pg_collection": "uuid,name,cmetadata\n",
    "langchain_pg_embedding": "id,collection_id,embedding,document,cmetadata\n",
}


@dataclass
class TickTiming:
    sets: int
    write_seconds: float
    first_ticks: int
    first_seconds: float
    unchanged_seconds: float
    one_new_seconds: float
    new_legacy_seconds: float
    opened_unchanged: list[str] = field(default_factory=list)
    opened_one_new: list[str] = field(default_factory=list)
    opened_new_legacy: list[str] = field(default_factory=list)
    cursor_bytes: int = 0


class _OpenCounter:
    """Lists the files opened under one folder while enabled (audit hooks cannot be removed)."""

    def __init__(self) -> None:
        self.prefix = ""
        self.opened: list[str] = []
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple) -> None:
        if self.prefix and event == "open" and isinstance(args[0], (str, Path)) and str(args[0]).startswith(self.prefix):
            if not os.path.isdir(args[0]):  # a folder opened to sync it after a write is no file
                self.opened.append(str(args[0])[len(self.prefix):].lstrip("/"))

    def during(self, prefix: str, work):
        self.prefix, self.opened = prefix, []
        try:
            work()
        finally:
            self.prefix = ""
        return self.opened


def write_small_set(root: Path, index: int, start: datetime, legacy: bool | None = None) -> None:
    """One tiny set, a day after the one before; legacy (no manifest) one in five unless ``legacy`` says."""
    from vector_assets.core.sets.disk_store import write_bytes_atomically
    from vector_assets.core.sets.manifest import Manifest, TableFile
    from vector_assets.core.sets.naming import (
        csv_file_name,
        manifest_file_name,
        new_timestamp,
    )

    timestamp = new_timestamp(start + timedelta(days=index))
    folder = root / f"task_{new_timestamp(start + timedelta(days=index - index % SETS_PER_FOLDER))}" / "vector_bak"
    folder.mkdir(parents=True, exist_ok=True)
    tables = {}
    for table, header in CSV_HEADERS.items():
        body = (header + f"row-{index},x,\n").encode()
        write_bytes_atomically(folder / csv_file_name(table, timestamp), body)
        tables[table] = TableFile(table, csv_file_name(table, timestamp), 1, len(body), hashlib.sha256(body).hexdigest())
    if not (index % LEGACY_EVERY == 0 if legacy is None else legacy):
        manifest = Manifest(timestamp, start.isoformat(), folder.parent.name, {"database": "bench"}, "18", "0.8.5",
                            True, 0.01, tables)
        write_bytes_atomically(folder / manifest_file_name(timestamp), manifest.to_json().encode())


def measure_sensor_ticks(counts: tuple[int, ...] = SET_COUNTS) -> list[TickTiming]:
    counter = _OpenCounter()
    return [_measure_one(count, counter) for count in counts]


def _measure_one(count: int, counter: _OpenCounter) -> TickTiming:
    import dagster as dg

    from vector_assets.definitions import defs as load_defs
    from vector_assets.defs.resources import BackupRootResource

    defs = load_defs()

    start = datetime(2023, 1, 1, 2, 0, 0)
    with (
        tempfile.TemporaryDirectory(prefix="va-sensor-bench-") as folder,
        dg.instance_for_test() as instance,
        mock.patch.dict(os.environ, {"VECTOR_ASSETS_ROOT": str(Path(folder) / "training_data")}),
    ):
        root = Path(folder) / "training_data"
        written = time.perf_counter()
        for index in range(count):
            write_small_set(root, index, start)
        write_seconds = time.perf_counter() - written
        sensor = defs.resolve_sensor_def("vector_bak_sensor")
        resources = {"backup_root": BackupRootResource()}
        cursor: list[str | None] = [None]
        elapsed: list[float] = []

        def tick(store_checks: bool = True) -> None:
            context = dg.build_sensor_context(
                instance=instance, instance_ref=instance.get_ref(), cursor=cursor[0], definitions=defs, resources=resources
            )
            started = time.perf_counter()
            result = sensor(context)
            elapsed.append(time.perf_counter() - started)
            _apply(instance, result, store_checks)
            cursor[0] = result.cursor

        first_ticks = 0
        while not first_ticks or len(instance.get_dynamic_partitions("vector_backups")) < count:
            tick(store_checks=False)
            first_ticks += 1
        first = sum(elapsed)
        opened_unchanged = counter.during(str(root), lambda: [tick() for _ in range(UNCHANGED_REPEATS)])
        unchanged = statistics.median(elapsed[-UNCHANGED_REPEATS:])
        write_small_set(root, count, start, legacy=False)
        opened_one_new = counter.during(str(root), tick)
        one_new = elapsed[-1]
        write_small_set(root, count + 1, start, legacy=True)
        opened_new_legacy = counter.during(str(root), tick)
        registered = len(instance.get_dynamic_partitions("vector_backups"))
        if registered != count + 2:
            raise RuntimeError(f"the sensor registered {registered} partitions for {count + 2} sets")
    return TickTiming(count, write_seconds, first_ticks, first, unchanged, one_new, elapsed[-1],
                      opened_unchanged, opened_one_new, opened_new_legacy, len(cursor[0] or ""))


def _apply(instance, result, store_checks: bool) -> None:
    import dagster as dg

    for event in result.asset_events:
        if store_checks or not isinstance(event, dg.AssetCheckEvaluation):
            instance.report_runless_asset_event(event)
    for request in result.dynamic_partitions_requests:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions("vector_backups", list(request.partition_keys))
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition("vector_backups", key)


def format_sensor_ticks(timings: list[TickTiming], load: tuple[float, float] | None = None) -> list[str]:
    lines = [
        "### vector_bak_sensor tick time",
        "",
        f"- small sets, {SETS_PER_FOLDER} per task folder, 1 in {LEGACY_EVERY} legacy; temporary sqlite Dagster instance; "
        f"unchanged tick = median of {UNCHANGED_REPEATS}; files = files under the root the tick opened (reads and writes)",
        f"- targets for a tick with one new set, at any number of sets: <= {TARGET_FILES} files, <= {TARGET_SECONDS} s",
    ]
    if load is not None:
        lines.append(f"- load average (1 min) {load[0]:.2f} before, {load[1]:.2f} after")
    lines += [
        "",
        "| sets | sets written s | first ticks s (ticks) | unchanged tick s | files | 1 new set s | files "
        "| 1 new legacy set s | files | cursor kB | target |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for t in timings:
        met = (max(len(t.opened_one_new), len(t.opened_new_legacy)) <= TARGET_FILES
               and max(t.one_new_seconds, t.new_legacy_seconds) <= TARGET_SECONDS)
        lines.append(
            f"| {t.sets:,} | {t.write_seconds:.1f} | {t.first_seconds:.2f} ({t.first_ticks}) | {t.unchanged_seconds:.3f} "
            f"| {len(t.opened_unchanged)} | {t.one_new_seconds:.3f} | {len(t.opened_one_new)} "
            f"| {t.new_legacy_seconds:.3f} | {len(t.opened_new_legacy)} | {t.cursor_bytes / 1000:.0f} "
            f"| {'met' if met else 'missed'} |"
        )
    largest = timings[-1]
    lines += ["", f"Opened at {largest.sets:,} sets by the tick with one new set: {', '.join(largest.opened_one_new)}; "
              f"with one new legacy set: {', '.join(largest.opened_new_legacy)}"]
    return lines


def run_sensor_ticks(counts: tuple[int, ...] = SET_COUNTS) -> list[str]:
    before = os.getloadavg()[0]
    timings = measure_sensor_ticks(counts)
    return format_sensor_ticks(timings, (before, os.getloadavg()[0]))


if __name__ == "__main__":
    counts = tuple(int(arg) for arg in sys.argv[1:]) or SET_COUNTS
    print("\n".join(run_sensor_ticks(counts)))
