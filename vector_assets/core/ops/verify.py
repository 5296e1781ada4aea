"""The verify command: check a set's files against its manifest (present, sha256, row counts).

"Verify" means these file checks, nothing else; restoring a set to prove it is the drill.
Legacy sets have no manifest, so only presence is checked and their row counts are reported.
A set's files are its data files and, when it has them, its row index and an increment's
deleted keys (zstd text, one line a row). An increment restores only on top of its chain, so
each check covers every set of the chain, base first, and a missing or damaged ancestor fails
it, named.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from vector_assets.core.errors import BackupFileError, BrokenChainError, IdentityError
from vector_assets.core.hashing import READ_CHUNK_BYTES, HashingReader
from vector_assets.core.sets.age_streams import decrypting
from vector_assets.core.sets.catalog import BackupSet
from vector_assets.core.sets.chains import chain_of
from vector_assets.core.sets.copies import choose_copy
from vector_assets.core.sets.encryption import IdentityFile
from vector_assets.core.sets.formats import CSV_ZST, DecodingReader, count_rows_in_stream, rows_in
from vector_assets.core.sets.manifest import FilePart, RowIndex
from vector_assets.core.sets.row_index import lines_of
from vector_assets.core.sets.storage import Root, SetFolder
from vector_assets.core.units import count_of, human_size

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


StoredFile = tuple[str, FilePart | RowIndex | None]
Counter = Callable[[str, BinaryIO], int]  # (file name, its stored bytes) -> the rows or lines it holds


@dataclass(frozen=True)
class FileRead:
    """One pass over a stored file: the sha256 of its bytes and, when it was asked for, what
    it holds (rows, or lines), or what stopped the count."""

    sha256: str
    counted: bool
    count: int | None = None
    failure: Exception | None = None

    def rows(self) -> int:
        """The count, or the error counting raised (a damaged file's, as a row check reports it)."""
        if self.failure is not None:
            raise self.failure
        assert self.count is not None
        return self.count


class FileReads:
    """The stored files of one verification, each read once: the sha256 check and the row count
    check both need every byte of a file, so one pass hashes the bytes and counts what they hold."""

    def __init__(self) -> None:
        self._done: dict[str, FileRead] = {}

    def read(self, folder: SetFolder, name: str, counter: Counter | None) -> FileRead:
        place = str(folder.locator(name))
        known = self._done.get(place)
        if known is None or (counter is not None and not known.counted):
            known = self._done[place] = read_file_once(folder, name, counter)
        return known

    def data_file(self, folder: SetFolder, name: str) -> FileRead:
        """A data file's sha256 and rows (a legacy set's metadata, which its checks then reuse)."""
        return self.read(folder, name, count_rows_in_stream)


def read_file_once(folder: SetFolder, name: str, counter: Counter | None) -> FileRead:
    """The file's sha256 and, with a counter, its count, from one pass (the rest of the file
    is hashed after the count stops, at a trailer or a damaged byte)."""
    with folder.open_reader(name) as handle:
        reader = HashingReader(handle)
        count, failure = None, None
        if counter is not None:
            try:
                count = counter(name, reader)
            except Exception as error:  # reported by the row check; the sha256 check still compares
                failure = error
        while reader.read(READ_CHUNK_BYTES):
            pass
    return FileRead(reader.hexdigest(), counter is not None, count, failure)


def count_lines_in_stream(name: str, stream: BinaryIO) -> int:
    """Lines in a zstd text file of a set (a row index, deleted keys)."""
    return sum(1 for _ in lines_of(DecodingReader(CSV_ZST, stream, name)))


def check_table_file(
    backup_set: BackupSet, table: str, check: str, identity_file: IdentityFile | None = None,
    reads: FileReads | None = None,
) -> CheckOutcome:
    """Run one named check for one table of a set: all its files and, for an increment, the
    table's files in every set of its chain. The outcome is the set's own, or the first failure.
    The row counts of encrypted files are read with ``identity_file``; without it they are the
    ones counted when the set was written, and the outcome says so. ``reads``: the files
    already read for this set's other checks (each check reads them itself without)."""
    reads = FileReads() if reads is None else reads
    try:
        links = chain_sets(backup_set)
    except BrokenChainError as error:
        return CheckOutcome(check, table, False, str(error))
    ancestors, own = links[:-1], links[-1]
    for ancestor in ancestors:
        outcome = _check_one_set(ancestor, table, check, identity_file, reads)
        if not outcome.passed:
            return CheckOutcome(
                check, table, False, f"ancestor set {ancestor.timestamp} of increment {backup_set.timestamp}: "
                f"{outcome.message}", outcome.expected, outcome.actual,
            )
    outcome = _check_one_set(own, table, check, identity_file, reads)
    if not ancestors or not outcome.passed:
        return outcome
    earlier = (
        f"its ancestor set {ancestors[0].timestamp} passes"
        if len(ancestors) == 1
        else f"its {len(ancestors)} ancestor sets, {ancestors[0].timestamp} to {ancestors[-1].timestamp}, pass"
    )
    return CheckOutcome(check, table, True, f"{outcome.message}; {earlier} too", outcome.expected, outcome.actual)


def chain_sets(backup_set: BackupSet) -> list[BackupSet]:
    """The sets to check for this one, base first: just itself, unless it is an increment.
    Ancestors are named by their timestamps; they live in the increment's folder."""
    if backup_set.manifest is None or not backup_set.manifest.is_increment:
        return [backup_set]
    links = chain_of(backup_set.folder, backup_set.timestamp, backup_set.manifest)
    ancestors = [
        BackupSet(link.timestamp, link.timestamp, backup_set.location, backup_set.folder, link.manifest)
        for link in links[:-1]
    ]
    return ancestors + [backup_set]


def _check_one_set(
    backup_set: BackupSet, table: str, check: str, identity_file: IdentityFile | None, reads: FileReads
) -> CheckOutcome:
    if check not in CHECK_NAMES:
        raise ValueError(f"unknown check {check!r}")
    if table not in backup_set.tables:
        return CheckOutcome(check, table, False, f"set {backup_set.timestamp} in {backup_set.folder} has no {table}")
    files = backup_set.stored_files(table)
    sizes = [backup_set.folder.size(name) for name, _ in files]
    missing = [name for (name, _), size in zip(files, sizes) if size is None]
    if missing:
        return CheckOutcome(check, table, False, f"{', '.join(missing)} missing from {backup_set.folder}")
    data = backup_set.data_files(table)
    label = _label(data, files)
    if check == FILE_PRESENT:
        return CheckOutcome(check, table, True, f"{label} {'is' if len(files) == 1 else 'are'} present ({human_size(sum(sizes))})")
    entry = backup_set.manifest.tables.get(table) if backup_set.manifest else None
    encrypted = entry is not None and bool(entry.encrypted_files)
    # An encrypted file's count needs the identity and its plaintext: its stored bytes are only hashed.
    counters = {} if encrypted else {name: count_rows_in_stream for name, _ in data} | {
        name: count_lines_in_stream for name, _ in files[len(data):]
    }
    folder = backup_set.folder
    if check == SHA256_MATCHES:
        return _check_sha256(table, files, check, lambda name: reads.read(folder, name, counters.get(name)).sha256)
    if encrypted:
        if identity_file is None or identity_file.path is None:
            return CheckOutcome(
                check, table, True, f"{label} is encrypted: its {count_of(entry.rows, 'row')} were counted as written; "
                "counting them again needs the identity", entry.rows, None, warning=True,
            )
        return _check_encrypted_rows(backup_set, table, check, identity_file)

    def count(name: str) -> int:
        return reads.read(folder, name, counters[name]).rows()

    outcome = _check_rows(table, _label(data, data), data, entry.rows if entry else None, check, count)
    extras = files[len(data):]
    if not outcome.passed or not extras:
        return outcome
    agrees = "has the manifest's line count" if len(extras) == 1 else "have the manifest's line counts"
    return _line_count_failure(table, extras, check, count) or CheckOutcome(
        check, table, True, f"{outcome.message}; {_extras_label(extras)} {agrees}",
        outcome.expected, outcome.actual,
    )


def _check_encrypted_rows(backup_set: BackupSet, table: str, check: str, identity_file: IdentityFile) -> CheckOutcome:
    """The row counts of an encrypted set's files, read through the identity (and both hashes
    of each file checked on the way)."""
    folder = decrypting(backup_set.folder, [backup_set.manifest], identity_file)
    stored = backup_set.stored_files(table)
    data = backup_set.data_files(table)
    entry = backup_set.manifest.tables[table]
    try:
        outcome = _check_rows(table, _label(data, data), data, entry.rows, check, lambda name: rows_in(folder, name))
    except IdentityError as error:
        return CheckOutcome(check, table, False, str(error), entry.rows, None)
    extras = stored[len(data):]
    if not outcome.passed or not extras:
        return outcome
    agrees = "has the manifest's line count" if len(extras) == 1 else "have the manifest's line counts"
    return _line_count_failure(table, extras, check, lambda name: lines_in(folder, name)) or CheckOutcome(
        check, table, True, f"{outcome.message}; {_extras_label(extras)} {agrees}", outcome.expected, outcome.actual,
    )


def _label(data: list[StoredFile], files: list[StoredFile]) -> str:
    """The table's data file (or its first part and how many more), with its other files."""
    label = data[0][0] if len(data) == 1 else f"{data[0][0]} and {len(data) - 1} more parts"
    extras = files[len(data):]
    return f"{label} with {_extras_label(extras)}" if extras else label


def _extras_label(extras: list[StoredFile]) -> str:
    return " and ".join("its row index" if isinstance(record, RowIndex) else "its deleted keys" for _, record in extras)


def _check_sha256(table: str, files: list[StoredFile], check: str, sha256_of: Callable[[str], str]) -> CheckOutcome:
    (name, piece), *_ = files
    if piece is None:
        return CheckOutcome(
            check, table, True, f"no checksum recorded: counted rows only ({name} is from a legacy set)",
            None, sha256_of(name), warning=True,
        )
    for name, piece in files:
        actual = sha256_of(name)
        if actual != piece.sha256:
            return CheckOutcome(
                check, table, False, f"{name} sha256 {actual} does not match the manifest's {piece.sha256}",
                piece.sha256, actual,
            )
    if len(files) == 1:
        return CheckOutcome(check, table, True, f"{name} sha256 matches the manifest", piece.sha256, actual)
    return CheckOutcome(check, table, True, f"the sha256 of each of the {len(files)} files matches the manifest")


def _check_rows(
    table: str, label: str, files: list[StoredFile], expected: int | None, check: str, rows_of: Callable[[str], int]
) -> CheckOutcome:
    try:
        actual = sum(rows_of(name) for name, _ in files)
    except BackupFileError as exc:
        return CheckOutcome(check, table, False, str(exc), expected, None)
    if expected is None:
        return CheckOutcome(check, table, True, f"legacy set: {label} has {count_of(actual, 'row')}", None, actual)
    if expected != actual:
        return CheckOutcome(
            check, table, False, f"{label} has {count_of(actual, 'row')} but the manifest says {expected}", expected, actual,
        )
    return CheckOutcome(check, table, True, f"{label} has the manifest's {count_of(expected, 'row')}", expected, actual)


def _line_count_failure(
    table: str, files: list[StoredFile], check: str, lines_of_file: Callable[[str], int]
) -> CheckOutcome | None:
    """A row index or deleted keys file holds one line a row (zstd text): its manifest's count."""
    for name, record in files:
        try:
            actual = lines_of_file(name)
        except BackupFileError as exc:
            return CheckOutcome(check, table, False, str(exc), record.rows, None)
        if actual != record.rows:
            return CheckOutcome(
                check, table, False, f"{name} has {count_of(actual, 'line')} but the manifest says {record.rows}", record.rows, actual,
            )
    return None


def lines_in(folder: SetFolder, name: str) -> int:
    """Lines in a zstd text file of a set (a row index, deleted keys)."""
    with folder.open_reader(name) as handle:
        return count_lines_in_stream(name, handle)


def verify_set(backup_set: BackupSet, identity_file: IdentityFile | None = None) -> list[CheckOutcome]:
    reads = FileReads()
    return [
        check_table_file(backup_set, table, check, identity_file, reads)
        for table in backup_set.tables for check in CHECK_NAMES
    ]


@dataclass(frozen=True)
class VerifyRequest:
    """Which set to verify: a partition key, or None for the newest set."""

    root: Root | Path | str
    key: str | None = None
    offsite_root: Root | Path | str | None = None  # verify the offsite copy when the local one is missing or damaged
    identity_file: IdentityFile | None = None  # counts an encrypted set's rows again; without it, verify reads no plaintext


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
    return VerifyResult(chosen.backup_set, verify_set(chosen.backup_set, request.identity_file), chosen.note)
