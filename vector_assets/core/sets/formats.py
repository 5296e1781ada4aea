"""The formats a set's data files come in, and the streams that write and read them.

``csv`` is the earlier tooling's format, byte for byte. ``pgcopy`` is PostgreSQL's binary COPY
format: no text parsing on either side. The ``.zst`` variants compress while streaming (zstd,
through ``zstandard``). A file's sha256 is always of the bytes as stored, so a check reads the
file once, without decompressing it.
"""

from __future__ import annotations

import csv
import io
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Protocol

import zstandard

from vector_assets.core.errors import BackupFileError, ConfigError
from vector_assets.core.hashing import Sha256Stream
from vector_assets.core.pg.copy import CSV_OPTIONS
from vector_assets.core.sets.csv_files import count_csv_rows, read_csv_header

if TYPE_CHECKING:
    from vector_assets.core.sets.storage import SetFolder

BINARY_COPY_OPTIONS = "FORMAT binary"
ZSTD = "zstd"
ZSTD_LEVEL = 1
PGCOPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
READ_CHUNK_BYTES = 1 << 20
COMPRESS_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class SetFormat:
    name: str  # also the data files' suffix: <table>_<ts>.<name>
    binary: bool
    codec: str | None

    @property
    def copy_options(self) -> str:
        return BINARY_COPY_OPTIONS if self.binary else CSV_OPTIONS

    @property
    def suffix(self) -> str:
        return "." + self.name


CSV = SetFormat("csv", binary=False, codec=None)
CSV_ZST = SetFormat("csv.zst", binary=False, codec=ZSTD)
PGCOPY = SetFormat("pgcopy", binary=True, codec=None)
PGCOPY_ZST = SetFormat("pgcopy.zst", binary=True, codec=ZSTD)
FORMATS = {fmt.name: fmt for fmt in (CSV, CSV_ZST, PGCOPY, PGCOPY_ZST)}


def set_format(name: str) -> SetFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise ConfigError(f"format {name!r} is not one of {', '.join(FORMATS)}") from None


def format_of_file(file_name: str) -> SetFormat:
    """The format a data file's name says (longest suffix first: ``.csv.zst`` before ``.csv``)."""
    for fmt in sorted(FORMATS.values(), key=lambda f: -len(f.suffix)):
        if file_name.endswith(fmt.suffix):
            return fmt
    raise BackupFileError(f"{file_name} is not a data file of any known format ({', '.join(FORMATS)})")


class Sink(Protocol):
    def write(self, data: bytes) -> object: ...


class EncodingSink:
    """What COPY writes into: passes bytes through, or compresses them on the way.

    COPY hands over one row per write; rows are gathered into chunks before compressing, so
    zstd works on large inputs (and without the GIL) instead of paying its call cost per row.
    """

    def __init__(self, fmt: SetFormat, raw: Sink) -> None:
        self._raw = raw
        self._compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj() if fmt.codec else None
        self._pending: list[bytes] = []
        self._pending_bytes = 0

    def write(self, data: bytes) -> int:
        if self._compressor is None:
            self._raw.write(data)
            return len(data)
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes >= COMPRESS_CHUNK_BYTES:
            self._compress_pending()
        return len(data)

    def finish(self) -> None:
        """End the compressed frame; without it the file is cut short and will not read back."""
        if self._compressor is not None:
            self._compress_pending()
            self._raw.write(self._compressor.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH))

    def _compress_pending(self) -> None:
        compressed = self._compressor.compress(b"".join(self._pending))
        self._pending, self._pending_bytes = [], 0
        if compressed:
            self._raw.write(compressed)


class DecodingReader(io.RawIOBase):
    """What COPY FROM reads: the file's bytes, decompressed if the format says so.

    A compressed file cut short ends in the middle of a frame; that is an error here, never a
    quiet end of data. ``copy_in`` raises that error as it is (psycopg2 alone would turn it into
    a cancelled COPY).
    """

    def __init__(self, fmt: SetFormat, raw: BinaryIO, name: str) -> None:
        self._raw = raw
        self._name = name
        self._decompressor = zstandard.ZstdDecompressor().decompressobj() if fmt.codec else None
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._decompressor is None:
            return self._raw.read(size)
        size = READ_CHUNK_BYTES if size is None or size < 0 else size
        while len(self._buffer) < size:
            compressed = self._raw.read(READ_CHUNK_BYTES)
            if not compressed:
                self._require_complete_frame()
                break
            self._buffer += self._decompress(compressed)
        chunk, self._buffer = self._buffer[:size], self._buffer[size:]
        return chunk

    def readinto(self, target) -> int:
        chunk = self.read(len(target))
        target[: len(chunk)] = chunk
        return len(chunk)

    def _decompress(self, compressed: bytes) -> bytes:
        try:
            return self._decompressor.decompress(compressed)
        except zstandard.ZstdError as error:
            raise BackupFileError(f"{self._name} is not valid zstd data: {error}") from None

    def _require_complete_frame(self) -> None:
        if not self._decompressor.eof:
            raise BackupFileError(f"{self._name} ends in the middle of its zstd frame: the file is cut short")


def read_header(stream: BinaryIO) -> list[str]:
    """The CSV header of a decoded stream."""
    return read_csv_header(io.BufferedReader(stream, READ_CHUNK_BYTES))


def count_rows(fmt: SetFormat, stream: BinaryIO, name: str) -> int:
    """Data rows in a decoded stream: CSV parsed properly (quoted fields hold newlines), or the
    binary COPY format's tuples walked field by field."""
    try:
        buffered = io.BufferedReader(stream, READ_CHUNK_BYTES)
        return _count_pgcopy_tuples(buffered, name) if fmt.binary else count_csv_rows(buffered)
    except (csv.Error, UnicodeDecodeError) as error:
        raise BackupFileError(f"{name} is not valid UTF-8 CSV: {error}") from None


def rows_in(folder: SetFolder, name: str) -> int:
    """Data rows in a set's file, read from its folder, of whatever format its name says."""
    with folder.open_reader(name) as handle:
        return count_rows_in_stream(name, handle)


def count_rows_in_stream(name: str, stream: BinaryIO) -> int:
    """Data rows in a set's file ``name``, read from ``stream``, of whatever format the name says."""
    fmt = format_of_file(name)
    return count_rows(fmt, DecodingReader(fmt, stream, name), name)


def content_sha256(open_reader: Callable[[str], BinaryIO], names: list[str]) -> str:
    """sha256 of a table's data as one uncompressed COPY stream would carry it: what a fresh
    export of the restored table must equal. For one uncompressed file, its own sha256.

    Parts are joined as COPY would have written them in one go: one CSV header, or one binary
    header and trailer.
    """
    digest = Sha256Stream()
    for index, name in enumerate(names):
        fmt = format_of_file(name)
        with open_reader(name) as handle:
            stream = io.BufferedReader(DecodingReader(fmt, handle, name), READ_CHUNK_BYTES)
            if index > 0:
                _skip_header(fmt, stream, name)
            _feed(stream, digest, keep_trailer=index == len(names) - 1 or not fmt.binary)
    return digest.hexdigest()


def _skip_header(fmt: SetFormat, stream: io.BufferedReader, name: str) -> None:
    if not fmt.binary:
        stream.readline()
        return
    header = _read_exactly(stream, len(PGCOPY_SIGNATURE) + 8, name)
    (extension_length,) = struct.unpack("!i", header[-4:])
    _read_exactly(stream, extension_length, name)


def _feed(stream: io.BufferedReader, digest: Sha256Stream, keep_trailer: bool) -> None:
    """All of the stream, or all but its last two bytes (binary COPY's end-of-data marker)."""
    held = b""
    while chunk := stream.read(READ_CHUNK_BYTES):
        data = held + chunk
        if keep_trailer:
            digest.update(data)
        else:
            digest.update(data[:-2])
            held = data[-2:]


def _count_pgcopy_tuples(reader: io.BufferedReader, name: str) -> int:
    header = _read_exactly(reader, len(PGCOPY_SIGNATURE) + 8, name)
    if header[: len(PGCOPY_SIGNATURE)] != PGCOPY_SIGNATURE:
        raise BackupFileError(f"{name} is not a binary COPY file (its signature is wrong)")
    (extension_length,) = struct.unpack("!i", header[-4:])
    _read_exactly(reader, extension_length, name)
    tuples = 0
    while True:
        (fields,) = struct.unpack("!h", _read_exactly(reader, 2, name))
        if fields == -1:
            return tuples
        for _ in range(fields):
            (length,) = struct.unpack("!i", _read_exactly(reader, 4, name))
            if length > 0:
                _read_exactly(reader, length, name)
        tuples += 1


def _read_exactly(reader: io.BufferedReader, size: int, name: str) -> bytes:
    data = reader.read(size)
    if len(data) != size:
        raise BackupFileError(f"{name} ends in the middle of a binary COPY record: the file is cut short")
    return data
