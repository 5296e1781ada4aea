"""The verify command: check a set's files against its manifest (present, sha256, row counts).

"Verify" means these file checks, nothing else; restoring a set to prove it is the drill.
Legacy sets have no manifest, so only presence is checked and their row counts are reported.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from vector_assets.core.hashing import sha256_of_stream
from vector_assets.core.sets.catalog import BackupSet
from vector_assets.core.sets.copies import choose_copy
from vector_assets.core.sets.roots import Root
from vector_assets.core.sets.csv_files import rows_in

FILE_PRESENT = "file_present"
SHA256_MATCHES = "sha256_matches_manifest"
ROW_COUNT_MATCHES = "row_count_matches_manifest"
CHECK_NAMES = (FILE_PRESENT, SHA256_MATCHES, ROW_COUNT_MATCHES)


@dataclass(frozen=True)
class CheckOutcome:
    check: str
    table: str
    passed: bool
    message: str
    expected: str | int | None = None
    actual: str | int | None = None
    warning: bool = False  # nothing failed, but nothing could be compared either


def check_table_file(backup_set: BackupSet, table: str, check: str) -> CheckOutcome:
    """Run one named check for one table of a set."""
    name = backup_set.file_name(table)
    size = backup_set.folder.size(name)
    if size is None:
        return CheckOutcome(check, table, False, f"{name} is missing from {backup_set.folder}")
    if check == FILE_PRESENT:
        return CheckOutcome(check, table, True, f"{name} is present ({size} bytes)")
    entry = backup_set.manifest.tables.get(table) if backup_set.manifest else None
    if check == SHA256_MATCHES:
        with backup_set.folder.open_reader(name) as handle:
            actual = sha256_of_stream(handle)
        return _check_sha256(table, name, entry.sha256 if entry else None, actual, check)
    if check == ROW_COUNT_MATCHES:
        return _check_rows(backup_set, table, entry.rows if entry else None, check)
    raise ValueError(f"unknown check {check!r}")


def _check_sha256(table: str, file_name: str, expected: str | None, actual: str, check: str) -> CheckOutcome:
    if expected is None:
        return CheckOutcome(
            check, table, True, f"no checksum recorded: counted rows only ({file_name} is from a legacy set)",
            None, actual, warning=True,
        )
    if expected != actual:
        return CheckOutcome(
            check, table, False, f"{file_name} sha256 {actual} does not match the manifest's {expected}",
            expected, actual,
        )
    return CheckOutcome(check, table, True, f"{file_name} sha256 matches the manifest", expected, actual)


def _check_rows(backup_set: BackupSet, table: str, expected: int | None, check: str) -> CheckOutcome:
    name = backup_set.file_name(table)
    try:
        actual = rows_in(backup_set.folder, name)
    except (csv.Error, UnicodeDecodeError) as exc:
        return CheckOutcome(check, table, False, f"{name} is not valid CSV: {exc}", expected, None)
    if expected is None:
        return CheckOutcome(check, table, True, f"legacy set: {name} has {actual} rows", None, actual)
    if expected != actual:
        return CheckOutcome(
            check, table, False, f"{name} has {actual} CSV rows but the manifest says {expected}",
            expected, actual,
        )
    return CheckOutcome(check, table, True, f"{name} has the manifest's {expected} rows", expected, actual)


def verify_set(backup_set: BackupSet) -> list[CheckOutcome]:
    return [check_table_file(backup_set, table, check) for table in backup_set.tables for check in CHECK_NAMES]


@dataclass(frozen=True)
class VerifyRequest:
    """Which set to verify: a partition key, or None for the newest set."""

    root: Root | Path | str
    key: str | None = None
    offsite_root: Root | Path | str | None = None  # verify the offsite copy when the local one is missing or damaged


@dataclass(frozen=True)
class VerifyResult:
    backup_set: BackupSet
    outcomes: list[CheckOutcome]
    read_from_offsite: str | None = None

    @property
    def passed(self) -> bool:
        return all(outcome.passed for outcome in self.outcomes)


def run_verify(request: VerifyRequest) -> VerifyResult:
    chosen = choose_copy(request.root, request.offsite_root, request.key)
    return VerifyResult(chosen.backup_set, verify_set(chosen.backup_set), chosen.note)
