"""A restore's one transaction, and its safety set: what the restore replaces, kept in a
``pre_restore`` set written in the same transaction, and discarded when it rolls back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2.extensions

from vector_assets.core.errors import ConfigError, SafetyBackupError, VectorAssetsError
from vector_assets.core.ops.restore.request import RestoreRequest, RestoreResult, TableRestore
from vector_assets.core.pg.connection import describe_dsn, rollback_quietly
from vector_assets.core.sets.catalog import BackupSet
from vector_assets.core.sets.encryption import Recipients
from vector_assets.core.sets.formats import CSV, PGCOPY, SetFormat, set_format
from vector_assets.core.sets.manifest import PRE_RESTORE
from vector_assets.core.sets.naming import LOG_FILE_NAME
from vector_assets.core.sets.roots import writing_to
from vector_assets.core.sets.storage import SetFolder
from vector_assets.core.sets.writer import BackupResult, SetTarget, free_timestamp, write_set


@contextmanager
def restore_transaction(
    conn: psycopg2.extensions.connection, request: RestoreRequest, result: RestoreResult
) -> Iterator[psycopg2.extensions.cursor]:
    """A restore's one transaction: committed when the body returns; on any error rolled back,
    and the safety set written in it discarded with its log block.

    A dry run does everything the real run does (the lock, the safety set, conflicts, checks,
    index builds) and fails where it would fail, with the same message; only the commit is left
    out, and the safety set it wrote is discarded, so it predicts the real run honestly."""
    committing = False
    safety_folder = result.backup_set.location.folder(request.root)  # local, even when reading offsite
    log_before = safety_folder.read_bytes(LOG_FILE_NAME) if request.safety_backup else None
    try:
        with conn.cursor() as cursor:
            yield cursor
        if request.dry_run:
            conn.rollback()
            if result.safety_set is not None:
                _discard_safety_set(result.safety_set, log_before)
                result.safety_set = None
            return
        committing = True
        conn.commit()
    except BaseException:
        rollback_quietly(conn)
        if result.safety_set is not None and not committing:
            _discard_safety_set(result.safety_set, log_before)  # the target is as it was
        raise


def _discard_safety_set(safety_set: BackupResult, log_before: bytes | None) -> None:
    """Best effort: a safety set of a restore that rolled back only duplicates the target."""
    try:
        safety_set.discard(log_before)
    except (VectorAssetsError, OSError):
        pass


def back_up_what_is_replaced(
    cursor: psycopg2.extensions.cursor, request: RestoreRequest, backup_set: BackupSet, outcomes: dict[str, TableRestore],
    absent_collections: tuple[str, ...] = (),
) -> BackupResult | None:
    """The guarded truncate's mechanism, reused: under the lock and in the restore's own
    transaction, the tables as they are now go into a ``pre_restore`` set beside the set being
    restored. If it cannot be written, nothing is restored. An empty target needs none."""
    if not request.safety_backup or not any(o.rows_before for o in outcomes.values()):
        return None
    folder = backup_set.location.folder(request.root)
    with writing_to(folder):
        folder.prepare()
    target = SetTarget(
        folder, backup_set.location, free_timestamp(folder, None), describe_dsn(request.target_dsn).as_dict(),
        kind=PRE_RESTORE, progress=request.progress, format=safety_set_format(backup_set),
        absent_collections=absent_collections, encrypt_to=_safety_set_recipients(request, backup_set, folder),
        store=request.store.name, layout=request.store.layout,
        data_checks=request.store.data_check_plan(),
    )
    try:
        return write_set(cursor, target, tuple(outcomes))
    except VectorAssetsError as error:
        raise SafetyBackupError(f"the safety backup of what the restore would replace failed, so nothing was restored: {error}") from error


def _safety_set_recipients(request: RestoreRequest, backup_set: BackupSet, folder: SetFolder) -> Recipients | None:
    """What the restore replaces is encrypted to the configured recipients, else to those of the
    set being restored: it holds the same kind of data, and no less safely."""
    like = backup_set.manifest.recipients if backup_set.manifest is not None else ()
    try:
        return request.encryption.recipients_for(folder, like)
    except ConfigError as error:
        raise SafetyBackupError(f"the safety backup of what the restore would replace cannot be written, so nothing was restored: {error}") from None


def safety_set_format(backup_set: BackupSet) -> str:
    """Binary COPY, compressed as the set being restored is: what the restore replaces goes back
    into the same database if it is undone, where the binary form always loads, and it is the
    fastest to write before the load (it delays every default restore) and to load back."""
    restored = set_format(backup_set.manifest.format) if backup_set.manifest is not None else CSV
    return SetFormat(PGCOPY.copy_format, restored.codec).name
