"""Incremental backups in ``make bench``: at N rows with 1% of them changed between backups,
an increment's time and bytes against a full backup's in the same format, and the restore of a
chain (a full set and 5 increments) against the restore of one full set of the same rows.

Targets (issue #15), reported as MET or MISSED, never raised:
- increment time <= 0.35 x the full backup's time;
- increment bytes <= 0.05 x the full set's bytes;
- chain restore <= 1.5 x the full restore;
- a diff of the newest set (the chain's last increment) against the live tables, after the same
  share of rows changed again, <= 1.2 x an increment's backup (issue 29).

Everything runs in its own database (a copy of the N-row one), so the other sections' data stays
as built. Timings are in-process calls, like the rest of the benchmark's "call" figures.
"""

from __future__ import annotations

import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2

from benchmarks.common import (
    REPEATS,
    copy_database,
    drop_database,
    execute_statements,
    fresh_folder,
    log,
    megabytes,
    verdict,
)
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.diff import DiffRequest, run_diff
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets.core.sets.manifest import INCREMENTAL
from vector_assets.core.sets.writer import BackupResult
from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE

INCREMENT_DATABASE = "bench_increments"
RESTORE_DATABASE = "bench_increments_restore"
CHANGED_SHARE = 0.01
INCREMENTS = 5
BENCH_FORMATS = ("csv", "pgcopy.zst")
TARGET_TIME_RATIO = 0.35
TARGET_BYTES_RATIO = 0.05
TARGET_CHAIN_RATIO = 1.5
TARGET_DIFF_RATIO = 1.2


@dataclass
class IncrementRuns:
    format: str
    full_seconds: list[float] = field(default_factory=list)  # a full set with its row index
    plain_full_seconds: list[float] = field(default_factory=list)  # a full set without one
    increment_seconds: list[float] = field(default_factory=list)
    full_bytes: int = 0
    increment_bytes: list[int] = field(default_factory=list)
    index_bytes: list[int] = field(default_factory=list)  # each increment's row index and deleted keys
    chain_restore_seconds: list[float] = field(default_factory=list)
    full_restore_seconds: list[float] = field(default_factory=list)
    diff_seconds: list[float] = field(default_factory=list)  # the newest set against the live tables

    def ratio(self, part: list[float], whole: list[float]) -> float:
        return statistics.median(part) / statistics.median(whole)


@dataclass
class IncrementsReport:
    rows: int
    changed_rows: int
    runs: dict[str, IncrementRuns]


def measure_increments(maintenance_dsn: str, source_dsn: str, dsn_for, rows: int, work: Path) -> IncrementsReport:
    dsn, restore_dsn = dsn_for(INCREMENT_DATABASE), dsn_for(RESTORE_DATABASE)
    changed = max(1, int(rows * CHANGED_SHARE))
    report = IncrementsReport(rows, changed, {})
    for name in BENCH_FORMATS:
        copy_database(maintenance_dsn, source_dsn, INCREMENT_DATABASE)
        copy_database(maintenance_dsn, source_dsn, RESTORE_DATABASE)
        report.runs[name] = _measure_format(name, dsn, restore_dsn, changed, work)
    drop_database(maintenance_dsn, INCREMENT_DATABASE)
    drop_database(maintenance_dsn, RESTORE_DATABASE)
    return report


def _measure_format(name: str, dsn: str, restore_dsn: str, changed: int, work: Path) -> IncrementRuns:
    runs = IncrementRuns(name)
    for repetition in range(REPEATS):
        log(f"increments ({name}): full backups, repetition {repetition + 1}/{REPEATS}")
        runs.plain_full_seconds.append(_timed_backup(dsn, fresh_folder(work / "inc_plain"), name, row_index=False)[0])
        runs.full_seconds.append(_timed_backup(dsn, fresh_folder(work / "inc_full"), name, row_index=True)[0])
    chain_root = fresh_folder(work / f"inc_chain_{name.replace('.', '_')}")
    seconds, base = _timed_backup(dsn, chain_root, name, row_index=True)
    runs.full_bytes = _data_bytes(base)
    last = base
    for step in range(1, INCREMENTS + 1):
        _change_rows(dsn, changed, step)
        log(f"increments ({name}): increment {step}/{INCREMENTS}")
        seconds, last = _timed_backup(dsn, chain_root, name, kind=INCREMENTAL)
        if last.manifest.kind != INCREMENTAL:
            raise RuntimeError(f"increment {step} fell back to a full set: {last.manifest.fallback}")
        runs.increment_seconds.append(seconds)
        runs.increment_bytes.append(_data_bytes(last))
        runs.index_bytes.append(_side_bytes(last))
    full_root = fresh_folder(work / f"inc_same_rows_{name.replace('.', '_')}")
    _, same_rows = _timed_backup(dsn, full_root, name, row_index=False)
    for repetition in range(REPEATS):
        log(f"increments ({name}): chain and full restores, repetition {repetition + 1}/{REPEATS}")
        runs.chain_restore_seconds.append(_timed_restore(restore_dsn, chain_root, last.timestamp))
        expected = _table_digest(dsn)
        if _table_digest(restore_dsn) != expected:
            raise RuntimeError("the chain restore does not hold the source's rows")
        runs.full_restore_seconds.append(_timed_restore(restore_dsn, full_root, same_rows.timestamp))
        if _table_digest(restore_dsn) != expected:
            raise RuntimeError("the full restore does not hold the source's rows")
    _time_diffs(runs, dsn, chain_root, last, changed)  # last: the restores compare with the rows as they were
    shutil.rmtree(chain_root, ignore_errors=True)
    shutil.rmtree(full_root, ignore_errors=True)
    return runs


def _time_diffs(runs: IncrementRuns, dsn: str, root: Path, newest: BackupResult, changed: int) -> None:
    """The live rows change once more, as before an increment; the newest set is diffed against them."""
    _change_rows(dsn, changed, INCREMENTS + 1)
    for repetition in range(REPEATS):
        log(f"increments ({runs.format}): diff of the newest set against the live tables, {repetition + 1}/{REPEATS}")
        started = time.perf_counter()
        result = run_diff(DiffRequest(dsn=dsn, root=root, key=newest.timestamp))
        runs.diff_seconds.append(time.perf_counter() - started)
        found = sum(table.differences.changed for table in result.tables)
        if not 0 < found <= changed or any(t.differences.only_in_set or t.differences.only_in_other for t in result.tables):
            raise RuntimeError(f"the diff found {found} changed rows (and rows only on one side); {changed} were changed")


def _timed_backup(dsn: str, root: Path, fmt: str, *, kind: str = "full", row_index: bool | None = None):
    started = time.perf_counter()
    result = run_backup(BackupRequest(dsn=dsn, root=root, format=fmt, kind=kind, row_index=row_index))
    seconds = time.perf_counter() - started
    time.sleep(1.0)  # the next set needs a timestamp of its own
    return seconds, result


def _timed_restore(dsn: str, root: Path, timestamp: str) -> float:
    started = time.perf_counter()
    run_restore(RestoreRequest(target_dsn=dsn, root=root, timestamp=timestamp, truncate_before_restore=True,
                               safety_backup=False))
    return time.perf_counter() - started


def _data_bytes(result: BackupResult) -> int:
    return sum(entry.bytes for entry in result.manifest.tables.values())


def _side_bytes(result: BackupResult) -> int:
    return sum(
        part.bytes for entry in result.manifest.tables.values() for part in (entry.rows_index, entry.deleted_keys) if part
    )


def _change_rows(dsn: str, changed: int, step: int) -> None:
    """1% of the rows: a third get a new document, a third new metadata, a third a new embedding."""
    third = max(1, changed // 3)
    statements = [
        f"UPDATE {EMBEDDING_TABLE} SET document = document || ' v{step}' WHERE id IN "
        f"(SELECT id FROM {EMBEDDING_TABLE} ORDER BY md5(id || '{step}a') LIMIT {third})",
        f"UPDATE {EMBEDDING_TABLE} SET cmetadata = jsonb_build_object('step', {step}) WHERE id IN "
        f"(SELECT id FROM {EMBEDDING_TABLE} ORDER BY md5(id || '{step}b') LIMIT {third})",
        f"UPDATE {EMBEDDING_TABLE} SET embedding = (SELECT embedding FROM {EMBEDDING_TABLE} ORDER BY id LIMIT 1) "
        f"WHERE id IN (SELECT id FROM {EMBEDDING_TABLE} ORDER BY md5(id || '{step}c') LIMIT {changed - 2 * third})",
    ]
    execute_statements(dsn, statements)


def _table_digest(dsn: str) -> list:
    statements = [f"SELECT count(*), md5(string_agg(md5(t::text), '' ORDER BY md5(t::text))) FROM {table} t"
                  for table in (COLLECTION_TABLE, EMBEDDING_TABLE)]
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cursor:
            found = []
            for statement in statements:
                cursor.execute(statement)
                found.append(cursor.fetchone())
            return found
    finally:
        conn.close()


def format_increments(report: IncrementsReport) -> list[str]:
    """The targets are held strictly: an increment's time against a full backup without a row
    index, and its bytes with its row index and deleted keys counted."""
    lines = [
        "### incremental backups (issue #15)",
        "",
        f"- data: {report.rows} embeddings; before each of {INCREMENTS} increments {report.changed_rows} rows "
        f"({CHANGED_SHARE:.0%}) changed: a third the document, a third the metadata, a third the embedding",
        f"- full backups: median of {REPEATS}; increments: median of the {INCREMENTS}; restores: replace mode without "
        f"the safety backup, median of {REPEATS}, interleaved, each checked row for row against the source",
        "",
        "| format | full s | full s with row index | increment s | × full | × full with index | full MB "
        "| increment MB (data + index + deleted keys) | × full | chain restore s | full restore s | × full |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    for runs in report.runs.values():
        time_ratio = runs.ratio(runs.increment_seconds, runs.plain_full_seconds)
        indexed_ratio = runs.ratio(runs.increment_seconds, runs.full_seconds)
        data, side = statistics.median(runs.increment_bytes), statistics.median(runs.index_bytes)
        bytes_ratio = (data + side) / runs.full_bytes
        chain_ratio = runs.ratio(runs.chain_restore_seconds, runs.full_restore_seconds)
        lines.append(
            f"| `{runs.format}` | {statistics.median(runs.plain_full_seconds):.2f} | {statistics.median(runs.full_seconds):.2f} "
            f"| {statistics.median(runs.increment_seconds):.2f} | {time_ratio:.2f} | {indexed_ratio:.2f} "
            f"| {megabytes(runs.full_bytes):.1f} | {megabytes(data + side):.2f} ({megabytes(data):.2f} + {megabytes(side):.2f}) "
            f"| {bytes_ratio:.3f} | {statistics.median(runs.chain_restore_seconds):.2f} "
            f"| {statistics.median(runs.full_restore_seconds):.2f} | {chain_ratio:.2f} |"
        )
        diff_ratio = runs.ratio(runs.diff_seconds, runs.increment_seconds)
        verdicts += [
            f"- `{runs.format}`: diff of the newest set against the live tables <= {TARGET_DIFF_RATIO} x an increment: "
            f"{statistics.median(runs.diff_seconds):.2f} s, {diff_ratio:.2f} x -> {verdict(diff_ratio <= TARGET_DIFF_RATIO)}",
            f"- `{runs.format}`: increment time <= {TARGET_TIME_RATIO} x full: {time_ratio:.2f} x -> "
            f"{verdict(time_ratio <= TARGET_TIME_RATIO)}; increment bytes <= {TARGET_BYTES_RATIO} x full: "
            f"{bytes_ratio:.3f} x -> {verdict(bytes_ratio <= TARGET_BYTES_RATIO)}; chain restore <= "
            f"{TARGET_CHAIN_RATIO} x full restore: {chain_ratio:.2f} x -> {verdict(chain_ratio <= TARGET_CHAIN_RATIO)}",
        ]
    return lines + [""] + verdicts
