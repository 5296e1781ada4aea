"""The restore command: load a set into the same or another database, in one transaction.

Checked before the transaction starts: the set's files, headers and row counts, the pgvector
extension on the target (or the right to create it), and the columns by name and type. A table
the target lacks is created from the definition in the set's manifest, and its indexes are
built after its rows are in. Each file's sha256 is checked on
the same read that feeds COPY, before anything commits. Then, in one transaction:
optional TRUNCATE, COPY collections before embeddings, compare row counts, commit. Any error
rolls back, so the tables are exactly as before.

A restore of one collection (``collection``) runs its own transaction, built on the same
stage (``stage_rows``): see ``collection_restore``.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.errors import (
    BackupFileError,
    ColumnMismatchError,
    ConfigError,
    ExtensionMissingError,
    IncompleteBackupSetError,
    MissingTableDefinitionError,
    RestoreConflictError,
    RestoreLoadError,
    SafetyBackupError,
    VectorAssetsError,
)
from vector_assets.core.hashing import HashingReader
from vector_assets.core.ops.backup import (
    BackupResult,
    SetTarget,
    free_timestamp,
    write_set,
)
from vector_assets.core.ops.chain_restore import (
    PlannedIncrement,
    apply_increment,
    plan_increments,
    split_chain,
    verify_final,
)
from vector_assets.core.pg.catalog import (
    Column,
    count_rows,
    primary_key,
    read_columns,
    server_versions,
    table_exists,
)
from vector_assets.core.pg.connection import (
    connect,
    connection_lost,
    database_errors,
    describe_dsn,
    rollback_quietly,
)
from vector_assets.core.pg.copy import copy_in
from vector_assets.core.pg.ddl import TableDefinition, create_table, indexes_to_build
from vector_assets.core.pg.index_builds import BuildWatch, IndexBuild, IndexBuildSettings
from vector_assets.core.pg.indexes import (
    SavedIndex,
    SavedKey,
    add_constraint,
    drop_foreign_keys,
    drop_primary_key,
    drop_secondary_indexes,
    drop_unique_constraints,
    drop_unique_indexes,
    recreate_indexes,
)
from vector_assets.core.pg.table_changes import (
    advance_owned_sequences,
    count_conflicts,
    count_repeated_keys,
    create_stage,
    insert_from_stage,
    lock_against_writers,
    other_unique_constraints,
    truncate_with_brief_waits,
)
from vector_assets.core.progress import CopyEstimate, ProgressReporter, reader_for
from vector_assets.core.sets.catalog import BackupSet
from vector_assets.core.sets.chains import ChainLink
from vector_assets.core.sets.copies import choose_copy
from vector_assets.core.sets.formats import (
    CSV,
    DecodingReader,
    SetFormat,
    format_of_file,
    read_header,
    rows_in,
)
from vector_assets.core.sets.manifest import PRE_RESTORE, FilePart, RowIndex
from vector_assets.core.sets.naming import LOG_FILE_NAME
from vector_assets.core.sets.roots import (
    Root,
    SetFolder,
    discard_set,
    open_root,
    writing_to,
)
from vector_assets.core.tables import (
    EMBEDDING_TABLE,
    MANAGED_TABLES,
    require_embeddings_with_collections,
    validate_collection_request,
    validate_tables,
)
from vector_assets.core.units import count_of

if TYPE_CHECKING:
    from vector_assets.core.ops.collection_restore import CollectionRestore

ON_CONFLICT_CHOICES = ("error", "skip")
KEY_IN_TABLE = "key already in the table"
KEY_REPEATED = "key repeated in the file"
DURING_RESTORE = "during the restore, on the target"


@dataclass(frozen=True)
class RestoreRequest:
    """Which set, which tables, how, and into which database (a DSN from the environment)."""

    target_dsn: str
    root: Root | Path | str
    timestamp: str
    backup_path: str | None = None
    tables: tuple[str, ...] = MANAGED_TABLES
    truncate_before_restore: bool = False
    dry_run: bool = False
    on_conflict: str = "error"
    configured_root: str | None = None
    safety_backup: bool = True  # back up what the restore replaces, in its own transaction
    offsite_root: Root | Path | str | None = None  # read from here when the local copy is missing or damaged
    progress: ProgressReporter | None = field(default=None, compare=False)
    index_builds: IndexBuildSettings = IndexBuildSettings()
    collection: str | None = None  # restore only this collection (by its name in the set)
    rename_collection_to: str | None = None  # ...as a new collection of this name, beside the current one

    def __post_init__(self) -> None:
        object.__setattr__(self, "tables", validate_tables(self.tables))
        validate_collection_request(self.collection, self.rename_collection_to, self.tables)
        object.__setattr__(self, "root", open_root(self.root))
        if self.offsite_root is not None:
            object.__setattr__(self, "offsite_root", open_root(self.offsite_root))
        if self.on_conflict not in ON_CONFLICT_CHOICES:
            raise ConfigError(f"on_conflict {self.on_conflict!r} must be one of {', '.join(ON_CONFLICT_CHOICES)}")
        if self.truncate_before_restore:
            require_embeddings_with_collections(self.tables, "truncating before restore")


@dataclass
class TableRestore:
    table: str
    file: str
    bytes: int
    rows_in_set: int
    rows_before: int = 0
    rows_truncated: int = 0
    rows_loaded: int = 0
    rows_skipped: int = 0
    conflicts: int = 0
    first_conflict: str | None = None
    skipped_because: dict[str, int] = field(default_factory=dict)  # why rows were skipped, and how many
    duration_seconds: float = 0.0


@dataclass
class RestoreResult:
    backup_set: BackupSet
    dry_run: bool
    truncated: bool
    tables: list[TableRestore] = field(default_factory=list)
    indexes_rebuilt: list[str] = field(default_factory=list)
    index_builds: list[IndexBuild] = field(default_factory=list)
    sequences_advanced: list[str] = field(default_factory=list)
    tables_created: list[str] = field(default_factory=list)  # from the set's definitions
    safety_set: BackupResult | None = None  # what the restore replaced, as a pre_restore set
    safety_backup: bool = True
    duration_seconds: float = 0.0
    read_from_offsite: str | None = None  # why the offsite copy was read, if it was
    collection: CollectionRestore | None = None  # what a collection restore did, by name and uuid


@dataclass(frozen=True)
class PlannedFile:
    name: str
    format: SetFormat
    sha256: str | None  # from the manifest; checked on the one read that feeds COPY
    bytes: int
    rows: int | None  # from the manifest, for the progress lines


@dataclass(frozen=True)
class PlannedTable:
    table: str
    folder: SetFolder
    files: list[PlannedFile]  # the whole table, or its parts in order
    header: list[str]  # the columns, in the files' order
    rows_in_set: int  # in the files above: for an increment's chain, its base set's
    definition: TableDefinition | None  # from the manifest; creates the table if the target lacks it
    increments: list[PlannedIncrement] = field(default_factory=list)  # applied in order after the files
    final: RowIndex | None = None  # what the table holds after the increments: rows and content digest

    @property
    def rows_after(self) -> int:
        return self.final.rows if self.final is not None else self.rows_in_set

    @property
    def label(self) -> str:
        first = self.files[0].name
        label = first if len(self.files) == 1 else f"{first} (and {len(self.files) - 1} more parts)"
        if self.increments:
            label += f" + {len(self.increments)} increments up to {self.increments[-1].timestamp}"
        return label

    @property
    def bytes(self) -> int:
        return sum(file.bytes for file in self.files)


def run_restore(request: RestoreRequest) -> RestoreResult:
    started = time.monotonic()
    chosen = choose_copy(
        request.root, request.offsite_root, request.timestamp, request.backup_path, request.configured_root
    )
    backup_set = chosen.backup_set
    base_set, increments = split_chain(backup_set)
    planned = [plan_table(base_set, table, increments) for table in request.tables]
    conn = connect(request.target_dsn)
    try:
        with database_errors(conn, DURING_RESTORE):
            to_create = check_target(conn, backup_set, planned)
            result = RestoreResult(
                backup_set, request.dry_run, request.truncate_before_restore, safety_backup=request.safety_backup,
                read_from_offsite=chosen.note,
            )
            if request.collection is not None:
                from vector_assets.core.ops.collection_restore import load_collection  # it builds on this module

                load_collection(conn, request, planned, to_create, result)
            else:
                _load_in_one_transaction(conn, request, planned, to_create, result)
    finally:
        conn.close()
    result.duration_seconds = time.monotonic() - started
    return result


def plan_table(backup_set: BackupSet, table: str, increments: list[ChainLink] | None = None) -> PlannedTable:
    """Check one table's files before touching the database: present, parseable header; and,
    restoring an increment, every increment's files of the table, ``backup_set`` being the base."""
    if table not in backup_set.tables:
        raise IncompleteBackupSetError(f"set {backup_set.key} has no {table} file")
    files = [_plan_file(backup_set, name, piece) for name, piece in backup_set.data_files(table)]
    plan = _plan_base(backup_set, table, files)
    if not increments:
        return plan
    planned, final = plan_increments(backup_set.folder, table, increments, partial(_plan_file, backup_set))
    return replace(plan, increments=planned, final=final)


def _plan_file(backup_set: BackupSet, name: str, piece: FilePart | None) -> PlannedFile:
    size = backup_set.folder.size(name)
    if size is None:
        raise IncompleteBackupSetError(f"set {backup_set.key} is missing {name} in {backup_set.folder}")
    return PlannedFile(name, format_of_file(name), piece.sha256 if piece else None, size, piece.rows if piece else None)


def _plan_base(backup_set: BackupSet, table: str, files: list[PlannedFile]) -> PlannedTable:
    entry = backup_set.manifest.tables.get(table) if backup_set.manifest else None
    manifest_columns = [column.name for column in entry.columns] if entry is not None else None
    folder = backup_set.folder
    header = manifest_columns if files[0].format.binary else _read_header(folder, files[0])
    if entry is None:
        return PlannedTable(table, folder, files, header, rows_in(folder, files[0].name), None)
    if header != manifest_columns:
        raise ColumnMismatchError(f"{files[0].name} header {header} differs from the manifest's columns")
    return PlannedTable(table, folder, files, header, entry.rows, entry.definition)


def _read_header(folder: SetFolder, file: PlannedFile) -> list[str]:
    try:
        with folder.open_reader(file.name) as handle:
            return read_header(DecodingReader(file.format, handle, file.name))
    except (csv.Error, UnicodeDecodeError) as error:
        raise BackupFileError(f"{file.name} is not valid CSV: {error}") from None


def check_target(
    conn: psycopg2.extensions.connection, backup_set: BackupSet, planned: list[PlannedTable]
) -> list[PlannedTable]:
    """The target has pgvector (or the role may create it), and every table has the set's
    columns by name and type, or is missing and can be created from the set: those are returned."""
    with conn.cursor() as cursor:
        to_create = [plan for plan in planned if not table_exists(cursor, plan.table)]
        for plan in to_create:
            if plan.definition is None:
                raise MissingTableDefinitionError(
                    f"table {plan.table} does not exist in the target, and set {backup_set.key} holds no table "
                    "definitions (it was made before vector_assets 0.3, or by another tool): create the tables first"
                )
        if server_versions(cursor)[1] is None:
            _require_right_to_create_the_extension(cursor)
        for plan in planned:
            if plan not in to_create:
                _compare_columns(plan, read_columns(cursor, plan.table), backup_set)
    conn.rollback()
    return to_create


def _require_right_to_create_the_extension(cursor: psycopg2.extensions.cursor) -> None:
    """Try it, and take it back: the real CREATE EXTENSION runs in the restore's transaction."""
    cursor.execute("SAVEPOINT probe_extension")
    try:
        cursor.execute("CREATE EXTENSION vector")
    except psycopg2.Error as error:
        cursor.execute("ROLLBACK TO SAVEPOINT probe_extension")
        cursor.execute("SELECT current_user, current_database()")
        role, database = cursor.fetchone()
        raise ExtensionMissingError(
            f"the target database {database} has no 'vector' extension and role {role} may not create it "
            f"({error.pgerror.splitlines()[0].removeprefix('ERROR:').strip() if error.pgerror else type(error).__name__}): "
            "ask a superuser to run CREATE EXTENSION vector there; nothing was changed"
        ) from None
    cursor.execute("ROLLBACK TO SAVEPOINT probe_extension")


def _compare_columns(plan: PlannedTable, target: list[Column], backup_set: BackupSet) -> None:
    target_names = [column.name for column in target]
    missing = [name for name in plan.header if name not in target_names]
    extra = [name for name in target_names if name not in plan.header]
    if missing or extra:
        raise ColumnMismatchError(
            f"table {plan.table}: set columns not in the target: {missing or 'none'}; "
            f"target columns not in the set: {extra or 'none'}"
        )
    entry = backup_set.manifest.tables.get(plan.table) if backup_set.manifest else None
    target_types = {column.name: column.type for column in target}
    for column in entry.columns if entry else []:
        if target_types[column.name] != column.type:
            raise ColumnMismatchError(
                f"table {plan.table} column {column.name}: the set has {column.type}, the target has {target_types[column.name]}"
            )


def _load_in_one_transaction(
    conn: psycopg2.extensions.connection,
    request: RestoreRequest,
    planned: list[PlannedTable],
    to_create: list[PlannedTable],
    result: RestoreResult,
) -> None:
    with restore_transaction(conn, request, result) as cursor:
        result.tables_created = _create_tables(cursor, to_create)
        if request.safety_backup:
            lock_against_writers(cursor, tuple(plan.table for plan in planned))
        outcomes = {plan.table: _outcome(cursor, plan) for plan in planned}
        result.safety_set = _back_up_what_is_replaced(cursor, request, result.backup_set, outcomes)
        if request.truncate_before_restore:
            _truncate(cursor, planned, outcomes)
        in_place = [plan for plan in planned if _loads_in_place(request, plan in to_create)]
        dropped, dropped_keys = _drop_for_the_load(cursor, [plan.table for plan in in_place])
        for plan in planned:
            _load_table(cursor, plan, outcomes[plan.table], request, created=plan in to_create)
        _add_keys_back(cursor, dropped_keys, next((plan for plan in planned if plan.table == EMBEDDING_TABLE), None))
        _apply_chain_in_place(cursor, in_place, outcomes, request)
        to_build = dropped + [index for plan in to_create for index in indexes_to_build(cursor, plan.table, plan.definition)]
        finish_tables(conn, cursor, request, planned, to_build, outcomes, result)


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


def finish_tables(
    conn: psycopg2.extensions.connection,
    cursor: psycopg2.extensions.cursor,
    request: RestoreRequest,
    planned: list[PlannedTable],
    to_build: list,
    outcomes: dict[str, TableRestore],
    result: RestoreResult,
) -> None:
    """Build the indexes, advance the sequences, and record what each table went through."""
    result.index_builds = _rebuild(conn, cursor, request, to_build, outcomes)
    result.indexes_rebuilt = [build.name for build in result.index_builds]
    result.sequences_advanced = [seq for plan in planned for seq in advance_owned_sequences(cursor, plan.table)]
    result.tables = list(outcomes.values())


def _rebuild(
    conn: psycopg2.extensions.connection,
    cursor: psycopg2.extensions.cursor,
    request: RestoreRequest,
    dropped: list,
    outcomes: dict[str, TableRestore],
) -> list[IndexBuild]:
    """Build the dropped indexes, sized for the rows now in the table and watched if asked."""
    rows = outcomes[EMBEDDING_TABLE].rows_loaded if EMBEDDING_TABLE in outcomes else 0
    watch = BuildWatch(request.target_dsn, conn.get_backend_pid(), request.progress) if request.progress else None
    return recreate_indexes(cursor, dropped, rows, request.index_builds, watch)


def _discard_safety_set(safety_set: BackupResult, log_before: bytes | None) -> None:
    """Best effort: a safety set of a restore that rolled back only duplicates the target."""
    try:
        data_files = tuple(piece.file for entry in safety_set.manifest.tables.values() for piece in entry.pieces)
        discard_set(safety_set.folder, safety_set.timestamp, log_before, data_files)
    except (VectorAssetsError, OSError):
        pass


def _back_up_what_is_replaced(
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
        kind=PRE_RESTORE, progress=request.progress, format=_safety_set_format(backup_set),
        absent_collections=absent_collections,
    )
    try:
        return write_set(cursor, target, tuple(outcomes))
    except VectorAssetsError as error:
        raise SafetyBackupError(f"the safety backup of what the restore would replace failed, so nothing was restored: {error}") from error


def _safety_set_format(backup_set: BackupSet) -> str:
    """The format of the set being restored: whoever chose a fast or small format for it gets
    the same for what the restore replaces."""
    return backup_set.manifest.format if backup_set.manifest is not None else CSV.name


def _outcome(cursor: psycopg2.extensions.cursor, plan: PlannedTable) -> TableRestore:
    return TableRestore(plan.table, plan.label, plan.bytes, plan.rows_after, rows_before=count_rows(cursor, plan.table))


def _truncate(cursor: psycopg2.extensions.cursor, planned: list[PlannedTable], outcomes: dict[str, TableRestore]) -> None:
    names = [plan.table for plan in planned]
    truncate_with_brief_waits(cursor, names)
    for name in names:
        outcomes[name].rows_truncated = outcomes[name].rows_before


def _create_tables(cursor: psycopg2.extensions.cursor, to_create: list[PlannedTable]) -> list[str]:
    if to_create:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
    for plan in to_create:
        try:
            create_table(cursor, plan.definition)
        except psycopg2.OperationalError:
            raise
        except psycopg2.Error as error:
            raise RestoreLoadError(
                f"creating table {plan.table} from the set's definition failed: {str(error).strip()}; nothing was restored"
            ) from None
    return [plan.table for plan in to_create]


def _load_table(
    cursor: psycopg2.extensions.cursor, plan: PlannedTable, outcome: TableRestore, request: RestoreRequest, created: bool
) -> None:
    started = time.monotonic()
    if _loads_in_place(request, created):
        # FREEZE is allowed because the table was truncated or created in this transaction; it
        # spares the later hint-bit rewrite of every loaded page.
        outcome.rows_loaded = copy_file_into(
            cursor, plan, sql.Identifier(plan.table), freeze=True, progress=request.progress
        )
        expected = plan.rows_in_set  # an increment's chain is applied to every table afterwards
    else:
        _append_through_stage(cursor, plan, outcome, request)
        expected = plan.rows_after
    if outcome.rows_loaded + outcome.rows_skipped != expected:
        raise BackupFileError(
            f"{plan.label}: loaded {count_of(outcome.rows_loaded, 'row')} and skipped {outcome.rows_skipped}, "
            f"but the set has {expected}"
        )
    outcome.duration_seconds = time.monotonic() - started


def _drop_for_the_load(
    cursor: psycopg2.extensions.cursor, emptied: list[str]
) -> tuple[list[SavedIndex], list[SavedKey]]:
    """Indexes and keys of an embeddings table that this transaction emptied or created, dropped
    so the load does not maintain them row by row; the keys come back right after it."""
    if EMBEDDING_TABLE not in emptied:
        return [], []
    indexes = drop_secondary_indexes(cursor, EMBEDDING_TABLE)
    primary_key = drop_primary_key(cursor, EMBEDDING_TABLE)
    foreign_keys = drop_foreign_keys(cursor, EMBEDDING_TABLE, held=tuple(emptied))
    return indexes, ([primary_key] if primary_key else []) + foreign_keys


KEY_KINDS = {"PRIMARY KEY": "primary key", "UNIQUE": "unique constraint", "FOREIGN KEY": "foreign key"}


def _add_keys_back(cursor: psycopg2.extensions.cursor, keys: list[SavedKey], plan: PlannedTable | None) -> None:
    """The keys dropped for the load, back; a repeated or missing key in the set is named here."""
    for key in keys:
        kind = next((kind for prefix, kind in KEY_KINDS.items() if key.definition.startswith(prefix)), "constraint")
        with _named_conflict(key.table, f"{plan.label if plan else key.table} cannot have {kind} {key.name}"):
            add_constraint(cursor, key)


def _add_unique_indexes_back(cursor: psycopg2.extensions.cursor, indexes: list[SavedIndex]) -> None:
    for index in indexes:
        with _named_conflict(index.table, f"the restored rows cannot have unique index {index.name}"):
            recreate_indexes(cursor, [index])


@contextmanager
def _named_conflict(table: str, what: str) -> Iterator[None]:
    try:
        yield
    except (psycopg2.IntegrityError, psycopg2.DataError) as error:
        detail = (error.diag.message_detail or error.diag.message_primary or str(error)).strip()
        raise RestoreConflictError(f"table {table}: {what} ({detail}); nothing was restored") from None


def _loads_in_place(request: RestoreRequest, created: bool) -> bool:
    return request.truncate_before_restore or created


def _apply_chain_in_place(
    cursor: psycopg2.extensions.cursor, plans: list[PlannedTable], outcomes: dict[str, TableRestore],
    request: RestoreRequest,
) -> None:
    """Each increment across the tables in turn: its deleted keys, then its changed rows.

    An increment holds the rows as they are at its two ends, never the order of the writes in
    between: a collection deleted and created again under its name with a new uuid, two names
    swapped, a key taken by another row. So the foreign keys between the tables, the unique
    constraints and the unique indexes are off while the chain applies (this transaction
    emptied or created the tables, so it holds them), and come back after the last increment,
    checking every row at once. The primary keys stay: each increment keys its rows by them.
    """
    if not plans or not plans[0].increments:
        return
    started = time.monotonic()
    keys, unique_indexes = _relax_for_the_chain(cursor, [plan.table for plan in plans])
    for step in range(len(plans[0].increments)):
        for plan in reversed(plans):
            apply_increment(cursor, plan.table, sql.Identifier(plan.table), plan.increments[step], plan.header,
                            partial(_load_files, cursor, plan, request.progress), upserts=False)
        for plan in plans:
            apply_increment(cursor, plan.table, sql.Identifier(plan.table), plan.increments[step], plan.header,
                            partial(_load_files, cursor, plan, request.progress), deletes=False)
    for plan in plans:
        outcomes[plan.table].rows_loaded = verify_final(
            cursor, plan.table, sql.Identifier(plan.table), plan.header, plan.final, plan.increments[-1].timestamp
        )
    _add_keys_back(cursor, keys, None)
    _add_unique_indexes_back(cursor, unique_indexes)
    for plan in plans:
        outcomes[plan.table].duration_seconds += (time.monotonic() - started) / len(plans)


def _relax_for_the_chain(cursor: psycopg2.extensions.cursor, held: list[str]) -> tuple[list[SavedKey], list[SavedIndex]]:
    """Foreign keys between the held tables first (they may rely on a unique constraint), then
    unique constraints and unique indexes."""
    foreign = [key for table in held for key in drop_foreign_keys(cursor, table, held=tuple(held))]
    unique = [key for table in held for key in drop_unique_constraints(cursor, table)]
    indexes = [index for table in held for index in drop_unique_indexes(cursor, table)]
    return unique + foreign, indexes


def _apply_chain_to_stage(
    cursor: psycopg2.extensions.cursor, plan: PlannedTable, stage: sql.Identifier, progress: ProgressReporter | None
) -> int:
    """A stage holds one table, with no foreign key to keep: its increments apply one after the other."""
    for increment in plan.increments:
        apply_increment(cursor, plan.table, stage, increment, plan.header, partial(_load_files, cursor, plan, progress))
    return verify_final(cursor, plan.table, stage, plan.header, plan.final, plan.increments[-1].timestamp)


def _load_files(
    cursor: psycopg2.extensions.cursor, plan: PlannedTable, progress: ProgressReporter | None,
    files: list[PlannedFile], relation: sql.Identifier, folder: SetFolder,
) -> int:
    """An increment's changed rows, loaded like a set's files (sha256 checked on the same read)."""
    return copy_file_into(cursor, replace(plan, files=files, folder=folder), relation, progress=progress)


def copy_file_into(
    cursor: psycopg2.extensions.cursor,
    plan: PlannedTable,
    table: sql.Composable,
    freeze: bool = False,
    progress: ProgressReporter | None = None,
) -> int:
    """COPY the table's files in, hashing each on the same read; a sha256 mismatch raises
    before commit.

    Hashing while loading reads a large set once instead of twice. Because the whole restore
    is one transaction, a mismatch found here still leaves the tables exactly as before.
    """
    return sum(_copy_one_file(cursor, plan, file, table, freeze, progress) for file in plan.files)


def _copy_one_file(
    cursor: psycopg2.extensions.cursor,
    plan: PlannedTable,
    file: PlannedFile,
    table: sql.Composable,
    freeze: bool,
    progress: ProgressReporter | None,
) -> int:
    name = file.name
    try:
        with plan.folder.open_reader(name) as handle:
            reader = HashingReader(handle)
            source, meter = reader_for(progress, reader, CopyEstimate("restore", plan.table, file.rows, file.bytes))
            decoded = DecodingReader(file.format, source, name)
            rows = copy_in(cursor, table, plan.header, decoded, freeze=freeze, options=file.format.copy_options)
    except psycopg2.Error as error:
        if decoded.failure is not None:
            raise decoded.failure from None
        if connection_lost(cursor.connection):
            raise  # the connection died: the caller's database_errors says so, retryable
        raise _load_error(name, plan.table, error) from None
    if file.sha256 is not None and reader.hexdigest() != file.sha256:
        raise BackupFileError(f"{name} sha256 does not match the manifest; nothing was restored")
    if meter is not None:
        meter.finish(rows)
    return rows


def _load_error(name: str, table: str, error: psycopg2.Error) -> Exception:
    if isinstance(error, psycopg2.DataError):
        return BackupFileError(f"loading {name} into {table} failed: {str(error).strip()}")
    if isinstance(error, psycopg2.OperationalError):
        return error
    return RestoreLoadError(f"loading {name} into {table} failed: {str(error).strip()}")


def stage_rows(
    cursor: psycopg2.extensions.cursor, plan: PlannedTable, progress: ProgressReporter | None
) -> tuple[sql.Identifier, int]:
    """Load the set's rows of this table into a temporary stage; returns the stage and the rows staged.

    Whatever reads a set's rows before deciding what to insert (an append, a collection restore)
    reads them through here, so it sees the rows as the set holds them.
    """
    stage = create_stage(cursor, plan.table)
    staged = copy_file_into(cursor, plan, stage, progress=progress)
    if plan.increments:
        staged = _apply_chain_to_stage(cursor, plan, stage, progress)
    return stage, staged


def _append_through_stage(
    cursor: psycopg2.extensions.cursor, plan: PlannedTable, outcome: TableRestore, request: RestoreRequest
) -> None:
    """Load into a temporary copy first, so conflicts can be named or skipped before inserting.

    The stage's COPY counts the file's rows independently of the insert, so loaded + skipped is
    checked against the set, never computed from it.
    """
    stage, staged = stage_rows(cursor, plan, request.progress)
    append_from_stage(cursor, plan, outcome, request, stage, staged)


def append_from_stage(
    cursor: psycopg2.extensions.cursor,
    plan: PlannedTable,
    outcome: TableRestore,
    request: RestoreRequest,
    stage: sql.Identifier,
    staged: int,
) -> None:
    """Insert the ``staged`` rows of ``stage``, refusing or skipping conflicts as the request says."""
    key = primary_key(cursor, plan.table)
    outcome.conflicts, outcome.first_conflict = count_conflicts(cursor, plan.table, stage, key)
    repeated, first_repeated = count_repeated_keys(cursor, plan.table, stage, key)
    if request.on_conflict == "error":
        _refuse_conflicts(plan, outcome, key, repeated, first_repeated)
        outcome.rows_loaded = _insert_or_name_the_conflict(cursor, plan, stage)
    else:
        outcome.rows_loaded = insert_from_stage(cursor, plan.table, stage, plan.header, skip_conflicts=True)
        outcome.rows_skipped = staged - outcome.rows_loaded
        outcome.skipped_because = _why_skipped(cursor, plan, outcome, repeated)


def _refuse_conflicts(
    plan: PlannedTable, outcome: TableRestore, key: list[str], repeated: int, first_repeated: str | None
) -> None:
    hint = "(to skip them: on_conflict: skip, --on-conflict skip; to replace the rows: truncate_before_restore: true, --replace)"
    if outcome.conflicts:
        raise RestoreConflictError(
            f"table {plan.table}: {count_of(outcome.conflicts, 'row')} of {plan.label} already "
            f"{'exists' if outcome.conflicts == 1 else 'exist'}; "
            f"first conflicting {', '.join(key)} = {outcome.first_conflict} {hint}"
        )
    if repeated:
        raise RestoreConflictError(
            f"table {plan.table}: {plan.label} repeats {count_of(repeated, 'key')}; first repeated "
            f"{', '.join(key)} = {first_repeated}; nothing was restored {hint}"
        )


def _insert_or_name_the_conflict(cursor: psycopg2.extensions.cursor, plan: PlannedTable, stage: sql.Identifier) -> int:
    try:
        return insert_from_stage(cursor, plan.table, stage, plan.header, skip_conflicts=False)
    except psycopg2.IntegrityError as error:
        detail = (error.diag.message_detail or "").strip()
        raise RestoreConflictError(
            f"table {plan.table}: a row of {plan.label} conflicts with constraint "
            f"{error.diag.constraint_name}: {detail or str(error).strip()}; nothing was restored "
            "(use on_conflict: skip, or truncate_before_restore)"
        ) from None


def _why_skipped(
    cursor: psycopg2.extensions.cursor, plan: PlannedTable, outcome: TableRestore, repeated: int
) -> dict[str, int]:
    """Split the skipped rows by cause; what the key explains not, another unique index did."""
    reasons = {KEY_IN_TABLE: outcome.conflicts, KEY_REPEATED: repeated}
    other = outcome.rows_skipped - outcome.conflicts - repeated
    if other < 0:
        raise RestoreLoadError(
            f"table {plan.table}: {count_of(outcome.rows_skipped, 'row')} skipped but {outcome.conflicts + repeated} "
            "conflict by key; the table changed during the restore"
        )
    if other:
        reasons["UNIQUE " + ", ".join(other_unique_constraints(cursor, plan.table))] = other
    return {reason: rows for reason, rows in reasons.items() if rows}
