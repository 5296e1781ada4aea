"""What a restore is asked to do (``RestoreRequest``) and what it did: ``RestoreResult``, with a
``TableRestore`` for each table and, restoring one collection, a ``CollectionRestore``."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from vector_assets.core.errors import ConfigError
from vector_assets.core.pg.index_builds import IndexBuild, IndexBuildSettings
from vector_assets.core.progress import ProgressReporter
from vector_assets.core.sets.catalog import BackupSet
from vector_assets.core.sets.encryption import EncryptionKeys
from vector_assets.core.sets.roots import open_root
from vector_assets.core.sets.storage import Root
from vector_assets.core.sets.writer import BackupResult
from vector_assets.core.stores import Store, langchain_store
from vector_assets.core.tables import validate_collection_request
from vector_assets.core.units import count_of

if TYPE_CHECKING:  # the diff stages a set through the restore's own stages
    from vector_assets.core.ops.diff import DiffResult

ON_CONFLICT_CHOICES = ("error", "skip")
REPLACE = "replace"
APPEND = "append"


DEFAULT_TARGET_NAME = "default"  # the pgvector database itself, as restores name it


@dataclass(frozen=True)
class RestoreRequest:
    """Which set, which tables, how, and into which database (a DSN from the environment)."""

    target_dsn: str
    root: Root | Path | str
    timestamp: str
    backup_path: str | None = None
    tables: tuple[str, ...] | None = None  # None: every table of the store
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
    store: Store = field(default_factory=langchain_store)
    encryption: EncryptionKeys = EncryptionKeys()  # the identity an encrypted set is read with
    fire_triggers: bool = False  # let the target tables' own triggers fire for every loaded row
    # A replacing dry run always names the rows it would replace; a real run does when asked: it
    # costs a digest scan of the tables before the load and one after (about 0.8 x a pgcopy
    # restore's CPU), and the dry run before it, and its safety set, already say what it replaces.
    name_replaced_rows: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "tables", self.store.select_tables(self.tables))
        validate_collection_request(self.collection, self.rename_collection_to, self.tables, self.store.table_names)
        object.__setattr__(self, "root", open_root(self.root))
        if self.offsite_root is not None:
            object.__setattr__(self, "offsite_root", open_root(self.offsite_root))
        if self.on_conflict not in ON_CONFLICT_CHOICES:
            raise ConfigError(f"on_conflict {self.on_conflict!r} must be one of {', '.join(ON_CONFLICT_CHOICES)}")
        if self.truncate_before_restore:
            self.store.require_vectors_with_collections(self.tables, "truncating before restore")


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
class CollectionRestore:
    """What a collection restore did, by name and uuid."""

    name: str  # in the set
    restored_as: str  # its name in the target now (the new name when renamed)
    set_uuid: str
    uuid: str  # its uuid in the target now
    mode: str  # REPLACE or APPEND
    replaced_uuid: str | None = None  # the target's collection of that name before, if it had one
    removed: bool = False  # the set records the collection as absent: the restore removed it
    embeddings_in_set: int = 0
    embeddings_deleted: int = 0
    embeddings_loaded: int = 0
    embeddings_skipped: int = 0

    @property
    def renamed(self) -> bool:
        return self.restored_as != self.name

    @property
    def existed_before(self) -> bool:
        return self.replaced_uuid is not None

    def describe(self) -> str:
        """One line for the log, the CLI and the run's metadata."""
        if self.removed:
            if not self.existed_before:
                return f"collection {self.name!r} is absent in the set and was absent in the target: nothing to remove"
            return (
                f"collection {self.name!r} (uuid {self.replaced_uuid}) removed, as the set records it absent: "
                f"{count_of(self.embeddings_deleted, 'embedding')} deleted"
            )
        as_name = f" as {self.restored_as!r}" if self.renamed else ""
        replaced = f", {count_of(self.embeddings_deleted, 'embedding')} deleted" if self.mode == REPLACE else ""
        skipped = f", {self.embeddings_skipped:,} skipped" if self.embeddings_skipped else ""
        return (
            f"collection {self.name!r}{as_name} (uuid {self.uuid}), {self.mode}{replaced}, "
            f"{self.embeddings_loaded:,} of its {count_of(self.embeddings_in_set, 'embedding')} in the set loaded{skipped}"
        )


class RowComparison(Protocol):
    """What a replacing restore calls in its transaction to learn which rows it replaced: just
    before it replaces anything, and once the set's rows are in."""

    def before(self, cursor) -> None: ...

    def after(self, cursor) -> None: ...


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
    triggers_held: list[str] = field(default_factory=list)  # table.trigger, off while the rows loaded
    changes: DiffResult | None = None  # a replacing restore: the rows it brought back, removed and overwrote (a dry run: would)

    def undo_command(self, target: str | None = None, store: Store | None = None) -> str | None:
        """The command that puts back what the restore replaced: its safety set, restored with
        --replace; for a collection restore, just that collection (the safety set holds it as
        it was, or records it absent). ``target``: a declared target's name; None or "default"
        for the store's own database; ``store``: the store restored (the default one needs no
        --store). The one wording the CLI and the run's log and metadata give."""
        safety = self.safety_set
        if safety is None:
            return None
        if self.collection is not None:
            what = f"--collection {shlex.quote(self.collection.restored_as)}"
        else:
            what = f"--tables {' '.join(safety.manifest.tables)}"
        target_part = f" --target {target}" if target not in (None, DEFAULT_TARGET_NAME) else ""
        store_part = f" --store {store.name}" if store is not None and not store.is_default else ""
        return (
            f"vector-assets restore {safety.timestamp}{store_part} --backup-path {safety.manifest.location} --replace "
            f"{what}{target_part} --apply"
        )
