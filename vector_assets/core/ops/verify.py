"""The verify command: check a set's files against its manifest (present, sha256, row counts).

"Verify" means these file checks, nothing else; restoring a set to prove it is the drill.
Legacy sets have no manifest, so only presence is checked and their row counts are reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vector_assets.core.errors import BackupFileError
from vector_assets.core.hashing import sha256_of_stream
from vector_assets.core.sets.catalog import BackupSet
from vector_assets.core.sets.copies import choose_copy
from vector_assets.core.sets.formats import rows_in
from vector_assets.core.sets.manifest import FilePart
from vector_assets.core.sets.roots import Root, SetFolder

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
    sizes = [backup_set.folder.size(name) for name, _ in files]
    missing = [name for (name, _), size in zip(files, sizes) if size is None]
    if missing:
        return CheckOutcome(check, table, False, f"{', '.join(missing)} missing from {backup_set.folder}")
    label = files[0][0] if len(files) == 1 else f"{files[0][0]} and {len(files) - 1} more parts"
    if check == FILE_PRESENT:
        return CheckOutcome(check, table, True, f"{label} {'is' if len(files) == 1 else 'are'} present ({sum(sizes)} bytes)")
    if check == SHA256_MATCHES:
        return _check_sha256(backup_set.folder, table, files, check)
    if check == ROW_COUNT_MATCHES:
        entry = backup_set.manifest.tables.get(table) if backup_set.manifest else None
        return _check_rows(backup_set.folder, table, label, files, entry.rows if entry else None, check)
    raise ValueError(f"unknown check {check!r}")


def _sha256_of(folder: SetFolder, name: str) -> str:
    with folder.open_reader(name) as handle:
        return sha256_of_stream(handle)


def _check_sha256(folder: SetFolder, table: str, files: list[tuple[str, FilePart | None]], check: str) -> CheckOutcome:
    (name, piece), *_ = files
    if piece is None:
        return CheckOutcome(
            check, table, True, f"no checksum recorded: counted rows only ({name} is from a legacy set)",
            None, _sha256_of(folder, name), warning=True,
        )
    for name, piece in files:
        actual = _sha256_of(folder, name)
        if actual != piece.sha256:
            return CheckOutcome(
                check, table, False, f"{name} sha256 {actual} does not match the manifest's {piece.sha256}",
                piece.sha256, actual,
            )
    if len(files) == 1:
        return CheckOutcome(check, table, True, f"{name} sha256 matches the manifest", piece.sha256, actual)
    return CheckOutcome(check, table, True, f"the sha256 of each of the {len(files)} parts matches the manifest")


def _check_rows(
    folder: SetFolder, table: str, label: str, files: list[tuple[str, FilePart | None]], expected: int | None, check: str
) -> CheckOutcome:
    try:
        actual = sum(rows_in(folder, name) for name, _ in files)
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
