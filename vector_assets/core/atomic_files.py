"""Crash-safe file writing: write ``*.tmp``, flush and fsync, rename, then fsync the folder.

A crash at any point leaves either the old state or the complete new file, never a file
that looks complete but is not.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from vector_assets.core.errors import BackupWriteError

TMP_SUFFIX = ".tmp"


def tmp_path_for(final_path: Path) -> Path:
    return final_path.with_name(final_path.name + TMP_SUFFIX)


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


def write_tmp_file(final_path: Path, data: bytes) -> Path:
    """Write and fsync ``<final>.tmp``; the caller publishes it when the time comes."""
    tmp_path = tmp_path_for(final_path)
    try:
        with open(tmp_path, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        remove_quietly(tmp_path)
        raise BackupWriteError(describe_os_error(exc, final_path)) from exc
    return tmp_path


def write_bytes_atomically(final_path: Path, data: bytes) -> None:
    tmp_path = write_tmp_file(final_path, data)
    try:
        publish(tmp_path, final_path)
    except OSError as exc:
        remove_quietly(tmp_path)
        raise BackupWriteError(describe_os_error(exc, final_path)) from exc


def remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def describe_os_error(exc: OSError, path: Path) -> str:
    if exc.errno == errno.ENOSPC:
        return f"disk full while writing {path}"
    return f"cannot write {path}: {exc.strerror or exc}"
