"""The replicate command: copy every complete set that the offsite root lacks (the 3-2-1 rule,
pgBackRest's repo2).

Each file is streamed from the local root into the offsite one and hashed on the way; a file
whose sha256 or size differs from its manifest is not copied, and the set is reported as
damaged instead. The offsite set is hidden by a marker until its manifest, written last,
is in place, exactly like a backup.

A dry run reads and checks every file it would copy, and writes and removes each set's marker
in the offsite folder (the real run's first write there), so it fails where the real run would
fail, a damaged file or an offsite root that refuses writes; it copies nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vector_assets.core.errors import VectorAssetsError
from vector_assets.core.hashing import READ_CHUNK_BYTES, HashingSink
from vector_assets.core.sets.catalog import BackupSet, scan_root
from vector_assets.core.sets.manifest import FilePart, RowIndex
from vector_assets.core.sets.naming import LOG_FILE_NAME, manifest_file_name, tmp_name
from vector_assets.core.sets.roots import open_root, remove_quietly, writing_to
from vector_assets.core.sets.storage import Root, SetFolder


@dataclass(frozen=True)
class ReplicateRequest:
    root: Root | Path | str
    offsite_root: Root | Path | str
    dry_run: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", open_root(self.root))
        object.__setattr__(self, "offsite_root", open_root(self.offsite_root))


@dataclass
class ReplicateResult:
    copied: list[BackupSet] = field(default_factory=list)
    already_offsite: list[BackupSet] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # key -> why the set was not copied
    bytes_copied: int = 0  # on a dry run: the bytes it would copy
    dry_run: bool = False


def run_replicate(request: ReplicateRequest) -> ReplicateResult:
    offsite_places = {(s.location, s.timestamp) for s in scan_root(request.offsite_root)}
    result = ReplicateResult(dry_run=request.dry_run)
    for backup_set in scan_root(request.root):
        if (backup_set.location, backup_set.timestamp) in offsite_places:
            result.already_offsite.append(backup_set)
            continue
        target = backup_set.location.folder(request.offsite_root)
        copy = rehearse_copy if request.dry_run else copy_set
        try:
            result.bytes_copied += copy(backup_set, target)
        except DamagedFileError as error:
            result.refused[backup_set.key] = str(error)
            continue
        result.copied.append(backup_set)
    return result


class DamagedFileError(VectorAssetsError):
    """A file of the set differs from its manifest; the set is not copied."""


def copy_set(backup_set: BackupSet, target: SetFolder) -> int:
    """Copy a set's files (data, row index, deleted keys), then its manifest; on any failure
    remove what was copied."""
    marker = tmp_name(manifest_file_name(backup_set.timestamp))
    names = backup_set.all_stored_files()
    copied = 0
    try:
        with writing_to(target):
            target.prepare()
            target.write_bytes(marker, b"")
            for table in backup_set.tables:
                for name, piece in backup_set.stored_files(table):
                    copied += copy_file(backup_set, name, piece, target)
            log = backup_set.folder.read_bytes(LOG_FILE_NAME)
            if log is not None:
                target.write_bytes(LOG_FILE_NAME, log)
            manifest = backup_set.folder.read_bytes(manifest_file_name(backup_set.timestamp))
            if manifest is not None:  # a legacy set has none: its CSV pair is the whole set
                target.write_bytes(manifest_file_name(backup_set.timestamp), manifest)
            target.remove(marker)
    except BaseException:
        for name in [*names, manifest_file_name(backup_set.timestamp), marker]:
            remove_quietly(target, name)
        raise
    return copied


def rehearse_copy(backup_set: BackupSet, target: SetFolder) -> int:
    """The dry run of ``copy_set``: the marker written and removed, every file read and checked."""
    marker = tmp_name(manifest_file_name(backup_set.timestamp))
    existed = target.exists()
    with writing_to(target):
        target.prepare()
        target.write_bytes(marker, b"")
        target.remove(marker)
        if not existed:
            target.unprepare()
    return sum(
        check_file(backup_set, name, piece) for table in backup_set.tables for name, piece in backup_set.stored_files(table)
    )


def check_file(backup_set: BackupSet, name: str, piece: FilePart | RowIndex | None) -> int:
    """Read one file as ``copy_file`` would, and check it against the manifest the same way."""
    sink = HashingSink()
    with backup_set.folder.open_reader(name) as source:
        while chunk := source.read(READ_CHUNK_BYTES):
            sink.write(chunk)
    size, sha256 = sink.hash.bytes, sink.hexdigest()
    _require_as_recorded(backup_set, name, piece, size, sha256)
    return size


def _require_as_recorded(
    backup_set: BackupSet, name: str, piece: FilePart | RowIndex | None, size: int, sha256: str
) -> None:
    if piece is not None and (size, sha256) != (piece.bytes, piece.sha256):
        raise DamagedFileError(
            f"{backup_set.folder.locator(name)} has {size} bytes with sha256 {sha256}, its manifest says "
            f"{piece.bytes} bytes with sha256 {piece.sha256}; the set was not copied"
        )


def copy_file(backup_set: BackupSet, name: str, piece: FilePart | RowIndex | None, target: SetFolder) -> int:
    """Stream one file across, checking its sha256 and size against the manifest on the way."""
    writer = target.open_writer(name)
    try:
        with backup_set.folder.open_reader(name) as source:
            while chunk := source.read(READ_CHUNK_BYTES):
                writer.write(chunk)
        size, sha256 = writer.finish()
        _require_as_recorded(backup_set, name, piece, size, sha256)
        writer.publish()
    except BaseException:
        writer.abandon()
        raise
    return size
