"""One collection's restore in ``make bench``: at N rows with 1 % of them in one collection, the
restore of that collection against the full restore of the same set, in every format, plain and
encrypted (``csv.zst`` and ``pgcopy.zst``, as the encryption section).

Target (issue #30, point 4), reported as MET or MISSED, never raised: a collection restore
reads the set once and sends COPY only the collection's rows, so it takes at most 0.3 x the full
restore of the set, in every format.

Both restores replace (``truncate_before_restore``) without a safety set, into a copy of the
N-row database, interleaved; each is checked: the full restore's row count, the collection's
rows loaded (which must also be every row its COPY got). The machine's load average is recorded
with the figures, since the machine may be shared.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2

from benchmarks.common import (
    REPEATS,
    admin_statement,
    copy_database,
    drop_database,
    execute_statements,
    fresh_folder,
    log,
    verdict,
)
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets.core.progress import CopyProgress, ProgressReporter
from vector_assets.core.sets.encryption import EncryptionKeys, IdentityFile, Recipients
from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE

COLLECTION_DATABASE = "bench_collection"
COLLECTION_NAME = "one_percent"
COLLECTION_SHARE = 0.01
PLAIN_FORMATS = ("csv", "csv.zst", "pgcopy", "pgcopy.zst")
ENCRYPTED_FORMATS = ("csv.zst", "pgcopy.zst")
TARGET_RATIO = 0.3
QUIET_INTERVAL_SECONDS = 3600.0  # progress is only counted, never reported mid-COPY


@dataclass
class CollectionRuns:
    format: str
    encrypted: bool
    full_seconds: list[float] = field(default_factory=list)
    collection_seconds: list[float] = field(default_factory=list)
    rows_copied: int = 0  # what the collection restore's COPY FROM loaded of the embedding table

    @property
    def label(self) -> str:
        return f"`{self.format}`" + (" encrypted" if self.encrypted else "")

    @property
    def ratio(self) -> float:
        return statistics.median(self.collection_seconds) / statistics.median(self.full_seconds)


@dataclass
class CollectionReport:
    rows: int
    collection_rows: int
    runs: list[CollectionRuns]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)


def measure_collection_restore(maintenance_dsn: str, source_dsn: str, dsn_for, rows: int, work: Path) -> CollectionReport:
    dsn = dsn_for(COLLECTION_DATABASE)
    copy_database(maintenance_dsn, source_dsn, COLLECTION_DATABASE)
    collection_rows = _gather_one_collection(dsn, max(1, int(rows * COLLECTION_SHARE)))
    report = CollectionReport(rows, collection_rows, [], os.getloadavg())
    keys = _keys(work)
    try:
        for fmt, encrypted in [(f, False) for f in PLAIN_FORMATS] + [(f, True) for f in ENCRYPTED_FORMATS]:
            report.runs.append(_measure_format(dsn, fmt, keys if encrypted else None, rows, collection_rows, work))
    finally:
        report.load_after = os.getloadavg()
        drop_database(maintenance_dsn, COLLECTION_DATABASE)
    return report


def _gather_one_collection(dsn: str, rows: int) -> int:
    """A new collection takes ``rows`` embeddings spread over the table (the others keep theirs)."""
    execute_statements(dsn, [
        f"INSERT INTO {COLLECTION_TABLE} (uuid, name) VALUES (gen_random_uuid(), '{COLLECTION_NAME}')",
        f"UPDATE {EMBEDDING_TABLE} SET collection_id = (SELECT uuid FROM {COLLECTION_TABLE} WHERE name = '{COLLECTION_NAME}') "
        f"WHERE id IN (SELECT id FROM {EMBEDDING_TABLE} ORDER BY md5(id) LIMIT {rows})",
    ])
    admin_statement(dsn, f"VACUUM (FULL, FREEZE, ANALYZE) {EMBEDDING_TABLE}")  # the moved rows spread, as written over time
    return rows


def _keys(work: Path) -> EncryptionKeys:
    from pyrage import x25519

    identity = x25519.Identity.generate()
    identity_file = work / "bench-collection-identity.txt"
    identity_file.write_text(f"{identity}\n")
    identity_file.chmod(0o600)
    return EncryptionKeys(Recipients.parse(str(identity.to_public()), "bench"),
                          IdentityFile(identity_file, "VECTOR_ASSETS_IDENTITY_FILE"))


def _measure_format(dsn: str, fmt: str, keys: EncryptionKeys | None, rows: int, collection_rows: int,
                    work: Path) -> CollectionRuns:
    runs = CollectionRuns(fmt, keys is not None)
    root = fresh_folder(work / f"collection_{fmt.replace('.', '_')}{'_age' if keys else ''}")
    encryption = {"encryption": keys} if keys else {}
    timestamp = run_backup(BackupRequest(dsn=dsn, root=root, format=fmt, **encryption)).timestamp
    for repetition in range(REPEATS):
        log(f"collection restore ({runs.label}): full and collection restores, repetition {repetition + 1}/{REPEATS}")
        runs.full_seconds.append(_timed_full_restore(dsn, root, timestamp, encryption, rows))
        seconds, runs.rows_copied = _timed_collection_restore(dsn, root, timestamp, encryption, collection_rows)
        runs.collection_seconds.append(seconds)
    shutil.rmtree(root, ignore_errors=True)
    return runs


def _timed_full_restore(dsn: str, root: Path, timestamp: str, encryption: dict, rows: int) -> float:
    started = time.perf_counter()
    result = run_restore(RestoreRequest(target_dsn=dsn, root=root, timestamp=timestamp, truncate_before_restore=True,
                                        safety_backup=False, **encryption))
    seconds = time.perf_counter() - started
    loaded = {table.table: table.rows_loaded for table in result.tables}
    if loaded.get(EMBEDDING_TABLE) != rows:
        raise RuntimeError(f"the full restore loaded {loaded} embeddings, expected {rows}")
    return seconds


def _timed_collection_restore(dsn: str, root: Path, timestamp: str, encryption: dict, rows: int) -> tuple[float, int]:
    events: list = []
    started = time.perf_counter()
    result = run_restore(RestoreRequest(
        target_dsn=dsn, root=root, timestamp=timestamp, collection=COLLECTION_NAME, truncate_before_restore=True,
        safety_backup=False, progress=ProgressReporter(events.append, QUIET_INTERVAL_SECONDS), **encryption,
    ))
    seconds = time.perf_counter() - started
    copied = sum(event.rows for event in events if isinstance(event, CopyProgress) and event.done
                 and event.action == "restore" and event.table == EMBEDDING_TABLE)
    if (result.collection.embeddings_loaded, copied) != (rows, rows):
        raise RuntimeError(f"the collection restore loaded {result.collection.embeddings_loaded} of its {rows} rows, "
                           f"its COPY got {copied}")
    _count_collection(dsn, rows)
    return seconds, copied


def _count_collection(dsn: str, rows: int) -> None:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {EMBEDDING_TABLE} e JOIN {COLLECTION_TABLE} c ON c.uuid = e.collection_id "
                           "WHERE c.name = %s", (COLLECTION_NAME,))
            (found,) = cursor.fetchone()
    finally:
        conn.close()
    if found != rows:
        raise RuntimeError(f"after the collection restore the collection holds {found} rows, expected {rows}")


def format_collection_restore(report: CollectionReport) -> list[str]:
    load = " / ".join(f"{value:.2f}" for value in report.load_before)
    load_after = " / ".join(f"{value:.2f}" for value in report.load_after)
    lines = [
        "### one collection's restore (issue #30, point 4)",
        "",
        f"- data: {report.rows} embeddings, {report.collection_rows} ({COLLECTION_SHARE:.0%}) of them in collection "
        f"`{COLLECTION_NAME}`; replace mode without a safety set; median of {REPEATS}, interleaved",
        f"- load average (1 / 5 / 15 min) before {load}, after {load_after}",
        "",
        "| format | full restore s | collection restore s | × full | rows its COPY got |",
        "|---|---:|---:|---:|---:|",
    ]
    for runs in report.runs:
        lines.append(
            f"| {runs.label} | {statistics.median(runs.full_seconds):.2f} | {statistics.median(runs.collection_seconds):.2f} "
            f"| {runs.ratio:.2f} | {runs.rows_copied} of {report.rows} |"
        )
    lines.append("")
    lines += [
        f"- {runs.label}: collection restore <= {TARGET_RATIO} x the full restore: {runs.ratio:.2f} x -> "
        f"{verdict(runs.ratio <= TARGET_RATIO)}"
        for runs in report.runs
    ]
    return lines
