"""Planning a restore before it touches a database: the set's files of each table, checked
present with a parseable header; and, restoring an increment, its chain split into the base set
and the increments, each increment's files of the table checked present too."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

from vector_assets.core.errors import (
    BackupFileError,
    BrokenChainError,
    ColumnMismatchError,
    IncompleteBackupSetError,
    WrongStoreError,
)
from vector_assets.core.pg.ddl import TableDefinition
from vector_assets.core.pg.row_digests import RowKey
from vector_assets.core.sets.age_streams import decrypting
from vector_assets.core.sets.catalog import BackupSet
from vector_assets.core.sets.chains import ChainLink, chain_of
from vector_assets.core.sets.encryption import IdentityFile
from vector_assets.core.sets.formats import (
    DecodingReader,
    SetFormat,
    format_of_file,
    read_header,
    rows_in,
)
from vector_assets.core.sets.manifest import FilePart, RowIndex, TableFile
from vector_assets.core.sets.storage import SetFolder
from vector_assets.core.stores import Store


@dataclass(frozen=True)
class PlannedIncrement:
    """One increment's part of a table: the changed rows (files like a set's) and the deleted keys."""

    timestamp: str
    folder: SetFolder
    changed: list  # PlannedFile, in load order
    deleted: FilePart
    key: RowKey  # the primary key its rows and deleted keys are matched by


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
    column_types: dict[str, str] = field(default_factory=dict)  # from the manifest; none for a legacy set

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


def split_chain(backup_set: BackupSet) -> tuple[BackupSet, list[ChainLink]]:
    """(the base set to load first, the increments to apply after it, oldest first)."""
    if backup_set.manifest is None or not backup_set.manifest.is_increment:
        return backup_set, []
    links = chain_of(backup_set.folder, backup_set.timestamp, backup_set.manifest)
    base = links[0]
    base_set = BackupSet(base.timestamp, base.timestamp, backup_set.location, backup_set.folder, base.manifest)
    return base_set, links[1:]


def readable_chain(base_set: BackupSet, increments: list[ChainLink], identity_file: IdentityFile) -> BackupSet:
    """The base set, its folder reading the encrypted files of it and of its increments as
    plaintext; a missing or wrong identity fails here, before any database is touched."""
    folder = decrypting(base_set.folder, [base_set.manifest, *(link.manifest for link in increments)], identity_file)
    folder.unlock()
    return replace(base_set, folder=folder)


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
    return PlannedFile(name, format_of_file(name), piece.plain_sha256 if piece else None, size, piece.rows if piece else None)


def _plan_base(backup_set: BackupSet, table: str, files: list[PlannedFile]) -> PlannedTable:
    entry = backup_set.manifest.tables.get(table) if backup_set.manifest else None
    manifest_columns = [column.name for column in entry.columns] if entry is not None else None
    folder = backup_set.folder
    header = manifest_columns if files[0].format.binary else _read_header(folder, files[0])
    if entry is None:
        return PlannedTable(table, folder, files, header, rows_in(folder, files[0].name), None)
    if header != manifest_columns:
        raise ColumnMismatchError(f"{files[0].name} header {header} differs from the manifest's columns")
    types = {column.name: column.type for column in entry.columns}
    return PlannedTable(table, folder, files, header, entry.rows, entry.definition, column_types=types)


def _read_header(folder: SetFolder, file: PlannedFile) -> list[str]:
    try:
        with folder.open_reader(file.name) as handle:
            return read_header(DecodingReader(file.format, handle, file.name))
    except (csv.Error, UnicodeDecodeError) as error:
        raise BackupFileError(f"{file.name} is not valid CSV: {error}") from None


def plan_increments(
    folder: SetFolder, table: str, links: list[ChainLink], plan_file: Callable[[str, FilePart], object]
) -> tuple[list[PlannedIncrement], RowIndex | None]:
    """The table's part of each increment, its files checked present; and what the table must
    hold at the end (the newest increment's row index)."""
    planned = []
    for link in links:
        entry = link.manifest.tables.get(table)
        if entry is None or entry.rows_index is None or entry.deleted_keys is None:
            raise BrokenChainError(f"increment {link.timestamp} in {folder} has no {table} changes; the chain cannot be restored")
        if folder.size(entry.deleted_keys.file) is None:
            raise IncompleteBackupSetError(f"increment {link.timestamp} is missing {entry.deleted_keys.file} in {folder}")
        changed = [plan_file(piece.file, piece) for piece in entry.pieces]
        planned.append(PlannedIncrement(link.timestamp, folder, changed, entry.deleted_keys, _key_of(link, table, entry)))
    final = links[-1].manifest.tables[table].rows_index if links else None
    return planned, final


def _key_of(link: ChainLink, table: str, entry: TableFile) -> RowKey:
    """The increment's key columns, typed as its manifest's columns are."""
    types = {column.name: column.type for column in entry.columns}
    missing = [column for column in entry.rows_index.key if column not in types]
    if missing:
        raise BackupFileError(
            f"increment {link.timestamp}: {table}'s row index is keyed by {', '.join(missing)}, "
            "which its manifest's columns lack; the chain cannot be restored"
        )
    return RowKey(entry.rows_index.key, tuple(types[column] for column in entry.rows_index.key))


def require_same_store(backup_set: BackupSet, store: Store) -> None:
    """A set restores into its own store's tables only (sets made before stores named theirs: any)."""
    manifest = backup_set.manifest
    if manifest is None or manifest.store is None or manifest.store == store.name:
        return
    raise WrongStoreError(
        f"set {backup_set.key} is of store {manifest.store!r} (layout {manifest.layout}), not of store "
        f"{store.name!r}: restore it with --store {manifest.store}; nothing was changed"
    )
