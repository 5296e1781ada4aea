"""The one way to hash a stream: sha256 and a byte count, fed by whatever reads or writes data.

Writers (the backup's file writer), readers (a restore's COPY FROM, a file check) and sinks
(the drill's re-export) all hash through ``Sha256Stream`` so a file is read once, never twice.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import BinaryIO

READ_CHUNK_BYTES = 1 << 20


class Sha256Stream:
    """sha256 and length of everything passed to ``update``."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self.bytes = 0

    def update(self, chunk: bytes) -> None:
        self._digest.update(chunk)
        self.bytes += len(chunk)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


class HashingReader(io.BufferedIOBase):
    """A read-only binary stream that hashes what is read through it (``copy_expert`` calls
    ``read`` and sometimes ``readline``; a text wrapper for the csv module calls ``read1``)."""

    def __init__(self, handle: BinaryIO) -> None:
        super().__init__()
        self._handle = handle
        self.hash = Sha256Stream()

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        chunk = self._handle.read(-1 if size is None else size)
        self.hash.update(chunk)
        return chunk

    def read1(self, size: int = -1) -> bytes:
        return self.read(READ_CHUNK_BYTES if size is None or size < 0 else size)

    def readline(self, size: int = -1) -> bytes:
        line = self._handle.readline(size)
        self.hash.update(line)
        return line

    def hexdigest(self) -> str:
        return self.hash.hexdigest()


class HashingSink:
    """A write-only file that keeps only the sha256 of what it is given."""

    def __init__(self) -> None:
        self.hash = Sha256Stream()

    def write(self, chunk: bytes | str) -> int:
        data = chunk.encode("utf-8") if isinstance(chunk, str) else chunk
        self.hash.update(data)
        return len(data)

    def hexdigest(self) -> str:
        return self.hash.hexdigest()


def sha256_of_stream(handle: BinaryIO) -> str:
    reader = HashingReader(handle)
    while reader.read(READ_CHUNK_BYTES):
        pass
    return reader.hexdigest()


def sha256_of_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return sha256_of_stream(handle)
