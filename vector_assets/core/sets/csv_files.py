"""Reading a set's CSV files properly: quoted fields may hold commas, quotes and newlines."""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

from vector_assets.core.errors import BackupFileError
from vector_assets.core.hashing import sha256_of_file

# Vectors of a few thousand dimensions make CSV fields larger than csv's 128 KiB default.
csv.field_size_limit(sys.maxsize)


def read_csv_header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle), [])


def count_csv_rows(path: Path) -> int:
    """Data records in a CSV with a header, parsed properly: quoted fields may hold newlines."""
    with open(path, newline="", encoding="utf-8") as handle:
        records = sum(1 for _ in csv.reader(handle))
    return max(records - 1, 0)


@dataclass(frozen=True)
class LegacyFileStats:
    """What a manifest would have said about a legacy file, computed by reading it once."""

    rows: int
    sha256: str


def legacy_file_stats(path: Path) -> LegacyFileStats:
    try:
        rows = count_csv_rows(path)
    except (csv.Error, UnicodeDecodeError) as error:
        raise BackupFileError(f"{path.name} is not valid UTF-8 CSV: {error}") from None
    return LegacyFileStats(rows=rows, sha256=sha256_of_file(path))
