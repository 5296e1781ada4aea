"""Encryption at rest in ``make bench``: encrypted against plain backup and restore of the same
table, for ``csv.zst`` and ``pgcopy.zst``, in one run, with each child's own CPU seconds (all its
threads: COPY, compression, encryption, hashing, storage) and peak RSS.

Each step is also measured with the CPU meter (``benchmarks.cpu_floor``), in the child around the
backup or restore alone (the interpreter's start is no part of it, as of the 1.15 x target): the
CPU seconds of the child and of PostgreSQL's backends, the longest thread, and so the step's CPU
floor on this machine's cores, against the same wall time. An encrypted step
whose wall time is at most 1.10 x its floor runs as fast as these cores allow: what is left of
its ratio to the plain step is the machine's (the extra CPU seconds of encrypting and hashing),
and the floors on 4 and 8 cores estimate the ratio there. On a shared machine the floor counting
the other processes' CPU meanwhile says whether the cores were the limit (wall / it near 1.0).

Targets (issue #28), reported as MET or MISSED, never raised: an encrypted backup or restore
takes at most 1.15 x the wall time of the plain one, and memory stays flat: the peak RSS of an
encrypted backup and of an encrypted restore of 4N rows (the 4N database of the memory check)
is at most 1.1 x that of N rows. Each encrypting or decrypting stream holds a few MiB whatever
the table's size (a table in parts has one stream per part).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.common import (
    own_peak_rss_kb,
    MEMORY_FACTOR,
    REPEATS,
    RESTORE_TIMESTAMP,
    Runs,
    fresh_folder,
    log,
    verdict,
    verify_restored,
)
from benchmarks.cpu_floor import CpuMeter, CpuUse, postmaster_pid

ENCRYPTION_FORMATS = ("csv.zst", "pgcopy.zst")
TARGET_TIME_RATIO = 1.15
TARGET_RSS_RATIO = 1.1
TARGET_FLOOR_RATIO = 1.10
STEPS = ("backup", "restore")


@dataclass
class Mode:
    """One format, plain or encrypted: its backups' and restores' wall and CPU seconds, peak RSS."""

    label: str
    backup: Runs
    restore: Runs
    backup_cpu: list[float] = field(default_factory=list)
    restore_cpu: list[float] = field(default_factory=list)
    rss_kb: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STEPS, 0))  # the step's largest, at N
    rss_4n_kb: dict[str, int] = field(default_factory=dict)  # encrypted modes, one run of each step at 4N
    bytes: int = 0
    cpu_use: dict[str, list[CpuUse]] = field(default_factory=lambda: {step: [] for step in STEPS})  # the meter's, per run


@dataclass
class EncryptionReport:
    rows: int
    modes: dict[tuple[str, bool], Mode]  # (format, encrypted)


# --- children: one operation each, in a fresh interpreter --------------------------------------


def child_encryption(operation: str, dsn: str, root: str, fmt: str, timestamp: str | None) -> int:
    """One backup or restore, with the recipients and identity the parent put in the
    environment (none: plain); prints wall and CPU seconds, the CPU meter's reading of the
    operation alone, and peak RSS as JSON."""
    from vector_assets import settings

    with CpuMeter(postmaster=postmaster_pid(dsn)).step() as reading:
        size, seconds = _operation(operation, dsn, root, fmt, timestamp, settings)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime, "bytes": size,
                      "max_rss_kb": own_peak_rss_kb(), "cpu_use": asdict(reading.use)}))
    return 0


def _operation(operation: str, dsn: str, root: str, fmt: str, timestamp: str | None, settings) -> tuple[int, float]:
    started = time.perf_counter()
    if operation == "backup":
        from vector_assets.core.ops.backup import BackupRequest, run_backup

        result = run_backup(BackupRequest(dsn=dsn, root=root, format=fmt, parts=settings.part_policy(),
                                          timestamp=timestamp, encryption=settings.encryption_keys()))
        size = result.total_bytes
    else:
        from vector_assets.core.ops.restore import RestoreRequest, run_restore

        run_restore(RestoreRequest(target_dsn=dsn, root=root, timestamp=timestamp, truncate_before_restore=True,
                                   safety_backup=False, index_builds=settings.index_build_settings(),
                                   encryption=settings.encryption_keys()))
        size = 0
    return size, time.perf_counter() - started


# --- the parent --------------------------------------------------------------------------------


def measure_encryption(dsn: str, rows: int, dims: int, work: Path, dsn4: str | None = None) -> EncryptionReport:
    environments = {False: _environment(None, None), True: _environment(*_new_key(work))}
    modes = {
        (fmt, encrypted): Mode(f"{fmt}{' encrypted' if encrypted else ''}", Runs("backup"), Runs("restore"))
        for fmt in ENCRYPTION_FORMATS for encrypted in (False, True)
    }
    for repetition in range(1, REPEATS + 1):
        log(f"encryption: backup repetition {repetition}/{REPEATS}")
        for (fmt, encrypted), mode in modes.items():
            root = fresh_folder(work / "encryption")
            report = _child(environments[encrypted], "backup", dsn, root, fmt)
            mode.cpu_use["backup"].append(CpuUse(**report["cpu_use"]))
            shutil.rmtree(root)
            mode.backup.seconds.append(report["seconds"])
            mode.backup_cpu.append(report["cpu_seconds"])
            mode.rss_kb["backup"], mode.bytes = max(mode.rss_kb["backup"], report["max_rss_kb"]), report["bytes"]
    roots = {}
    for (fmt, encrypted) in modes:
        roots[fmt, encrypted] = fresh_folder(work / f"encryption_{fmt.replace('.', '_')}_{int(encrypted)}")
        _child(environments[encrypted], "backup", dsn, roots[fmt, encrypted], fmt, RESTORE_TIMESTAMP)
    for repetition in range(1, REPEATS + 1):
        log(f"encryption: restore repetition {repetition}/{REPEATS}")
        for key, mode in modes.items():
            report = _child(environments[key[1]], "restore", dsn, roots[key], key[0], RESTORE_TIMESTAMP)
            mode.cpu_use["restore"].append(CpuUse(**report["cpu_use"]))
            verify_restored(dsn, rows, dims, f"the {mode.label} restore")
            mode.restore.seconds.append(report["seconds"])
            mode.restore_cpu.append(report["cpu_seconds"])
            mode.rss_kb["restore"] = max(mode.rss_kb["restore"], report["max_rss_kb"])
    for root in roots.values():
        shutil.rmtree(root, ignore_errors=True)
    if dsn4 is not None:
        for fmt in ENCRYPTION_FORMATS:
            _measure_memory_at_4n(modes[fmt, True], environments[True], dsn4, rows * MEMORY_FACTOR, dims, fmt, work)
    return EncryptionReport(rows, modes)


def _measure_memory_at_4n(mode: Mode, environment: dict[str, str], dsn4: str, rows4: int, dims: int, fmt: str,
                          work: Path) -> None:
    """One encrypted backup and one restore of the 4N database: their peak RSS."""
    log(f"encryption: memory, one {mode.label} backup and restore of {rows4} rows")
    root = fresh_folder(work / "encryption4")
    mode.rss_4n_kb["backup"] = _child(environment, "backup", dsn4, root, fmt, RESTORE_TIMESTAMP)["max_rss_kb"]
    mode.rss_4n_kb["restore"] = _child(environment, "restore", dsn4, root, fmt, RESTORE_TIMESTAMP)["max_rss_kb"]
    verify_restored(dsn4, rows4, dims, f"the {mode.label} restore of {rows4} rows")
    shutil.rmtree(root, ignore_errors=True)


def _new_key(work: Path) -> tuple[str, Path]:
    from pyrage import x25519

    identity = x25519.Identity.generate()
    identity_file = work / "bench-identity.txt"
    identity_file.write_text(f"{identity}\n")
    identity_file.chmod(0o600)
    return str(identity.to_public()), identity_file


def _environment(recipient: str | None, identity_file: Path | None) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("VECTOR_ASSETS_ENCRYPT_TO", "VECTOR_ASSETS_IDENTITY_FILE")}
    if recipient is not None:
        environment.update(VECTOR_ASSETS_ENCRYPT_TO=recipient, VECTOR_ASSETS_IDENTITY_FILE=str(identity_file))
    return environment


def _child(environment: dict[str, str], operation: str, dsn: str, root: Path, fmt: str, timestamp: str | None = None) -> dict:
    command = [sys.executable, "-m", "benchmarks", "--child-encryption", operation, "--dsn", dsn, "--root", str(root),
               "--encryption-format", fmt]
    if timestamp:
        command += ["--timestamp", timestamp]
    completed = subprocess.run(command, capture_output=True, text=True, env=environment)
    if completed.returncode != 0:
        raise RuntimeError(f"the {operation} child failed ({completed.returncode}): {completed.stderr.strip()}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def format_encryption(report: EncryptionReport) -> list[str]:
    lines = [f"Encryption at rest (age, one recipient), {report.rows:,} embeddings: median of {REPEATS}, "
             "CPU seconds of our process (all its threads)"]
    for fmt in ENCRYPTION_FORMATS:
        plain, encrypted = report.modes[fmt, False], report.modes[fmt, True]
        for step, plain_runs, encrypted_runs, plain_cpu, encrypted_cpu in (
            ("backup", plain.backup, encrypted.backup, plain.backup_cpu, encrypted.backup_cpu),
            ("restore", plain.restore, encrypted.restore, plain.restore_cpu, encrypted.restore_cpu),
        ):
            ratio = encrypted_runs.median / plain_runs.median
            lines.append(
                f"  {fmt} {step}: plain {plain_runs.median:.2f} s ({_median(plain_cpu):.2f} CPU s), encrypted "
                f"{encrypted_runs.median:.2f} s ({_median(encrypted_cpu):.2f} CPU s): {ratio:.2f} x "
                f"(target <= {TARGET_TIME_RATIO}: {verdict(ratio <= TARGET_TIME_RATIO)})"
            )
        lines.append(
            f"  {fmt} peak RSS, backup / restore: plain {_mib(plain.rss_kb['backup'])} / {_mib(plain.rss_kb['restore'])} MiB, "
            f"encrypted {_mib(encrypted.rss_kb['backup'])} / {_mib(encrypted.rss_kb['restore'])} MiB; "
            f"set {plain.bytes / 1e6:.1f} MB plain, {encrypted.bytes / 1e6:.1f} MB encrypted"
        )
        lines += [_memory_line(fmt, step, encrypted, report.rows) for step in STEPS if step in encrypted.rss_4n_kb]
    lines.append(f"Against the CPU floor (the backup or restore in its child: wall, CPU s of the child and PostgreSQL; median of {REPEATS}; "
                 "the 4- and 8-core figures are estimates: the same CPU seconds spread as the floor assumes)")
    for fmt in ENCRYPTION_FORMATS:
        for step in STEPS:
            lines += _floor_lines(fmt, step, report.modes[fmt, False], report.modes[fmt, True])
    return lines


def _floor_lines(fmt: str, step: str, plain: Mode, encrypted: Mode) -> list[str]:
    """Each mode's wall against its floor, and whether the encrypted one is as fast as the cores
    allow (then its ratio to plain is the floors' ratio, which more cores would change)."""
    lines = []
    for mode in (plain, encrypted):
        uses = mode.cpu_use[step]
        wall, floor = _median([use.wall_seconds for use in uses]), _median([use.floor_seconds for use in uses])
        over_floor = _median([use.wall_seconds / use.floor_seconds for use in uses if use.floor_seconds])
        over_shared = _median([use.wall_seconds / use.floor_with_others for use in uses if use.floor_with_others])
        lines.append(
            f"  {mode.label} {step}: wall {wall:.2f} s, floor on {uses[0].cores} cores {floor:.2f} s, "
            f"wall / floor {over_floor:.2f}; CPU s ours {_median([use.ours for use in uses]):.2f} / PostgreSQL "
            f"{_median([use.postgres for use in uses]):.2f}, longest thread {_median([use.longest_thread for use in uses]):.2f}; "
            f"others' CPU s meanwhile {_median([use.others for use in uses]):.2f}, wall / floor with theirs {over_shared:.2f}"
        )
    ratio = _median([use.wall_seconds / use.floor_seconds for use in encrypted.cpu_use[step] if use.floor_seconds])
    floors = {cores: _floor_ratio(plain.cpu_use[step], encrypted.cpu_use[step], cores)
              for cores in (plain.cpu_use[step][0].cores, 4, 8)}
    lines.append(
        f"  {fmt} encrypted {step} <= {TARGET_FLOOR_RATIO} x its CPU floor: {ratio:.2f} x -> "
        f"{verdict(ratio <= TARGET_FLOOR_RATIO)}; encrypted / plain floor "
        + ", ".join(f"{value:.2f} x on {cores} cores" + ("" if index == 0 else " (estimate)")
                    for index, (cores, value) in enumerate(floors.items()))
    )
    return lines


def _floor_ratio(plain: list[CpuUse], encrypted: list[CpuUse], cores: int) -> float:
    return _median([use.floor_on(cores) for use in encrypted]) / _median([use.floor_on(cores) for use in plain])


def _memory_line(fmt: str, step: str, encrypted: Mode, rows: int) -> str:
    at_n, at_4n = encrypted.rss_kb[step], encrypted.rss_4n_kb[step]
    ratio = at_4n / at_n
    return (f"  {fmt} encrypted {step} peak RSS: {_mib(at_n)} MiB at N = {rows:,}, {_mib(at_4n)} MiB at 4N = "
            f"{rows * MEMORY_FACTOR:,}: {ratio:.2f} x (target <= {TARGET_RSS_RATIO}: {verdict(ratio <= TARGET_RSS_RATIO)})")


def _mib(kilobytes: int) -> str:
    return f"{kilobytes / 1024:.0f}"


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]
