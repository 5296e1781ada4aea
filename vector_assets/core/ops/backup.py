"""The backup command: stream a store's tables into a new, consistent, verified-on-write set."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import psycopg2.extensions

from vector_assets.core.errors import ConfigError
from vector_assets.core.pg.connection import (
    connect,
    database_errors,
    describe_dsn,
    snapshot_transaction,
)
from vector_assets.core.progress import ProgressReporter
from vector_assets.core.sets.catalog import NewestBackup, newest_backup_in
from vector_assets.core.sets.encryption import EncryptionKeys
from vector_assets.core.sets.formats import CSV, set_format
from vector_assets.core.sets.increments import ParentChoice, choose_parent, schema_problem
from vector_assets.core.sets.manifest import FULL, INCREMENTAL
from vector_assets.core.sets.naming import Location, validate_task_id, validate_timestamp
from vector_assets.core.sets.roots import open_root, writing_to
from vector_assets.core.sets.storage import Root
from vector_assets.core.sets.writer import BackupResult, PartPolicy, SetTarget, free_timestamp, write_set
from vector_assets.core.stores import Store, langchain_store

BACKUP_KINDS = (FULL, INCREMENTAL)


@dataclass(frozen=True)
class BackupRequest:
    """What to back up and where. The CLI, the Dagster op and the tests all build this."""

    dsn: str
    root: Root | Path | str
    task_id: str | None = None
    tables: tuple[str, ...] | None = None  # None: every table of the store
    timestamp: str | None = None
    format: str = CSV.name
    parts: PartPolicy = PartPolicy()
    progress: ProgressReporter | None = field(default=None, compare=False)
    kind: str = FULL  # or INCREMENTAL: only what changed since the newest set in the location
    row_index: bool | None = None  # write the row index increments compare with; None: see wants_row_index
    store: Store = field(default_factory=langchain_store)
    encryption: EncryptionKeys = EncryptionKeys()  # recipients to encrypt to; an increment reads its parent's index

    def __post_init__(self) -> None:
        set_format(self.format)
        if self.kind not in BACKUP_KINDS:
            raise ConfigError(f"backup kind {self.kind!r} must be one of {', '.join(BACKUP_KINDS)}")
        object.__setattr__(self, "tables", self.store.select_tables(self.tables))
        object.__setattr__(self, "root", open_root(self.root))
        if self.timestamp is not None:
            validate_timestamp(self.timestamp)
        if self.task_id is not None:
            validate_task_id(self.task_id)

    @property
    def location(self) -> Location:
        return Location(self.task_id)


def run_backup(request: BackupRequest) -> BackupResult:
    """Export every requested table inside one REPEATABLE READ snapshot, then publish the set."""
    folder = request.location.folder(request.root)
    with writing_to(folder):
        folder.prepare()
        names = folder.names()  # listed once: for the recipients, the timestamp, the parent and the row index
        recipients = request.encryption.recipients_for(folder, names=names)
        timestamp = free_timestamp(folder, request.timestamp, names)
    looks_back = request.kind == INCREMENTAL or request.row_index is None
    newest = newest_backup_in(folder, names) if looks_back else None
    choice = (
        choose_parent(folder, request.tables, newest, request.encryption.identity_file)
        if request.kind == INCREMENTAL else ParentChoice(None, None)
    )
    conn = connect(request.dsn)
    try:
        with database_errors(conn, "during the backup"), snapshot_transaction(conn) as cursor:
            target = SetTarget(
                folder, request.location, timestamp, describe_dsn(request.dsn).as_dict(),
                format=request.format, parts=request.parts, dsn=request.dsn, progress=request.progress,
                kind=FULL, row_index=wants_row_index(request, newest), encrypt_to=recipients, keys=request.encryption,
                store=request.store.name, layout=request.store.layout,
                data_checks=request.store.data_check_plan(),
            )
            target = settle_kind(cursor, target, request, choice)
            return write_set(cursor, target, request.tables)
    finally:
        conn.close()


def wants_row_index(request: BackupRequest, newest: NewestBackup | None) -> bool:
    """Whether a set gets a row index (what the next increment compares with). Unless the request
    says, a location that uses increments keeps one: an increment, or a set after an indexed one
    (``newest``, safety sets skipped). So a daily full set carries on the chain of hourly
    increments, and nobody else pays for it."""
    if request.row_index is not None:
        return request.row_index
    if request.kind == INCREMENTAL:
        return True
    if newest is None or newest.manifest is None:
        return False
    return any(entry.rows_index is not None for entry in newest.manifest.tables.values())


def settle_kind(
    cursor: psycopg2.extensions.cursor, target: SetTarget, request: BackupRequest, choice: ParentChoice
) -> SetTarget:
    """An increment on the chosen parent, or a full set that says why it is not an increment."""
    if request.kind != INCREMENTAL:
        return target
    fallback = choice.fallback or schema_problem(cursor, choice.parent, request.tables)
    if fallback:
        return replace(target, fallback=f"an incremental backup was asked for; this is a full one, because {fallback}")
    return replace(target, kind=INCREMENTAL, parent=choice.parent)
