"""A set's row index (key -> row digest, sorted by key) and the streaming merge that finds
what changed since a parent set.

The index file is the server's digest stream as it came (COPY text lines ``key<TAB>md5``,
zstd-compressed), so it costs no formatting. The merge walks the table's digest stream and
the parent's index side by side, one line of each at a time, so memory stays flat whatever
the table's size: a key only in the table was added, a key in both with another digest was
changed, a key only in the parent was deleted. Keys stay in COPY's text escaping in every file,
so the deleted keys load back with ``COPY FROM``; they are compared in byte order, as the
server sorted them.

A key of several columns is several fields (``key1<TAB>key2<TAB>digest``): the server sorted
them by the first field's bytes, then the second's, so they are compared as a tuple of
unescaped fields. A value's own tab is escaped (``\\t``), so a raw tab only ever separates fields.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple

from vector_assets.core.errors import BackupFileError
from vector_assets.core.hashing import HashingReader
from vector_assets.core.pg.copy import Sink
from vector_assets.core.pg.row_digests import format_content_digest
from vector_assets.core.sets.formats import CSV_ZST, DecodingReader, EncodingSink
from vector_assets.core.sets.storage import SetFolder

READ_CHUNK_BYTES = 1 << 20
MERGE_CHUNK_BYTES = 1 << 20
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


def comparable_key(escaped: bytes) -> tuple[bytes, ...]:
    """A key as stored (one escaped field per key column) as the server ordered it: its fields'
    bytes, compared field by field."""
    return tuple(unescape_key(field) for field in escaped.split(b"\t"))


def lines_of(stream: BinaryIO) -> Iterator[bytes]:
    """The lines of a stream without their newlines, read in large chunks."""
    rest = b""
    while chunk := stream.read(READ_CHUNK_BYTES):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


def read_row_index(folder: SetFolder, name: str) -> Iterator[list[bytes]]:
    """The lines (``key<TAB>digest``) of a row index file, in key order, a chunk at a time."""
    with folder.open_reader(name) as handle:
        stream, rest = DecodingReader(CSV_ZST, handle, name), b""
        while chunk := stream.read(READ_CHUNK_BYTES):
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            _require_index_lines(name, lines)
            yield lines
        if rest:
            _require_index_lines(name, [rest])
            yield [rest]


def _require_index_lines(name: str, lines: list[bytes]) -> None:
    for line in (lines[0], lines[-1]) if lines else ():
        if len(line) < 34 or line[-33:-32] != b"\t":
            raise BackupFileError(f"{name} is not a row index: a line is not key<TAB>digest")


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
    def content_digest(self) -> str:  # the server sums signed values; modulo 2**64 it is the same
        return format_content_digest(self.digest_total)

    @property
    def to_export(self) -> int:
        return self.added + self.changed


class RowIndexMerge:
    """The sink of the table's digest COPY: writes the new index, and, given a parent's index,
    the keys to export (added or changed) and the keys deleted, each as one escaped key a line
    (for a key of several columns, its fields separated by tabs).

    COPY hands over one row per write; rows are gathered and merged a chunk at a time, and an
    unchanged row (the same line in both streams, almost every row) costs one comparison.
    """

    def __init__(
        self,
        index: Sink,
        parent: Iterator[list[bytes]] | None = None,
        to_export: Sink | None = None,
        deleted: Sink | None = None,
    ) -> None:
        self.counts = MergeCounts()
        self._index = EncodingSink(CSV_ZST, index)
        self._parent = parent
        self._to_export = to_export
        self._deleted = deleted
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._rest = b""
        self._parent_lines: list[bytes] = []
        self._at = 0  # the next parent line
        self._parent_done = parent is None

    def write(self, data: bytes) -> int:
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes >= MERGE_CHUNK_BYTES:
            self._take_pending()
        return len(data)

    def finish(self) -> MergeCounts:
        self._take_pending()
        if self._rest:
            self._take_lines([self._rest])
            self._rest = b""
        if self._parent is not None:
            while self._parent_line() is not None:
                self._delete()
        self._index.finish()
        return self.counts

    def _take_pending(self) -> None:
        chunk = b"".join(self._pending)
        self._pending, self._pending_bytes = [], 0
        self._index.write(chunk)
        lines = (self._rest + chunk).split(b"\n")
        self._rest = lines.pop()
        self._take_lines(lines)

    def _take_lines(self, lines: list[bytes]) -> None:
        self.counts.rows += len(lines)
        self.counts.digest_total += sum(int(line[-32:-16], 16) for line in lines)
        if self._parent is None:
            return
        for line in lines:
            self._merge(line)

    def _merge(self, line: bytes) -> None:
        while True:
            parent = self._parent_line()
            if parent == line:  # unchanged
                self._at += 1
                return
            if parent is None:
                self.counts.added += 1
                self._to_export.write(line[:-33] + b"\n")
                return
            key, parent_key = comparable_key(line[:-33]), comparable_key(parent[:-33])
            if parent_key < key:
                self._delete()
                continue
            if parent_key == key:
                self.counts.changed += 1
                self._at += 1
            else:
                self.counts.added += 1
            self._to_export.write(line[:-33] + b"\n")
            return

    def _parent_line(self) -> bytes | None:
        while self._at == len(self._parent_lines):
            if self._parent_done:
                return None
            self._parent_lines, self._at = next(self._parent, None), 0
            if self._parent_lines is None:
                self._parent_lines, self._parent_done = [], True
        return self._parent_lines[self._at]

    def _delete(self) -> None:
        self.counts.deleted += 1
        self._deleted.write(self._parent_lines[self._at][:-33] + b"\n")
        self._at += 1


ONLY_OURS, ONLY_THEIRS, CHANGED = "only_ours", "only_theirs", "changed"


def compare_grouped_digests(
    ours: Iterator[bytes], theirs: Iterator[bytes], key_width: int = 1
) -> Iterator[tuple[str, bytes, bytes | None]]:
    """Walk two digest streams in key order, one line of each at a time, and yield (ONLY_OURS |
    ONLY_THEIRS | CHANGED, key, group) for every key that differs. A line is ``key<TAB>digest``
    (a row index) or ``key<TAB>digest<TAB>group``, where ``key`` is ``key_width`` fields (one per
    key column, compared field by field as the server sorted them); the group is that of the
    side holding the row (of ours for a changed row, else of theirs), None where no side's line
    has one. Keys (their fields still separated by tabs) and groups stay escaped."""
    def parsed(lines: Iterator[bytes]) -> Iterator[_DigestLine]:
        return (_fields(line, key_width) for line in lines)

    ours_parsed, theirs_parsed = parsed(ours), parsed(theirs)
    mine, other = next(ours_parsed, None), next(theirs_parsed, None)
    while mine is not None or other is not None:
        if other is None or (mine is not None and mine.order < other.order):
            yield ONLY_OURS, mine.key, mine.group
            mine = next(ours_parsed, None)
        elif mine is None or other.order < mine.order:
            yield ONLY_THEIRS, other.key, other.group
            other = next(theirs_parsed, None)
        else:
            if mine.digest != other.digest:
                yield CHANGED, mine.key, mine.group if mine.group is not None else other.group
            mine, other = next(ours_parsed, None), next(theirs_parsed, None)


class _DigestLine(NamedTuple):
    key: bytes  # escaped, its fields separated by tabs
    order: bytes | tuple[bytes, ...]  # the key unescaped (a tuple of its fields' bytes): as the server sorted it
    digest: bytes
    group: bytes | None


def _fields(line: bytes, key_width: int) -> _DigestLine:
    fields = line.split(b"\t", key_width + 1)
    group = fields[key_width + 1] if len(fields) > key_width + 1 else None
    if key_width == 1:
        return _DigestLine(fields[0], unescape_key(fields[0]), fields[1], group)
    return _DigestLine(b"\t".join(fields[:key_width]), tuple(unescape_key(part) for part in fields[:key_width]),
                       fields[key_width], group)


def spooled_keys() -> tempfile.SpooledTemporaryFile:
    """Where the keys to export wait for the export: memory up to a point, then a temp file."""
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES)


def key_batches(spool: BinaryIO, batch: int) -> Iterator[list[tuple[str, ...]]]:
    """The spooled keys, unescaped, ``batch`` at a time; each key a tuple of one text per key column."""
    spool.seek(0)
    keys: list[tuple[str, ...]] = []
    for line in lines_of(spool):
        keys.append(tuple(field.decode("utf-8") for field in comparable_key(line)))
        if len(keys) == batch:
            yield keys
            keys = []
    if keys:
        yield keys
