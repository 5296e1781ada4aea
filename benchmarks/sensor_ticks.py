"""Sensor tick times at 10, 100 and 1,000 sets: the first tick, an unchanged tick, one new set.

Sets are small (the point is how a tick scales with the number of sets, not with their size),
spread ten to a task folder, one in five legacy. Each tick runs the real ``vector_bak_sensor``
against a temporary Dagster instance and applies its result as the daemon would. An audit hook
counts the set files each tick opens: an unchanged tick must open none.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from unittest import mock

SET_COUNTS = (10, 100, 1000)
SETS_PER_FOLDER = 10
LEGACY_EVERY = 5
UNCHANGED_REPEATS = 5
CSV_HEADERS = {
    "langchain_pg_collection": "uuid,name,cmetadata\n",
    "langchain_pg_embedding": "id,collection_id,embedding,document,cmetadata\n",
}


@dataclass
class TickTiming:
    sets: int
    first_seconds: float
    unchanged_seconds: float
    one_new_seconds: float
    files_opened_unchanged: int
    files_opened_one_new: int


class _OpenCounter:
    """Counts files opened under one folder while enabled (audit hooks cannot be removed)."""

    def __init__(self) -> None:
        self.prefix = ""
        self.count = 0
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple) -> None:
        if self.prefix and event == "open" and isinstance(args[0], (str, Path)) and str(args[0]).startswith(self.prefix):
            self.count += 1


def write_small_set(root: Path, index: int, start: datetime) -> None:
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
    if index % LEGACY_EVERY:
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
        for index in range(count):
            write_small_set(root, index, start)
        sensor = defs.resolve_sensor_def("vector_bak_sensor")
        resources = {"backup_root": BackupRootResource()}
        cursor: list[str | None] = [None]

        def tick() -> float:
            context = dg.build_sensor_context(
                instance=instance, instance_ref=instance.get_ref(), cursor=cursor[0], definitions=defs, resources=resources
            )
            started = time.perf_counter()
            result = sensor(context)
            elapsed = time.perf_counter() - started
            _apply(instance, result)
            cursor[0] = result.cursor
            return elapsed

        first = tick()
        counter.prefix, counter.count = str(root), 0
        unchanged = statistics.median(tick() for _ in range(UNCHANGED_REPEATS))
        opened_unchanged, counter.count = counter.count, 0
        write_small_set(root, count, start)
        one_new = tick()
        opened_new, counter.prefix = counter.count, ""
        registered = len(instance.get_dynamic_partitions("vector_backups"))
        if registered != count + 1:
            raise RuntimeError(f"the sensor registered {registered} partitions for {count + 1} sets")
    return TickTiming(count, first, unchanged, one_new, opened_unchanged, opened_new)


def _apply(instance, result) -> None:
    import dagster as dg

    for event in result.asset_events:
        instance.report_runless_asset_event(event)
    for request in result.dynamic_partitions_requests:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions("vector_backups", list(request.partition_keys))
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition("vector_backups", key)


def format_sensor_ticks(timings: list[TickTiming]) -> list[str]:
    lines = [
        "### vector_bak_sensor tick time",
        "",
        f"- small sets, {SETS_PER_FOLDER} per task folder, 1 in {LEGACY_EVERY} legacy; temporary sqlite Dagster instance; "
        f"unchanged tick = median of {UNCHANGED_REPEATS}",
        "",
        "| sets | first tick s | unchanged tick s | files opened (unchanged) | tick with 1 new set s | files opened (1 new) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for t in timings:
        lines.append(
            f"| {t.sets:,} | {t.first_seconds:.2f} | {t.unchanged_seconds:.3f} | {t.files_opened_unchanged} "
            f"| {t.one_new_seconds:.2f} | {t.files_opened_one_new} |"
        )
    return lines


if __name__ == "__main__":
    print("\n".join(format_sensor_ticks(measure_sensor_ticks())))
