"""Backup roots for tests: snapshots to prove nothing changed, and sets as other tools write them."""

from __future__ import annotations

import ctypes
import hashlib
import os
import struct
import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vector_assets.core.sets.manifest import Manifest, TableFile
from vector_assets.core.sets.naming import (
    LOG_FILE_NAME,
    csv_file_name,
    manifest_file_name,
)
from vector_assets_tests.support.database import STORE_TABLES
from vector_assets.dev.embedded import bundled_client


def folder_snapshot(root: Path) -> dict[str, bytes]:
    """Every file under the root with its content, to show a failure changed nothing."""
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


IN_OPEN, IN_ISDIR = 0x20, 0x40000000
INOTIFY_EVENT = struct.Struct("iIII")  # wd, mask, cookie, length of the name that follows


@contextmanager
def files_opened_under(root: Path) -> Iterator[list[str]]:
    """The files (not folders) opened under ``root`` while the block runs, as the kernel's
    inotify saw them; filled in when the block ends. Every folder under the root is watched, so
    a read of any set file shows, and a listing or a stat does not."""
    with _opened_under(root) as opened:
        files: list[str] = []
        yield files
    files += [name for name, is_folder in opened if not is_folder]


@contextmanager
def folders_opened_under(root: Path) -> Iterator[Counter[str]]:
    """How many times each folder under ``root`` (the root as ".") was opened while the block
    runs, as the kernel's inotify saw it: each listing of a folder opens it once."""
    with _opened_under(root) as opened:
        folders: Counter[str] = Counter()
        yield folders
    folders.update(name for name, is_folder in opened if is_folder)


@contextmanager
def _opened_under(root: Path) -> Iterator[list[tuple[str, bool]]]:
    """(path relative to the root, is a folder) of each open under ``root``, filled in when the block ends."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1 failed")
    opened: list[tuple[str, bool]] = []
    try:
        folders = {}
        for folder in [root, *(path for path in root.rglob("*") if path.is_dir())]:
            watch = libc.inotify_add_watch(fd, os.fsencode(folder), IN_OPEN)
            if watch < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch failed on {folder}")
            folders[watch] = folder
        yield opened
        while True:
            try:
                events = os.read(fd, 1 << 16)
            except BlockingIOError:
                break
            offset = 0
            while offset < len(events):
                watch, mask, _, length = INOTIFY_EVENT.unpack_from(events, offset)
                name = events[offset + INOTIFY_EVENT.size:offset + INOTIFY_EVENT.size + length].rstrip(b"\0")
                offset += INOTIFY_EVENT.size + length
                if not mask & IN_ISDIR:
                    opened.append((str((folders[watch] / os.fsdecode(name)).relative_to(root)), False))
                elif not name:  # a watched folder opened itself (its parent reports it too, by name)
                    opened.append((str(folders[watch].relative_to(root)), True))
    finally:
        os.close(fd)


def write_tiny_legacy_set(folder: Path, timestamp: str, embedding_bytes: bytes | None = None) -> None:
    """What the earlier tooling left behind: two CSV files, no manifest, no log."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"langchain_pg_collection_{timestamp}.csv").write_text(
        "uuid,name,cmetadata\n00000000-0000-0000-0000-000000000001,sql,\n", encoding="utf-8"
    )
    embeddings = embedding_bytes or (
        b"id,collection_id,embedding,document,cmetadata\n"
        b'1-sql,00000000-0000-0000-0000-000000000001,"[0.1,0.2]","a, ""b""",\n'
    )
    (folder / f"langchain_pg_embedding_{timestamp}.csv").write_bytes(embeddings)


def tiny_set_files(timestamp: str, location: str = "vector_bak", *, manifest: bool = False) -> dict[str, bytes]:
    """A tiny set's files by name: two CSVs with a header and a row, optionally a manifest."""
    files: dict[str, bytes] = {}
    tables = {}
    for table in STORE_TABLES:
        name = csv_file_name(table, timestamp)
        files[name] = f"id,document\n{timestamp},\"a, b\"\n".encode()
        tables[table] = TableFile(table, name, 1, len(files[name]), hashlib.sha256(files[name]).hexdigest())
    if manifest:
        body = Manifest(
            timestamp=timestamp, created_at=timestamp, location=location, source={"host": "test", "database": "t"},
            server_version="18", pgvector_version="0.8.5", consistent_snapshot=True, duration_seconds=0.1, tables=tables,
        )
        files[manifest_file_name(timestamp)] = body.to_json().encode()
    return files


def write_tiny_set(folder: Path, timestamp: str, *, manifest: bool = False) -> None:
    """A tiny set written directly: two CSVs with a header and a row, optionally a manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in tiny_set_files(timestamp, folder.name, manifest=manifest).items():
        (folder / name).write_bytes(body)
    with open(folder / LOG_FILE_NAME, "a", encoding="utf-8") as log:
        log.write(f"=== Vector Table Backup Log ===\nBackup Time: {timestamp}\n")


def psql_legacy_set(dsn: str, folder: Path, timestamp: str) -> None:
    """A set exactly as the earlier scripts wrote it: psql \\copy ... csv header, no manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    for table in STORE_TABLES:
        target = folder / csv_file_name(table, timestamp)
        subprocess.run([str(bundled_client("psql")), dsn, "-c", f"\\copy {table} TO '{target}' csv header"], check=True)

