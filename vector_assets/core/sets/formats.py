"""The formats a set's data files come in: a table of COPY formats and a table of codecs.

A set format is a COPY format alone (``csv``, ``pgcopy``) or followed by a codec (``csv.zst``,
``pgcopy.zst``); its name is also the data files' suffix. Everything else is derived from the
two tables: the format names every command accepts, the file names a scan recognises (see
``naming``), the manifest's codec, and the streams that write and read. A new COPY format or
codec is one entry, given to ``register_copy_format`` or ``register_codec`` before the
definitions are built (the Launchpad's dropdown lists the formats known then).

``csv`` is the earlier tooling's format, byte for byte. ``pgcopy`` is PostgreSQL's binary COPY
format: no text parsing on either side. The ``zstd`` codec compresses while streaming (through
``zstandard``). A file's sha256 is always of the bytes as stored, so a check reads the file once,
without decompressing it.
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
from vector_assets.core.sets.encryption import plain_name

if TYPE_CHECKING:
    from vector_assets.core.sets.storage import SetFolder

BINARY_COPY_OPTIONS = "FORMAT binary"
ZSTD_LEVEL = 1
PGCOPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
PGCOPY_TRAILER_BYTES = 2  # the tuple count -1 that ends binary COPY data
READ_CHUNK_BYTES = 1 << 20
COMPRESS_CHUNK_BYTES = 1 << 20
# Compressed bytes decoded at a time: a piece then comes out at about a MiB or less, which COPY
# FROM (it reads a MiB at a time) takes whole, and which stays in the CPU's cache while it is
# copied on. A MiB at a time made pieces of 1.4 to 2.6 MiB, sliced again for every read.
DECODE_INPUT_BYTES = 1 << 18


class Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes:
        """The end of the compressed stream; without it the file is cut short."""


class Decompressor(Protocol):
    eof: bool  # the compressed stream has ended where it should

    def decompress(self, data: bytes) -> bytes: ...


@dataclass(frozen=True)
class Codec:
    """Compression on the way to storage and back, as streams."""

    name: str  # as the manifest's ``codec`` records it
    suffix: str  # after the COPY format's: <table>_<ts>.csv.<suffix>
    compressor: Callable[[], Compressor]
    decompressor: Callable[[], Decompressor]
    errors: tuple[type[Exception], ...]  # what its decompressor raises on data it cannot read


@dataclass(frozen=True)
class CopyFormat:
    """What ``COPY`` writes and reads, and how a decoded stream of it is walked."""

    name: str  # the data files' suffix, before a codec's
    options: str  # COPY ... WITH (<options>)
    text: bool  # its first line names the columns (else the manifest's columns are the only guide)
    count_rows: Callable[[io.BufferedReader, str], int]  # (stream, file name) -> data rows
    skip_header: Callable[[io.BufferedReader, str], None]  # what a later part repeats of the first
    trailer_bytes: int  # the end-of-data marker after the last row, which a stream carries once
    earlier_tooling: bool = False  # uncompressed, it is what the earlier tooling writes and reads


@dataclass(frozen=True)
class SetFormat:
    """A COPY format, compressed by a codec or not."""

    copy_format: CopyFormat
    codec: Codec | None = None

    @property
    def name(self) -> str:
        """Also the data files' suffix: ``<table>_<ts>.<name>``."""
        return self.copy_format.name + (f".{self.codec.suffix}" if self.codec else "")

    @property
    def suffix(self) -> str:
        return "." + self.name

    @property
    def copy_options(self) -> str:
        return self.copy_format.options

    @property
    def binary(self) -> bool:
        return not self.copy_format.text

    @property
    def codec_name(self) -> str | None:
        return self.codec.name if self.codec else None

    @property
    def legacy(self) -> bool:
        """The earlier tooling's format, the one legacy sets are in. Other tools read these
        files, so a table stays one file and the manifest keeps the version their readers know."""
        return self.copy_format.earlier_tooling and self.codec is None


@dataclass(frozen=True)
class FormatNames:
    """The format names file names may carry, as ``naming`` spells its patterns from them."""

    every: tuple[str, ...]
    newer: tuple[str, ...]  # all but the earlier tooling's: what a table may be split into parts in


COPY_FORMATS: dict[str, CopyFormat] = {}
CODECS: dict[str, Codec] = {}
FORMATS: dict[str, SetFormat] = {}  # every COPY format, alone and with every codec; kept in step
_names = FormatNames((), ())


def register_copy_format(copy_format: CopyFormat) -> None:
    """Add a COPY format: it is then a set format alone and with every codec."""
    _register(COPY_FORMATS, copy_format, "COPY format")


def register_codec(codec: Codec) -> None:
    """Add a codec: every COPY format is then also a set format compressed by it."""
    _register(CODECS, codec, "codec")


def unregister_copy_format(name: str) -> None:
    _unregister(COPY_FORMATS, name, "COPY format")


def unregister_codec(name: str) -> None:
    _unregister(CODECS, name, "codec")


def _register(table: dict, entry: CopyFormat | Codec, kind: str) -> None:
    if entry.name in table:
        raise ConfigError(f"a {kind} named {entry.name!r} is already registered")
    table[entry.name] = entry
    try:
        _derive_formats()
    except ConfigError:
        del table[entry.name]
        _derive_formats()
        raise


def _unregister(table: dict, name: str, kind: str) -> None:
    if name not in table:
        raise ConfigError(f"no {kind} named {name!r} is registered (there are: {', '.join(table)})")
    del table[name]
    _derive_formats()


def _derive_formats() -> None:
    global _names
    derived = [SetFormat(copy_format, codec) for copy_format in COPY_FORMATS.values()
               for codec in (None, *CODECS.values())]
    names = [fmt.name for fmt in derived]
    clashing = sorted({name for name in names if names.count(name) > 1})
    if clashing:
        raise ConfigError(f"two formats would be named {clashing[0]!r}: a COPY format's and a codec's names collide")
    FORMATS.clear()
    FORMATS.update((fmt.name, fmt) for fmt in derived)
    _names = FormatNames(tuple(FORMATS), tuple(name for name, fmt in FORMATS.items() if not fmt.legacy))


def format_names() -> FormatNames:
    return _names


def set_format(name: str) -> SetFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise ConfigError(f"format {name!r} is not one of {', '.join(FORMATS)}") from None


def format_of_file(file_name: str) -> SetFormat:
    """The format a data file's name says (longest suffix first: ``.csv.zst`` before ``.csv``),
    of its plaintext when it is encrypted (``.csv.zst.age``)."""
    file_name = plain_name(file_name)
    for fmt in sorted(FORMATS.values(), key=lambda f: -len(f.suffix)):
        if file_name.endswith(fmt.suffix):
            return fmt
    raise BackupFileError(f"{file_name} is not a data file of any known format ({', '.join(FORMATS)})")


class Sink(Protocol):
    def write(self, data: bytes) -> object: ...


class EncodingSink:
    """What COPY writes into: passes bytes through, or compresses them on the way.

    COPY hands over one row per write; rows are gathered into chunks before compressing, so
    the codec works on large inputs (zstd without the GIL) instead of paying its call cost per row.
    """

    def __init__(self, fmt: SetFormat, raw: Sink) -> None:
        self._raw = raw
        self._compressor = fmt.codec.compressor() if fmt.codec else None
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
        """End the compressed stream; without it the file is cut short and will not read back."""
        if self._compressor is not None:
            self._compress_pending()
            self._raw.write(self._compressor.flush())

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
        self._codec = fmt.codec
        self._decompressor = fmt.codec.decompressor() if fmt.codec else None
        self._piece = b""  # what the codec gave last, handed over from ``_offset`` on
        self._offset = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes of the piece the codec gave last, never joined with the next one:
        a piece no longer than ``size`` is handed over as it is, without a copy."""
        if self._decompressor is None:
            return self._raw.read(size)
        size = READ_CHUNK_BYTES if size is None or size < 0 else size
        if not self._hold_a_piece():
            return b""
        start, self._offset = self._offset, min(self._offset + size, len(self._piece))
        if start == 0 and self._offset == len(self._piece):
            return self._piece
        return self._piece[start:self._offset]

    def read1(self, size: int = -1) -> bytes:
        """The rest of the piece the codec gave last, whatever ``size``: for a reader that takes
        any length."""
        if self._decompressor is None:
            return self._raw.read(READ_CHUNK_BYTES if size is None or size < 0 else size)
        return self.read(len(self._piece)) if self._hold_a_piece() else b""

    def readinto(self, target) -> int:
        chunk = self.read(len(target))
        target[: len(chunk)] = chunk
        return len(chunk)

    def _hold_a_piece(self) -> bool:
        """Decode until a piece holds bytes not yet handed over; False at the end of the data."""
        while self._offset >= len(self._piece):
            compressed = self._raw.read(DECODE_INPUT_BYTES)
            if not compressed:
                self._require_complete_frame()
                return False
            self._piece, self._offset = self._decompress(compressed), 0
        return True

    def _decompress(self, compressed: bytes) -> bytes:
        try:
            return self._decompressor.decompress(compressed)
        except self._codec.errors as error:
            raise BackupFileError(f"{self._name} is not valid {self._codec.name} data: {error}") from None

    def _require_complete_frame(self) -> None:
        if not self._decompressor.eof:
            raise BackupFileError(f"{self._name} ends in the middle of its {self._codec.name} frame: the file is cut short")


def read_header(stream: BinaryIO) -> list[str]:
    """The CSV header of a decoded stream."""
    return read_csv_header(io.BufferedReader(stream, READ_CHUNK_BYTES))


def count_rows(fmt: SetFormat, stream: BinaryIO, name: str) -> int:
    """Data rows in a decoded stream, walked as its COPY format says."""
    return fmt.copy_format.count_rows(io.BufferedReader(stream, READ_CHUNK_BYTES), name)


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

    Parts are joined as COPY would have written them in one go: one header, and one trailer.
    """
    digest = Sha256Stream()
    for index, name in enumerate(names):
        fmt = format_of_file(name)
        with open_reader(name) as handle:
            stream = io.BufferedReader(DecodingReader(fmt, handle, name), READ_CHUNK_BYTES)
            if index > 0:
                fmt.copy_format.skip_header(stream, name)
            _feed(stream, digest, drop_last=0 if index == len(names) - 1 else fmt.copy_format.trailer_bytes)
    return digest.hexdigest()


def _feed(stream: io.BufferedReader, digest: Sha256Stream, drop_last: int) -> None:
    """All of the stream but its last ``drop_last`` bytes."""
    held = b""
    while chunk := stream.read(READ_CHUNK_BYTES):
        data = held + chunk
        if not drop_last:
            digest.update(data)
        else:
            digest.update(data[:-drop_last])
            held = data[-drop_last:]


def _count_csv_records(reader: io.BufferedReader, name: str) -> int:
    try:
        return count_csv_rows(reader)
    except (csv.Error, UnicodeDecodeError) as error:
        raise BackupFileError(f"{name} is not valid UTF-8 CSV: {error}") from None


def _skip_csv_header(reader: io.BufferedReader, name: str) -> None:
    reader.readline()


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


def _skip_pgcopy_header(reader: io.BufferedReader, name: str) -> None:
    header = _read_exactly(reader, len(PGCOPY_SIGNATURE) + 8, name)
    (extension_length,) = struct.unpack("!i", header[-4:])
    _read_exactly(reader, extension_length, name)


def _read_exactly(reader: io.BufferedReader, size: int, name: str) -> bytes:
    data = reader.read(size)
    if len(data) != size:
        raise BackupFileError(f"{name} ends in the middle of a binary COPY record: the file is cut short")
    return data


CSV_COPY = CopyFormat(
    "csv", CSV_OPTIONS, text=True, count_rows=_count_csv_records, skip_header=_skip_csv_header, trailer_bytes=0,
    earlier_tooling=True,
)
BINARY_COPY = CopyFormat(
    "pgcopy", BINARY_COPY_OPTIONS, text=False, count_rows=_count_pgcopy_tuples, skip_header=_skip_pgcopy_header,
    trailer_bytes=PGCOPY_TRAILER_BYTES,
)
ZSTD = Codec(
    "zstd", "zst",
    compressor=lambda: zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj(),
    decompressor=lambda: zstandard.ZstdDecompressor().decompressobj(),
    errors=(zstandard.ZstdError,),
)
register_copy_format(CSV_COPY)
register_copy_format(BINARY_COPY)
register_codec(ZSTD)
CSV, CSV_ZST, PGCOPY, PGCOPY_ZST = (FORMATS[name] for name in ("csv", "csv.zst", "pgcopy", "pgcopy.zst"))
