"""A set's row index (key -> row digest, sorted by key) and the streaming merge that finds
what changed since a parent set.

The index file is the server's digest stream as it came (COPY text lines ``key<TAB>md5``,
zstd-compressed), so it costs no formatting. The merge walks the table's digest stream and
the parent's index side by side, one line of each at a time, so memory stays flat whatever
the table's size: a key only in the table was added, a key in both with another digest was
changed, a key only in the parent was deleted. Keys stay in COPY's text escaping in every file,
so the deleted keys load back with ``COPY FROM``; they are compared in byte order, as the
server sorted them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from vector_assets.core.errors import BackupFileError
from vector_assets.core.hashing import HashingReader
from vector_assets.core.pg.copy import Sink
from vector_assets.core.pg.row_digests import digest_prefix_value, format_content_digest
from vector_assets.core.sets.formats import CSV_ZST, DecodingReader, EncodingSink
from vector_assets.core.sets.roots import SetFolder

READ_CHUNK_BYTES = 1 << 20
SPOOL_IN_MEMORY_BYTES = 16 << 20
_COPY_TEXT_ESCAPES = {b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"v": b"\v", b"\\": b"\\"}


def unescape_key(escaped: bytes) -> bytes:
    """A key as stored (COPY text escaping) back to its bytes; most keys have nothing escaped."""
    if b"\\" not in escaped:
        return escaped
    out, position = bytearray(), 0
    while position < len(escaped):
        char = escaped[position:position + 1]
        if char == b"\\" and position + 1 < len(escaped):
            out += _COPY_TEXT_ESCAPES.get(escaped[position + 1:position + 2], escaped[position + 1:position + 2])
            position += 2
        else:
            out += char
            position += 1
    return bytes(out)


def lines_of(stream: BinaryIO) -> Iterator[bytes]:
    """The lines of a stream without their newlines, read in large chunks."""
    rest = b""
    while chunk := stream.read(READ_CHUNK_BYTES):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


def read_row_index(folder: SetFolder, name: str) -> Iterator[tuple[bytes, bytes]]:
    """(escaped key, digest) of every row in a row index file, in key order."""
    with folder.open_reader(name) as handle:
        for line in lines_of(DecodingReader(CSV_ZST, handle, name)):
            key, tab, digest = line.partition(b"\t")
            if not tab or len(digest) != 32:
                raise BackupFileError(f"{name} is not a row index: a line is not key<TAB>digest")
            yield key, digest


def row_index_sha256(folder: SetFolder, name: str) -> str | None:
    """The stored file's sha256, or None when it is missing."""
    if folder.size(name) is None:
        return None
    with folder.open_reader(name) as handle:
        reader = HashingReader(handle)
        while reader.read(READ_CHUNK_BYTES):
            pass
        return reader.hexdigest()


@dataclass
class MergeCounts:
    rows: int = 0  # rows in the table now: the new index's lines
    added: int = 0
    changed: int = 0
    deleted: int = 0
    digest_total: int = 0

    @property
    def content_digest(self) -> str:
        return format_content_digest(self.digest_total)

    @property
    def to_export(self) -> int:
        return self.added + self.changed


class RowIndexMerge:
    """The sink of the table's digest COPY: writes the new index, and, given a parent's index,
    the keys to export (added or changed) and the keys deleted, each as one escaped key a line."""

    def __init__(
        self,
        index: Sink,
        parent: Iterator[tuple[bytes, bytes]] | None = None,
        to_export: Sink | None = None,
        deleted: Sink | None = None,
    ) -> None:
        self.counts = MergeCounts()
        self._index = EncodingSink(CSV_ZST, index)
        self._parent = parent
        self._to_export = to_export
        self._deleted = deleted
        self._rest = b""
        self._parent_row = next(parent, None) if parent is not None else None

    def write(self, data: bytes) -> int:
        self._index.write(data)
        lines = (self._rest + data).split(b"\n")
        self._rest = lines.pop()
        for line in lines:
            self._take(line)
        return len(data)

    def finish(self) -> MergeCounts:
        if self._rest:
            self._take(self._rest)
            self._rest = b""
        while self._parent_row is not None:
            self._delete(self._parent_row[0])
        self._index.finish()
        return self.counts

    def _take(self, line: bytes) -> None:
        key, _, digest = line.partition(b"\t")
        self.counts.rows += 1
        self.counts.digest_total += digest_prefix_value(digest)
        if self._parent is None:
            return
        wanted = unescape_key(key)
        while self._parent_row is not None and unescape_key(self._parent_row[0]) < wanted:
            self._delete(self._parent_row[0])
        if self._parent_row is not None and unescape_key(self._parent_row[0]) == wanted:
            if self._parent_row[1] != digest:
                self.counts.changed += 1
                self._to_export.write(key + b"\n")
            self._parent_row = next(self._parent, None)
        else:
            self.counts.added += 1
            self._to_export.write(key + b"\n")

    def _delete(self, key: bytes) -> None:
        self.counts.deleted += 1
        self._deleted.write(key + b"\n")
        self._parent_row = next(self._parent, None)


def spooled_keys() -> tempfile.SpooledTemporaryFile:
    """Where the keys to export wait for the export: memory up to a point, then a temp file."""
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES)


def key_batches(spool: BinaryIO, batch: int) -> Iterator[list[str]]:
    """The spooled keys, unescaped, ``batch`` at a time."""
    spool.seek(0)
    keys: list[str] = []
    for line in lines_of(spool):
        keys.append(unescape_key(line).decode("utf-8"))
        if len(keys) == batch:
            yield keys
            keys = []
    if keys:
        yield keys
