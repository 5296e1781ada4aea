"""One collection's rows, taken out of a data file's decoded stream before they reach ``COPY FROM``.

A collection restore then sends PostgreSQL only the collection's rows instead of staging the
whole table and deleting the rest. What comes out is the file's own bytes: its header, the
matching rows exactly as they are in the file, and its end, so ``COPY`` reads back the same
values it would have read from the whole file.

- ``pgcopy`` (binary COPY): each row is a field count (int16), then per field an int32 length
  (-1 for NULL) and that many bytes. The walk reads the lengths in place and compares the
  reference's field with the collection's 16 uuid bytes; a row that does not match costs no copy.
- ``csv``: a record ends at a newline with an even number of quote characters since its start
  (PostgreSQL quotes any field holding a quote, a comma or a newline, and doubles the quotes
  inside it; neither byte occurs inside a UTF-8 sequence). The walk looks for the uuid's text;
  only the record around each place it occurs is found and parsed, by the ``csv`` module, and
  kept when its reference field is that uuid: a document or vector that happens to hold the same
  text is not taken for it. The stretches between are passed over whole.

The file is read a few pieces ahead on a thread of its own: decrypting, hashing and decompressing
release the interpreter lock, so they run beside the walk instead of before it.

The binary walk counts the rows it reads, so the caller can hold them against the manifest; the
CSV walk does not split what it passes over into records, and counts none.
"""

from __future__ import annotations

import csv
import io
import queue
import struct
import threading
import uuid
from dataclasses import dataclass

from vector_assets.core.errors import BackupFileError
from vector_assets.core.sets.formats import BINARY_COPY, CSV_COPY, PGCOPY_SIGNATURE, DecodingReader, SetFormat

READ_CHUNK_BYTES = 1 << 20
READ_AHEAD_PIECES = 4
STOP_CHECK_SECONDS = 0.1
PGCOPY_HEADER_BYTES = len(PGCOPY_SIGNATURE) + 8  # signature, flags, header extension length
PGCOPY_OIDS_FLAG = 1 << 16
PGCOPY_TRAILER = b"\xff\xff"
UUID_BYTES = 16
INT16 = struct.Struct("!h")
INT32 = struct.Struct("!i")


@dataclass(frozen=True)
class CollectionRows:
    """Which rows to keep: those whose ``column`` (its position among the file's ``columns``)
    holds the collection's uuid."""

    column: int
    columns: int
    uuid: uuid.UUID


def can_filter(fmt: SetFormat) -> bool:
    """The COPY formats whose rows this module walks exactly; any codec is undone before."""
    return fmt.copy_format in (BINARY_COPY, CSV_COPY)


class CollectionFilter(io.RawIOBase):
    """A decoded data file's stream, reduced to one collection's rows. Close it (``with``)
    before the file: that stops its reading thread."""

    _ahead: _ReadAhead | None = None  # none until started: close() may follow a refused __init__

    def __init__(self, fmt: SetFormat, source: DecodingReader, name: str, rows: CollectionRows) -> None:
        super().__init__()
        if not can_filter(fmt):
            raise ValueError(f"{fmt.name} files cannot be filtered by collection")
        self._walk = _BinaryWalk(name, rows) if fmt.binary else _CsvWalk(name, rows)
        self._pending = b""  # read from the source, not yet walked
        self._output: list[bytes] = []
        self._ended = False
        self._ahead = _ReadAhead(source)

    @property
    def rows_read(self) -> int | None:
        return self._walk.rows_read

    @property
    def rows_passed(self) -> int:
        return self._walk.rows_passed

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        """At least one byte until the filtered stream ends; ``size`` is a hint (COPY takes any length)."""
        while not self._output and not self._ended:
            self._fill()
        output, self._output = b"".join(self._output), []
        return output

    def readinto(self, target) -> int:
        raise io.UnsupportedOperation("read() only: the filter hands over whole rows")

    def close(self) -> None:
        if self._ahead is not None:
            self._ahead.stop()
        super().close()

    def _fill(self) -> None:
        """Walk what is held and the next piece; while a row is longer than what is held, at
        least as much again is read before the next walk, so a long row is joined a few times."""
        pieces, wanted = [self._pending], max(len(self._pending), 1)
        while wanted > 0:
            piece = self._ahead.next()
            pieces.append(piece)
            wanted -= len(piece)
            if not piece:
                self._ended = True
                break
        data = b"".join(pieces)
        done = self._walk.walk(data, self._output, final=self._ended)
        self._pending = data[done:]


class _ReadAhead:
    """The source's pieces, read on a thread of its own, at most ``READ_AHEAD_PIECES`` ahead;
    whatever the source raises is raised by ``next`` in the reader's thread."""

    def __init__(self, source: DecodingReader) -> None:
        self._source = source
        self._pieces: queue.Queue = queue.Queue(maxsize=READ_AHEAD_PIECES)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vector-assets-collection-filter", daemon=True)
        self._thread.start()

    def next(self) -> bytes:
        piece = self._pieces.get()
        if isinstance(piece, BaseException):
            raise piece
        return piece

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            while piece := self._source.read1(READ_CHUNK_BYTES):
                if not self._put(piece):
                    return
            self._put(b"")
        except BaseException as error:  # handed to the reader, which raises it as its own
            self._put(error)

    def _put(self, item: bytes | BaseException) -> bool:
        while not self._stopping.is_set():
            try:
                self._pieces.put(item, timeout=STOP_CHECK_SECONDS)
                return True
            except queue.Full:
                continue
        return False


class _BinaryWalk:
    def __init__(self, name: str, rows: CollectionRows) -> None:
        self._name = name
        self._column = rows.column
        self._columns = rows.columns
        self._key = rows.uuid.bytes
        self._header_seen = False
        self._trailer_seen = False
        self.rows_read = 0
        self.rows_passed = 0

    def walk(self, data: bytes, output: list[bytes], final: bool) -> int:
        """Put the header, the matching rows and the trailer of ``data`` into ``output``; returns
        how far ``data`` was walked (a row cut off by the chunk's end waits for the next one)."""
        position = 0
        if not self._header_seen:
            position = self._header(data, final)
            if not self._header_seen:
                return 0
            output.append(data[:position])
        if not self._trailer_seen:
            position = self._rows(data, position, output)
        if final:
            self._require_end(data, position)
        return position

    def _header(self, data: bytes, final: bool) -> int:
        if len(data) < PGCOPY_HEADER_BYTES:
            return self._cut_short() if final else 0
        if not data.startswith(PGCOPY_SIGNATURE):
            raise BackupFileError(f"{self._name} is not a binary COPY file (its signature is wrong)")
        (flags,) = INT32.unpack_from(data, len(PGCOPY_SIGNATURE))
        if flags & PGCOPY_OIDS_FLAG:
            raise BackupFileError(f"{self._name} holds row OIDs, which no set of this tool writes")
        (extension,) = INT32.unpack_from(data, PGCOPY_HEADER_BYTES - 4)
        end = PGCOPY_HEADER_BYTES + extension
        if len(data) < end:
            return self._cut_short() if final else 0
        self._header_seen = True
        return end

    def _rows(self, data: bytes, position: int, output: list[bytes]) -> int:
        """The fields before and after the reference are skipped by their lengths alone; a row
        cut off by the chunk's end shows as a length read past it (``struct.error``)."""
        size, columns, key = len(data), self._columns, self._key
        before, after = range(self._column), range(self._columns - self._column - 1)
        read_int16, read_int32, starts_with = INT16.unpack_from, INT32.unpack_from, data.startswith
        while position + 2 <= size:
            (fields,) = read_int16(data, position)
            if fields != columns:
                return self._trailer(fields, position, output)
            field = position + 2
            try:
                for _ in before:
                    (length,) = read_int32(data, field)
                    field += 4 + length if length > 0 else 4
                (length,) = read_int32(data, field)
                matches = length == UUID_BYTES and starts_with(key, field + 4)
                field += 4 + length if length > 0 else 4
                for _ in after:
                    (length,) = read_int32(data, field)
                    field += 4 + length if length > 0 else 4
            except struct.error:
                return position
            if field > size:
                return position
            self.rows_read += 1
            if matches:
                output.append(data[position:field])
                self.rows_passed += 1
            position = field
        return position

    def _trailer(self, fields: int, position: int, output: list[bytes]) -> int:
        if fields != -1:
            raise BackupFileError(f"{self._name}: a row has {fields} fields where the set's table has {self._columns} columns")
        output.append(PGCOPY_TRAILER)
        self._trailer_seen = True
        return position + 2

    def _require_end(self, data: bytes, position: int) -> None:
        if not self._trailer_seen:
            self._cut_short()
        if position != len(data):
            raise BackupFileError(f"{self._name} holds data after its binary COPY trailer")

    def _cut_short(self) -> int:
        raise BackupFileError(f"{self._name} ends in the middle of a binary COPY record: the file is cut short")


class _CsvWalk:
    """Records are found only around the uuid's text: a stretch of the file that does not hold it
    is passed over with a few byte counts, never split into records (so its records are not counted)."""

    def __init__(self, name: str, rows: CollectionRows) -> None:
        self._name = name
        self._column = rows.column
        self._key_text = str(rows.uuid)
        self._key = self._key_text.encode("ascii")
        self._header_seen = False
        self.rows_read: int | None = None
        self.rows_passed = 0

    def walk(self, data: bytes, output: list[bytes], final: bool) -> int:
        """Put the header record and the matching records of ``data`` into ``output``; returns
        how far ``data`` was walked, always to a record's end (the record cut off by the chunk's
        end waits for the next one)."""
        position = 0
        if not self._header_seen:
            end = _record_end(data, 0)
            if end == -1:
                return self._last_record(data, 0, output) if final else 0
            self._header_seen = True
            output.append(data[:end])
            position = end
        while (found := data.find(self._key, position)) != -1:
            start = _record_start(data, position, found)
            end = _record_end(data, start)
            if end == -1:
                return self._last_record(data, start, output) if final else start
            if self._holds_key(data[start:end]):
                output.append(data[start:end])
                self.rows_passed += 1
            position = end
        if final:
            self._require_closed_quotes(data, position)
            return len(data)
        return _record_start(data, position, len(data))

    def _last_record(self, data: bytes, start: int, output: list[bytes]) -> int:
        """The file's last record, without its newline: whole, unless a quote is left open."""
        self._require_closed_quotes(data, start)
        record = data[start:]
        if not self._header_seen:
            self._header_seen = True
            output.append(record)
        elif self._key in record and self._holds_key(record):
            output.append(record)
            self.rows_passed += 1
        return len(data)

    def _require_closed_quotes(self, data: bytes, start: int) -> None:
        if data.count(b'"', start) & 1:
            raise BackupFileError(f"{self._name} ends inside a quoted CSV field: the file is cut short")

    def _holds_key(self, record: bytes) -> bool:
        try:
            fields = next(csv.reader(io.StringIO(record.decode("utf-8"), newline="")))
        except (csv.Error, UnicodeDecodeError, StopIteration) as error:
            raise BackupFileError(f"{self._name} is not valid UTF-8 CSV: {error}") from None
        return len(fields) > self._column and fields[self._column] == self._key_text


def _record_end(data: bytes, start: int) -> int:
    """Just past the newline that ends the record starting at ``start``; -1 if it is not in ``data``."""
    quotes = 0
    search = start
    while (newline := data.find(b"\n", search)) != -1:
        quotes += data.count(b'"', search, newline)
        if not quotes & 1:
            return newline + 1
        search = newline + 1
    return -1


def _record_start(data: bytes, boundary: int, at: int) -> int:
    """Where the record holding byte ``at`` starts, ``boundary`` being a record's start before it:
    just past the last newline before ``at`` with an even number of quotes since ``boundary``."""
    quotes = data.count(b'"', boundary, at)
    end = at
    while (newline := data.rfind(b"\n", boundary, end)) != -1:
        quotes -= data.count(b'"', newline + 1, end)
        if not quotes & 1:
            return newline + 1
        end = newline
    return boundary
