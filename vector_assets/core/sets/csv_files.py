"""Reading a set's CSV files properly: quoted fields may hold commas, quotes and newlines."""

from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from vector_assets.core.sets.storage import SetFolder

# Vectors of a few thousand dimensions make CSV fields larger than csv's 128 KiB default.
csv.field_size_limit(sys.maxsize)


def read_csv_header(handle: BinaryIO) -> list[str]:
    text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
    try:
        return next(csv.reader(text), [])
    finally:
        text.detach()


def count_csv_rows(handle: BinaryIO) -> int:
    """Data records in a CSV with a header, parsed properly: quoted fields may hold newlines."""
    text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
    try:
        records = sum(1 for _ in csv.reader(text))
    finally:
        text.detach()
    return max(records - 1, 0)


def header_of(folder: SetFolder, name: str) -> list[str]:
    with folder.open_reader(name) as handle:
        return read_csv_header(handle)


@dataclass(frozen=True)
class LegacyFileStats:
    """What a manifest would have said about a legacy file, computed by reading it once (with its checks)."""

    rows: int
    sha256: str
