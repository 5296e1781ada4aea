"""The object-store section of ``make bench``: our backup and restore against a local S3 server.

At N rows, in one run, against the same moto server on 127.0.0.1 (which accepts uploads at
only a few tens of MB/s, so these figures say how well the COPY and the upload overlap, not
how fast S3 is):

- A: our backup to local disk;
- B: an upload of the same finished files alone, with the same library and part settings;
- C: our streamed backup to S3;
- our restore from S3 against our restore from local disk;
- peak RSS of C at 4N rows against N rows.

Targets: C <= 1.10 x max(A, B, C's CPU floor); C <= 0.85 x (A + B); restore from S3 <= 1.3 x from disk;
RSS(4N) <= 1.2 x RSS(N).

Every upload (B or C) starts against an empty bucket, and B and C take turns going first: moto
keeps objects in its own memory and slows as it fills, which would otherwise favour whichever
ran first. The CPU seconds of each process (ours, PostgreSQL, the S3 server) are counted from
/proc (``benchmarks.cpu_floor``), because here all three share the machine's cores: C can be no
faster than its CPU seconds divided by the cores, or its longest thread, whichever is larger.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import log, run_child_process, run_ours_restore_at
from benchmarks.cpu_floor import CpuMeter, CpuUse, postmaster_pid

TARGET_FLOOR_RATIO = 1.10
TARGET_OVERLAP_SUM = 0.85
TARGET_RESTORE_RATIO = 1.3
TARGET_RSS_RATIO = 1.2
REPEATS = 3  # odd, so the last repetition uploads C last and its set is there to restore
CHUNK_BYTES = 1 << 20
S3_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")


@dataclass
class ObjectStoreReport:
    rows: int
    disk_backup: float  # A
    upload_only: float  # B
    s3_backup: float  # C
    disk_restore: float
    s3_restore: float
    rss_n_kb: int
    rss_4n_kb: int
    set_bytes: int
    cpu: dict[str, CpuUse] = field(default_factory=dict)  # "A", "B", "C": each step's median run
    completing: float = 0.0  # B's time after its last byte; C ends with the same CompleteMultipartUpload

    @property
    def overlap_before_completing(self) -> float:
        """C against max(A, B) with B's completion time taken out of both uploads. An estimate:
        C's own completion is not timed, and moto's varies by seconds from one upload to the next."""
        return (self.s3_backup - self.completing) / max(self.disk_backup, self.upload_only - self.completing)

    @property
    def c_bound(self) -> float:
        """The least C could take: the local backup, the upload alone, or C's own CPU floor."""
        return max(self.disk_backup, self.upload_only, self.cpu["C"].floor_seconds)

    @property
    def c_bound_with_completion(self) -> float:
        """C's bound when the S3 server's CompleteMultipartUpload, which runs on one core after the
        last byte with nothing to overlap, is counted as the serial part it is: the rest of C's CPU
        over the cores, plus the completion. An estimate: B's completion stands for C's."""
        parallel = max(self.cpu["C"].total - self.completing, 0.0) / self.cpu["C"].cores
        return max(self.disk_backup, self.upload_only, parallel + self.completing)

    def c_bound_on(self, cores: int) -> float:
        """An estimate of C on ``cores`` cores if every step ran at its floor there."""
        return max(self.cpu[step].floor_on(cores) for step in ("A", "B", "C"))

    @property
    def checks(self) -> list[tuple[str, float, float]]:
        """(what, measured ratio, target) for each target."""
        a, b, c = self.disk_backup, self.upload_only, self.s3_backup
        return [
            ("C / max(A, B, C's CPU floor)", c / self.c_bound, TARGET_FLOOR_RATIO),
            ("C / (A + B)", c / (a + b), TARGET_OVERLAP_SUM),
            ("restore S3 / restore disk", self.s3_restore / self.disk_restore, TARGET_RESTORE_RATIO),
            ("S3 backup RSS 4N / N", self.rss_4n_kb / self.rss_n_kb, TARGET_RSS_RATIO),
        ]


@contextmanager
def local_s3() -> Iterator[tuple[str, int]]:
    """A moto S3 server on 127.0.0.1 and a bucket; yields the bucket's URL and the server's pid.
    The product reaches it through AWS_ENDPOINT_URL, as it would reach MinIO.

    The server runs in its own process: it keeps every object in memory, and a child forked
    from a large parent starts with the parent's peak RSS in its own ``ru_maxrss``.
    """
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    saved = {name: os.environ.get(name) for name in S3_VARIABLES}
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-secret",
                      AWS_REGION="us-east-1")
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        create_bucket_when_up(endpoint, bucket)
        yield f"s3://{bucket}", server.pid
    finally:
        server.terminate()
        server.wait(30)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def create_bucket_when_up(endpoint: str, bucket: str) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    deadline = time.monotonic() + 30
    while True:
        try:
            client.create_bucket(Bucket=bucket)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def upload_files(folder: Path, url: str) -> Upload:
    """B: the finished files of a set, uploaded with obstore's multipart writer, as ours uploads."""
    import obstore

    from vector_assets.core.sets.object_store import PART_BYTES, PARTS_IN_FLIGHT, open_store

    store = open_store(url)
    started, cpu_started, completing = time.perf_counter(), time.process_time(), 0.0
    for path in sorted(p for p in folder.iterdir() if not p.name.endswith(".json")):
        with open(path, "rb") as source:
            target = obstore.open_writer(store, path.name, buffer_size=PART_BYTES, max_concurrency=PARTS_IN_FLIGHT)
            while chunk := source.read(CHUNK_BYTES):
                target.write(chunk)
            last_byte = time.perf_counter()
            target.close()
            completing += time.perf_counter() - last_byte
    return Upload(time.perf_counter() - started, time.process_time() - cpu_started, completing)


@dataclass(frozen=True)
class Upload:
    seconds: float
    cpu_seconds: float
    completing_seconds: float  # after the last byte: the parts still in flight, and CompleteMultipartUpload


def empty_bucket(url: str) -> None:
    """Delete every object, so the next upload meets the server as the first one did."""
    import obstore

    from vector_assets.core.sets.object_store import open_store

    store = open_store(url)
    keys = [meta["path"] for batch in obstore.list(store) for meta in batch]
    if keys:
        obstore.delete(store, keys)


def measure_object_store(dsn: str, dsn4: str, rows: int, work: Path) -> ObjectStoreReport:
    disk_root = work / "s3_section_disk"
    seconds: dict[str, list[float]] = {"A": [], "B": [], "C": []}
    cpu: dict[str, list[CpuUse]] = {"A": [], "B": [], "C": []}
    completing: list[float] = []
    with local_s3() as (bucket, s3_server_pid):
        meter = CpuMeter(postmaster=postmaster_pid(dsn), s3_server=s3_server_pid)
        rss_n, c_timestamp = 0, ""
        for repetition in range(1, REPEATS + 1):
            uploads = ("B", "C") if repetition % 2 else ("C", "B")
            log(f"object store: repetition {repetition}/{REPEATS} (A disk backup, then {' and '.join(uploads)})")
            shutil.rmtree(disk_root, ignore_errors=True)
            with meter.step() as reading:
                a = backup_child(dsn, str(disk_root), run_child_process)
            check_rows_of(a, rows)
            record(seconds, cpu, "A", a["seconds"], reading.use)
            for upload in uploads:
                empty_bucket(bucket)
                if upload == "B":
                    with meter.step() as reading:
                        b = upload_files(disk_root / "vector_bak", f"{bucket}/upload-only")
                    record(seconds, cpu, "B", b.seconds, reading.use)
                    completing.append(b.completing_seconds)
                    continue
                with meter.step() as reading:
                    c = backup_child(dsn, f"{bucket}/streamed", run_child_process)
                check_rows_of(c, rows)
                record(seconds, cpu, "C", c["seconds"], reading.use)
                rss_n = max(rss_n, c["max_rss_kb"])
                c_timestamp, set_bytes = c["timestamp"], c["bytes"]
        log("object store: restores from local disk and from S3")
        disk_restore = run_ours_restore_at(dsn, str(disk_root), a["timestamp"])
        s3_restore = run_ours_restore_at(dsn, f"{bucket}/streamed", c_timestamp)
        log(f"object store: memory, one streamed backup of {4 * rows} rows")
        empty_bucket(bucket)
        c4 = backup_child(dsn4, f"{bucket}/streamed-4n", run_child_process)
    shutil.rmtree(disk_root, ignore_errors=True)
    return ObjectStoreReport(
        rows=rows, disk_backup=statistics.median(seconds["A"]), upload_only=statistics.median(seconds["B"]),
        s3_backup=statistics.median(seconds["C"]), disk_restore=disk_restore, s3_restore=s3_restore,
        rss_n_kb=rss_n, rss_4n_kb=c4["max_rss_kb"], set_bytes=set_bytes,
        cpu={step: median_cpu(readings) for step, readings in cpu.items()},
        completing=statistics.median(completing),
    )


def record(seconds: dict, cpu: dict, step: str, wall: float, used: CpuUse) -> None:
    seconds[step].append(wall)
    cpu[step].append(used)


def median_cpu(readings: list[CpuUse]) -> CpuUse:
    """The reading of the median run by wall time, so its parts belong together."""
    return sorted(readings, key=lambda use: use.wall_seconds)[len(readings) // 2]


def backup_child(dsn: str, root: str, run_child_process) -> dict:
    report, _ = run_child_process([sys.executable, "-m", "benchmarks", "--child", "--dsn", dsn, "--root", root])
    return report


def check_rows_of(report: dict, rows: int) -> None:
    if report["rows"].get("langchain_pg_embedding") != rows:
        raise SystemExit(f"the backup holds {report['rows']} rows, expected {rows} embeddings")


def format_object_store(report: ObjectStoreReport) -> list[str]:
    mb = report.set_bytes / 1_000_000
    lines = [
        f"## Object store (local moto S3 server, obstore), {report.rows:,} rows, set of {mb:,.0f} MB, median of {REPEATS}",
        f"  A  our backup to local disk          {report.disk_backup:7.2f} s  ({mb / report.disk_backup:6.1f} MB/s)",
        f"  B  upload of those files alone       {report.upload_only:7.2f} s  ({mb / report.upload_only:6.1f} MB/s)",
        f"  C  our streamed backup to S3         {report.s3_backup:7.2f} s  ({mb / report.s3_backup:6.1f} MB/s)",
        f"  our restore from local disk          {report.disk_restore:7.2f} s",
        f"  our restore from S3                  {report.s3_restore:7.2f} s",
        f"  peak RSS of C: {report.rss_n_kb / 1024:.0f} MiB at N rows, {report.rss_4n_kb / 1024:.0f} MiB at 4N rows",
        *[f"  {step}: {used.describe()}" for step, used in report.cpu.items()],
        f"  C's bound: max(A, B, C's CPU floor) = {report.c_bound:.2f} s; C / bound = {report.s3_backup / report.c_bound:.2f}; "
        f"estimated bound on 4 cores {report.c_bound_on(4):.2f} s, on 8 cores {report.c_bound_on(8):.2f} s",
        f"  B after its last byte (parts in flight, CompleteMultipartUpload): {report.completing:.2f} s; "
        f"without it in B and C: (C - it) / max(A, B - it) = {report.overlap_before_completing:.2f}",
        f"  with the server's completion as C's serial part: bound {report.c_bound_with_completion:.2f} s, "
        f"C / bound = {report.s3_backup / report.c_bound_with_completion:.2f} (an estimate: B's completion stands for C's)",
    ]
    for what, ratio, target in report.checks:
        lines.append(f"  {what:28} {ratio:5.2f}  target <= {target:.2f}  {'met' if ratio <= target else 'NOT met'}")
    return lines
