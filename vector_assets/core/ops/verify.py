"""The verify command: check a set's files against its manifest (present, sha256, row counts).

"Verify" means these file checks, nothing else; restoring a set to prove it is the drill.
Legacy sets have no manifest, so only presence is checked and their row counts are reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vector_assets.core.errors import BackupFileError
from vector_assets.core.hashing import sha256_of_file
from vector_assets.core.sets.catalog import BackupSet, SetCatalog
from vector_assets.core.sets.formats import count_rows_in_file
from vector_assets.core.sets.manifest import FilePart

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
    """Run one named check for one table of a set (all its files, when it is in parts)."""
    files = backup_set.data_files(table)
    missing = [path.name for path, _ in files if not path.is_file()]
    if missing:
        return CheckOutcome(check, table, False, f"{', '.join(missing)} missing from {backup_set.folder}")
    label = files[0][0].name if len(files) == 1 else f"{files[0][0].name} and {len(files) - 1} more parts"
    if check == FILE_PRESENT:
        size = sum(path.stat().st_size for path, _ in files)
        return CheckOutcome(check, table, True, f"{label} {'is' if len(files) == 1 else 'are'} present ({size} bytes)")
    if check == SHA256_MATCHES:
        return _check_sha256(table, files, check)
    if check == ROW_COUNT_MATCHES:
        entry = backup_set.manifest.tables.get(table) if backup_set.manifest else None
        return _check_rows(table, label, files, entry.rows if entry else None, check)
    raise ValueError(f"unknown check {check!r}")


def _check_sha256(table: str, files: list[tuple[Path, FilePart | None]], check: str) -> CheckOutcome:
    (path, piece), *_ = files
    if piece is None:
        return CheckOutcome(
            check, table, True, f"no checksum recorded: counted rows only ({path.name} is from a legacy set)",
            None, sha256_of_file(path), warning=True,
        )
    for path, piece in files:
        actual = sha256_of_file(path)
        if actual != piece.sha256:
            return CheckOutcome(
                check, table, False, f"{path.name} sha256 {actual} does not match the manifest's {piece.sha256}",
                piece.sha256, actual,
            )
    if len(files) == 1:
        return CheckOutcome(check, table, True, f"{path.name} sha256 matches the manifest", piece.sha256, actual)
    return CheckOutcome(check, table, True, f"the sha256 of each of the {len(files)} parts matches the manifest")


def _check_rows(
    table: str, label: str, files: list[tuple[Path, FilePart | None]], expected: int | None, check: str
) -> CheckOutcome:
    try:
        actual = sum(count_rows_in_file(path) for path, _ in files)
    except BackupFileError as exc:
        return CheckOutcome(check, table, False, str(exc), expected, None)
    if expected is None:
        return CheckOutcome(check, table, True, f"legacy set: {label} has {actual} rows", None, actual)
    if expected != actual:
        return CheckOutcome(
            check, table, False, f"{label} has {actual} rows but the manifest says {expected}", expected, actual,
        )
    return CheckOutcome(check, table, True, f"{label} has the manifest's {expected} rows", expected, actual)


def verify_set(backup_set: BackupSet) -> list[CheckOutcome]:
    return [check_table_file(backup_set, table, check) for table in backup_set.tables for check in CHECK_NAMES]


@dataclass(frozen=True)
class VerifyRequest:
    """Which set to verify: a partition key, or None for the newest set."""

    root: Path
    key: str | None = None


@dataclass(frozen=True)
class VerifyResult:
    backup_set: BackupSet
    outcomes: list[CheckOutcome]

    @property
    def passed(self) -> bool:
        return all(outcome.passed for outcome in self.outcomes)


def run_verify(request: VerifyRequest) -> VerifyResult:
    backup_set = SetCatalog(request.root).get_or_newest(request.key)
    return VerifyResult(backup_set, verify_set(backup_set))
