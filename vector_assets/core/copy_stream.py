"""Streaming ``COPY ... TO STDOUT`` into a file while hashing it, with flat memory.

psycopg2 hands us one CSV row per ``write`` call. Rows are gathered into chunks of
``CHUNK_BYTES`` and passed to a writer thread that hashes and writes them, so the socket
keeps draining while the disk works (hashlib and file writes release the GIL). The queue is
bounded, so memory stays at a few chunks whatever the table size.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.atomic_files import describe_os_error, remove_quietly
from vector_assets.core.errors import BackupWriteError, DatabaseUnreachableError
from vector_assets.core.postgres import Column, column_list

CHUNK_BYTES = 1 << 20
QUEUED_CHUNKS = 8
# fdatasync now and then so the final fsync does not stall on the whole file at once.
SYNC_EVERY_BYTES = 64 << 20


@dataclass(frozen=True)
class CopyResult:
    rows: int
    bytes: int
    sha256: str


class HashingFileWriter:
    """A file-like sink for ``copy_expert``: chunks rows, hashes and writes them on a thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = open(path, "wb", buffering=0)
        self._digest = hashlib.sha256()
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._written = 0
        self._unsynced = 0
        self._error: OSError | None = None
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUED_CHUNKS)
        self._thread = threading.Thread(target=self._drain, name=f"write {path.name}", daemon=True)
        self._thread.start()

    def write(self, row: bytes) -> None:
        self._pending.append(row)
        self._pending_bytes += len(row)
        if self._pending_bytes >= CHUNK_BYTES:
            self._hand_over()

    def finish(self) -> tuple[int, str]:
        """Write what is left, fsync, close; return (bytes written, sha256 hex)."""
        self._hand_over()
        self._stop_thread()
        self._raise_if_failed()
        try:
            os.fsync(self._handle.fileno())
        except OSError as exc:
            raise BackupWriteError(describe_os_error(exc, self.path)) from exc
        finally:
            self._handle.close()
        return self._written, self._digest.hexdigest()

    def abandon(self) -> None:
        """Stop after a failure and delete the partial file."""
        self._stop_thread()
        self._handle.close()
        remove_quietly(self.path)

    def _hand_over(self) -> None:
        if not self._pending:
            return
        chunk = b"".join(self._pending)
        self._pending = []
        self._pending_bytes = 0
        while True:
            self._raise_if_failed()
            try:
                self._chunks.put(chunk, timeout=0.5)
                return
            except queue.Full:
                continue

    def _drain(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            if self._error is not None:
                continue
            try:
                self._digest.update(chunk)
                self._write_all(chunk)
                self._written += len(chunk)
                self._unsynced += len(chunk)
                if self._unsynced >= SYNC_EVERY_BYTES:
                    os.fdatasync(self._handle.fileno())
                    self._unsynced = 0
            except OSError as exc:
                self._error = exc

    def _write_all(self, chunk: bytes) -> None:
        """An unbuffered write stops short when the disk fills; the next write raises ENOSPC.

        Ignoring the short count would hash and count bytes that never reached the file.
        """
        view = memoryview(chunk)
        while view:
            view = view[self._handle.write(view):]

    def _stop_thread(self) -> None:
        if self._thread.is_alive():
            self._chunks.put(None)
            self._thread.join()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise BackupWriteError(describe_os_error(self._error, self.path)) from self._error


def copy_table_to_file(
    cursor: psycopg2.extensions.cursor, table: str, columns: list[Column], path: Path
) -> CopyResult:
    """Stream one table as CSV with a header into ``path``; the caller owns the transaction."""
    statement = sql.SQL(
        "COPY {table} ({columns}) TO STDOUT WITH (FORMAT csv, HEADER, ENCODING 'UTF8')"
    ).format(table=sql.Identifier(table), columns=column_list(columns))
    writer = HashingFileWriter(path)
    try:
        cursor.copy_expert(statement, writer, CHUNK_BYTES)
        byte_count, sha256 = writer.finish()
    except BaseException as exc:
        writer.abandon()
        if isinstance(exc, psycopg2.OperationalError):
            raise DatabaseUnreachableError(
                f"lost the database connection while copying table {table!r}: {str(exc).strip()}"
            ) from None
        raise
    return CopyResult(rows=cursor.rowcount, bytes=byte_count, sha256=sha256)
