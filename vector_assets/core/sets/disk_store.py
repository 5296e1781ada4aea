"""The local-disk driver (``DiskRoot``, ``DiskFolder``), crash-safe: write ``*.tmp``, fsync,
rename, fsync the folder.

A crash at any point leaves either the old state or the complete new file, never a file
that looks complete but is not. Deleting a set hides it first (one file renamed to ``.tmp``),
so a half-deleted set is never mistaken for a complete or a damaged one.
"""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from vector_assets.core.errors import BackupReadError, BackupWriteError, ConfigError
from vector_assets.core.sets.naming import (
    BACKUP_FOLDER_NAME,
    resolve_inside_root,
    swap_name,
    tmp_name,
)
from vector_assets.core.sets.storage import (
    Capabilities,
    FileEntry,
    HashingWriter,
    describe_os_error,
)

DISK = Capabilities(files_visible_when_written=False)
# Start the kernel's writeback every few MB, as PostgreSQL does with its *_flush_after settings,
# so the final fsync finds little left to write. Unlike an fdatasync it does not wait: the
# writer keeps writing (csv backup 0.1 s faster at 100,000 rows). The fsync is what makes it durable.
WRITEBACK_EVERY_BYTES = 8 << 20


def tmp_path_for(final_path: Path) -> Path:
    return final_path.with_name(tmp_name(final_path.name))


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a range of the file out, without waiting for it. On
    Linux, POSIX_FADV_DONTNEED starts writeback of dirty pages (PostgreSQL's fallback for
    sync_file_range); elsewhere the final fsync does all the work."""
    if hasattr(os, "posix_fadvise"):
        try:
            os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass  # advice only: a write error still surfaces at the write or the fsync


def fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp_path: Path, final_path: Path) -> None:
    """Rename a fully written, fsynced tmp file into place and make the rename durable."""
    os.replace(tmp_path, final_path)
    fsync_folder(final_path.parent)


def write_tmp_file(final_path: Path, data: bytes, tmp_path: Path | None = None) -> Path:
    """Write and fsync ``<final>.tmp`` (or ``tmp_path``); the caller publishes it when the time comes."""
    tmp_path = tmp_path or tmp_path_for(final_path)
    try:
        with open(tmp_path, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        remove_quietly(tmp_path)
        raise BackupWriteError(describe_os_error(exc, final_path)) from exc
    return tmp_path


def write_bytes_atomically(final_path: Path, data: bytes, tmp_path: Path | None = None) -> None:
    tmp_path = write_tmp_file(final_path, data, tmp_path)
    try:
        publish(tmp_path, final_path)
    except OSError as exc:
        remove_quietly(tmp_path)
        raise BackupWriteError(describe_os_error(exc, final_path)) from exc


def remove_quietly(path: Path) -> None:
    """Best-effort cleanup after a failure: an error here must not hide the failure itself."""
    try:
        path.unlink()
    except OSError:
        pass


# A read that may succeed later: a timeout, a network mount gone stale or briefly away.
PASSING_READ_ERRNOS = {
    errno.EAGAIN, errno.EINTR, errno.ETIMEDOUT, errno.ESTALE, errno.ENETDOWN, errno.ENETUNREACH,
    errno.ENETRESET, errno.ECONNRESET, errno.ECONNABORTED, errno.EHOSTDOWN, errno.EHOSTUNREACH,
}


def read_error(exc: OSError, path: Path) -> BackupReadError:
    return BackupReadError(f"cannot read {path}: {exc.strerror or exc}", retryable=exc.errno in PASSING_READ_ERRNOS)


class FileReader(io.FileIO):
    """A set's file on disk, read raw. An OS error opening or reading it (an I/O error, a stale
    network mount) is a BackupReadError naming the file, whoever reads it: a COPY FROM fed by
    it then fails as the file's fault, never the database's."""

    def __init__(self, path: Path) -> None:
        try:
            super().__init__(path, "rb")
        except OSError as exc:
            raise read_error(exc, path) from exc
        self._path = path

    def readinto(self, buffer) -> int | None:
        try:
            return super().readinto(buffer)
        except OSError as exc:
            raise read_error(exc, self._path) from exc

    def readall(self) -> bytes:
        try:
            return super().readall()
        except OSError as exc:
            raise read_error(exc, self._path) from exc

    def read(self, size: int = -1) -> bytes | None:
        try:
            return super().read(size)
        except OSError as exc:
            raise read_error(exc, self._path) from exc


@contextmanager
def writing_under(path: Path) -> Iterator[None]:
    """Any OS error while writing under ``path`` (permission, read-only file system, a missing
    mount, a file where a folder should be) becomes a BackupWriteError naming the path."""
    try:
        yield
    except OSError as exc:
        raise BackupWriteError(describe_os_error(exc, Path(exc.filename) if exc.filename else path)) from exc


class TmpFileTarget:
    """Chunks into ``<final>.tmp``; published by renaming it into place."""

    def __init__(self, final_path: Path) -> None:
        self.final_path = final_path
        self.tmp_path = tmp_path_for(final_path)
        with writing_under(self.tmp_path):
            self._handle = open(self.tmp_path, "wb", buffering=0)
        self._written = 0
        self._written_back = 0

    def write_chunk(self, chunk: bytes) -> None:
        """An unbuffered write stops short when the disk fills; the next write raises ENOSPC.

        Ignoring the short count would hash and count bytes that never reached the file.
        """
        view = memoryview(chunk)
        while view:
            view = view[self._handle.write(view):]
        self._written += len(chunk)
        if self._written - self._written_back >= WRITEBACK_EVERY_BYTES:
            start_writeback(self._handle.fileno(), self._written_back, self._written - self._written_back)
            self._written_back = self._written

    def complete(self) -> None:
        try:
            os.fsync(self._handle.fileno())
        finally:
            self._handle.close()

    def publish(self) -> None:
        publish(self.tmp_path, self.final_path)

    def discard(self) -> None:
        self._handle.close()
        remove_quietly(self.tmp_path)

    def error_for(self, exc: Exception) -> Exception:
        if isinstance(exc, OSError):
            return BackupWriteError(describe_os_error(exc, self.tmp_path))
        return exc


@dataclass(frozen=True)
class DiskFolder:
    """A backup folder on local disk (``storage.SetFolder`` says what each method promises)."""

    path: Path
    capabilities = DISK

    def __str__(self) -> str:
        return str(self.path)

    def locator(self, name: str) -> Path:
        return self.path / name

    def exists(self) -> bool:
        return self.path.is_dir()

    def prepare(self) -> None:
        with writing_under(self.path):
            self.path.mkdir(parents=True, exist_ok=True)

    def unprepare(self) -> None:
        """Remove the folder if it is empty."""
        try:
            self.path.rmdir()
        except OSError:
            pass

    def entries(self) -> dict[str, FileEntry]:
        found = {}
        for child in self.path.iterdir():
            try:
                status = child.lstat()
            except FileNotFoundError:
                continue
            found[child.name] = FileEntry(status.st_size, status.st_mtime_ns)
        return found

    def names(self) -> list[str]:
        return [child.name for child in self.path.iterdir()]

    def fingerprint(self) -> str:
        status = self.path.stat()
        return f"{status.st_mtime_ns}:{status.st_nlink}:{sum(1 for _ in self.path.iterdir())}"

    def size(self, name: str) -> int | None:
        path = self.path / name
        return path.stat().st_size if path.is_file() else None

    def open_reader(self, name: str) -> BinaryIO:
        return io.BufferedReader(FileReader(self.path / name))

    def open_writer(self, name: str) -> HashingWriter:
        return HashingWriter(TmpFileTarget(self.path / name), name)

    def read_bytes(self, name: str) -> bytes | None:
        try:
            return (self.path / name).read_bytes()
        except FileNotFoundError:
            return None

    def write_bytes(self, name: str, data: bytes) -> None:
        write_bytes_atomically(self.path / name, data)

    def replace_bytes(self, name: str, data: bytes) -> None:
        """Through ``<name>.swap``, which no scan takes for a file in progress: a ``.tmp`` there
        would hide the set from a crash until someone removed it by hand."""
        write_bytes_atomically(self.path / name, data, self.path / swap_name(name))

    def remove(self, name: str) -> None:
        (self.path / name).unlink(missing_ok=True)
        fsync_folder(self.path)

    def hide(self, name: str) -> None:
        os.replace(self.path / name, self.path / tmp_name(name))
        fsync_folder(self.path)


@dataclass(frozen=True)
class DiskRoot:
    """A root folder on local disk; locations resolve inside it (no symlink escapes)."""

    path: Path
    capabilities = DISK

    @classmethod
    def open(cls, url: str) -> DiskRoot:
        """A ``file:///path`` URL's folder."""
        return cls(path_of_file_url(url.strip()))

    def __str__(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        return self.path.is_dir()

    def location_names(self) -> list[str]:
        """``vector_bak`` if the global location exists, and children holding one, sorted."""
        if not self.path.is_dir():
            return []
        names = [BACKUP_FOLDER_NAME] if (self.path / BACKUP_FOLDER_NAME).is_dir() else []
        return sorted(names + [child.name for child in self.path.iterdir() if (child / BACKUP_FOLDER_NAME).is_dir()])

    def folder_at(self, relative: str | Path) -> DiskFolder:
        return DiskFolder(resolve_inside_root(self.path, relative, self.real_path))

    @cached_property
    def real_path(self) -> Path:
        """The root with its symlinks resolved, once: a sensor tick resolves every location under it."""
        return self.path.resolve()


def path_of_file_url(url: str) -> Path:
    """``file:///srv/backups`` (or ``file://localhost/…``) → ``/srv/backups``."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or not parts.path:
        raise ConfigError(f"root {url!r} is not a folder on this machine; write it as file:///absolute/path")
    return Path(unquote(parts.path))
