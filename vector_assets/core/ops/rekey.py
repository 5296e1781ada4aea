"""The rekey command: re-encrypt a root's encrypted sets to new recipients (key rotation).

Each set is done on its own, crash-safe like a backup: every encrypted file is streamed through
the identity into a new file under a new name (``<table>_<ts>.k<tag>.<format>.age``, which no
scan takes for a file of the set until the manifest names it), each new file's plaintext is
checked against the old one's and its stored bytes read back, then the manifest is swapped,
last, and the old files go. The swap (``SetFolder.replace_bytes``) never hides the set: on disk
the new manifest is written to ``vector_backup_<ts>.json.swap``, fsynced and renamed over the
old one (a ``.tmp`` would have hidden the set from every scan, this rekey's next run included);
in an object store it is one PUT. A crash before the swap leaves the old set as it was (the new
files and the ``.swap`` are leftovers the next rekey removes); after it, the new set (old files,
likewise). Plaintext sets are left as they are: rekeying changes keys, it does not encrypt.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from vector_assets.core.errors import BackupFileError, ConfigError
from vector_assets.core.hashing import READ_CHUNK_BYTES, sha256_of_stream
from vector_assets.core.sets.age_streams import EncryptingWriter, decrypting
from vector_assets.core.sets.catalog import BackupSet, scan_root
from vector_assets.core.sets.encryption import AGE_SUFFIX, IdentityFile, Recipients
from vector_assets.core.sets.manifest import Manifest, StoredBytes
from vector_assets.core.sets.naming import (
    LOG_FILE_NAME,
    is_rekeyed_file_of,
    manifest_file_name,
    rekeyed_name,
    set_timestamp_of,
    swap_name,
    tmp_name,
)
from vector_assets.core.sets.roots import open_root, remove_quietly
from vector_assets.core.sets.storage import Root, SetFolder
from vector_assets.core.units import count_of, human_size


@dataclass(frozen=True)
class RekeyRequest:
    """Which root, the new recipients, and the identity the sets open with now."""

    root: Root | Path | str
    to: Recipients
    identity_file: IdentityFile
    dry_run: bool = True
    report: Callable[[str], None] | None = field(default=None, compare=False)  # a line per set, as it is done

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", open_root(self.root))
        if self.identity_file.path is None:
            raise ConfigError(f"rekeying reads every encrypted set: set {self.identity_file.source} to its identity file")


@dataclass
class RekeyResult:
    rekeyed: list[str] = field(default_factory=list)  # partition keys
    already: list[str] = field(default_factory=list)  # encrypted to the new recipients already
    plaintext: list[str] = field(default_factory=list)  # not encrypted (legacy sets too): left as they are
    bytes: int = 0  # stored bytes read and written again (on a dry run: read and checked only)
    dry_run: bool = True
    duration_seconds: float = 0.0

    def summary(self) -> str:
        verb = "would rekey" if self.dry_run else "rekeyed"
        return (f"{verb} {count_of(len(self.rekeyed), 'set')} ({human_size(self.bytes)}); "
                f"{len(self.already)} already encrypted to the new recipients; "
                f"{len(self.plaintext)} plaintext left as they are")


def run_rekey(request: RekeyRequest) -> RekeyResult:
    started = time.monotonic()
    result = RekeyResult(dry_run=request.dry_run)
    tag = key_tag(request.to)
    for backup_set in scan_root(request.root):
        manifest = backup_set.manifest
        if manifest is None or not manifest.encrypted:
            result.plaintext.append(backup_set.key)
            continue
        if all(record.recipients == request.to.keys for entry in manifest.tables.values() for record in entry.encrypted_files):
            if not request.dry_run:
                remove_leftovers(backup_set.folder, backup_set.timestamp, manifest)  # of a rekey cut short after its swap
            result.already.append(backup_set.key)
            continue
        stored = sum(record.bytes for record in manifest.file_records().values())
        set_started = time.monotonic()
        if request.dry_run:
            read_through(backup_set, request.identity_file)
        else:
            rekey_set(backup_set, request.to, request.identity_file, tag)
        verb = "read and checked" if request.dry_run else "rekeyed"
        _say(request, f"{verb} set {backup_set.key}: {human_size(stored)} in {time.monotonic() - set_started:.1f} s")
        result.rekeyed.append(backup_set.key)
        result.bytes += stored
    result.duration_seconds = time.monotonic() - started
    return result


def key_tag(recipients: Recipients) -> str:
    """Eight hex digits that name a set of recipients in file names (public keys: no secret)."""
    return hashlib.sha256("\n".join(sorted(recipients.keys)).encode()).hexdigest()[:8]


def rekey_set(backup_set: BackupSet, to: Recipients, identity_file: IdentityFile, tag: str) -> Manifest:
    folder, manifest = backup_set.folder, backup_set.manifest
    remove_leftovers(folder, backup_set.timestamp, manifest)
    readable = decrypting(folder, [manifest], identity_file)
    readable.unlock()
    replaced: dict[str, StoredBytes] = {}
    try:
        for name, record in manifest.file_records().items():
            if record.encrypted is not None:
                replaced[name] = _rewrite(readable, folder, name, record, rekeyed_name(name, backup_set.timestamp, tag), to)
    except BaseException:
        for new in replaced.values():
            remove_quietly(folder, new.file)
        raise
    new_manifest = manifest.with_files(replaced)
    folder.replace_bytes(manifest_file_name(backup_set.timestamp), new_manifest.to_json().encode())
    for name in replaced:
        remove_quietly(folder, name)
    return new_manifest


def _rewrite(readable, folder: SetFolder, name: str, record: StoredBytes, new_name: str, to: Recipients) -> StoredBytes:
    """One file: decrypted (both hashes checked at its end), encrypted to ``to``, published, read back."""
    writer = EncryptingWriter(folder.open_writer(new_name), to, new_name)
    try:
        with readable.open_reader(name) as plain:
            while chunk := plain.read(READ_CHUNK_BYTES):
                writer.write(chunk)
        size, sha256 = writer.finish()
    except BaseException:
        writer.abandon()
        raise
    if (writer.encrypted.plaintext_sha256, writer.encrypted.plaintext_bytes) != (record.plain_sha256, record.plain_bytes):
        writer.abandon()
        raise BackupFileError(f"{new_name} does not hold what {name} holds; the set was left as it was")
    writer.publish()
    with folder.open_reader(new_name) as stored:
        if sha256_of_stream(stored) != sha256:
            raise BackupFileError(f"{new_name} reads back other bytes than were written; the set was left as it was")
    return replace(record, file=new_name, bytes=size, sha256=sha256, encrypted=writer.encrypted)


def read_through(backup_set: BackupSet, identity_file: IdentityFile) -> None:
    """The dry run's part of a set: every encrypted file decrypted with the identity, both hashes
    checked, nothing written."""
    readable = decrypting(backup_set.folder, [backup_set.manifest], identity_file)
    for name, record in backup_set.manifest.file_records().items():
        if record.encrypted is not None:
            with readable.open_reader(name) as plain:
                while plain.read(READ_CHUNK_BYTES):
                    pass


def remove_leftovers(folder: SetFolder, timestamp: str, manifest: Manifest) -> None:
    """Files of this set's timestamp that its manifest does not name: an interrupted rekey's new
    files (before its swap) or old ones (after it), and their tmp files."""
    keep = set(manifest.file_records()) | {manifest_file_name(timestamp), LOG_FILE_NAME}
    for name in folder.names():
        if name in keep or not _of_set(name, timestamp):
            continue
        folder.remove(name)


def _of_set(name: str, timestamp: str) -> bool:
    if name == swap_name(manifest_file_name(timestamp)):
        return True  # a manifest swap cut short: the published manifest stands
    base = name.removesuffix(".tmp")
    if base == manifest_file_name(timestamp):
        return name == tmp_name(base)  # its own .tmp, which a crash left beside it
    if is_rekeyed_file_of(name, timestamp):
        return True
    return set_timestamp_of(name) == timestamp and base.endswith(AGE_SUFFIX)


def _say(request: RekeyRequest, line: str) -> None:
    if request.report is not None:
        request.report(line)
