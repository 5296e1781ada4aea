"""What a store is called in Dagster: its asset keys, its set partitions, and the names of its
jobs, schedules and sensors. The default store keeps the names it has always had; any other
store's names carry its name, so several stores live side by side in one code location."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import dagster as dg

from vector_assets.core.stores import DEFAULT_DSN_VARIABLE, Store

SOURCE_GROUP = "pgvector"
BACKUP_GROUP = "vector_backups"
PARTITIONS_NAME = "vector_backups"
INVENTORY_NAME = "vector_backup_inventory"
POOL = "vector_tables"


@dataclass(frozen=True)
class StoreKeys:
    store: Store
    partitions: dg.DynamicPartitionsDefinition = field(init=False, compare=False)
    table_choice: type[enum.Enum] = field(init=False, compare=False)  # the Launchpad's dropdown of the tables

    def __post_init__(self) -> None:
        object.__setattr__(self, "partitions", dg.DynamicPartitionsDefinition(name=self.name(PARTITIONS_NAME)))
        # Dagster names config enums, so each store's has its own name.
        choice = "ManagedTable" if self.store.is_default else f"{self.store.name}_Table"
        object.__setattr__(self, "table_choice", enum.Enum(choice, {t: t for t in self.store.table_names}))

    def name(self, base: str) -> str:
        """A job's, schedule's, sensor's or op's name for this store."""
        return base if self.store.is_default else f"{self.store.name}_{base}"

    def _key(self, name: str) -> dg.AssetKey:
        return dg.AssetKey(name) if self.store.is_default else dg.AssetKey([self.store.name, name])

    def source_key(self, table: str) -> dg.AssetKey:
        return self._key(table)

    def backup_key(self, table: str) -> dg.AssetKey:
        return self._key(f"{table}_backup")

    @property
    def backup_keys(self) -> list[dg.AssetKey]:
        return [self.backup_key(table) for table in self.store.table_names]

    @property
    def inventory_key(self) -> dg.AssetKey:
        return self._key(INVENTORY_NAME)

    def table_of(self, backup_key: dg.AssetKey) -> str:
        return next(table for table in self.store.table_names if self.backup_key(table) == backup_key)

    @property
    def pool(self) -> str:
        """The pool of the store's backup, truncate, restore, prune and replicate ops: one per
        database, so two stores' operations run side by side unless they share a database.
        dagster.yaml's default_limit of 1 applies to each."""
        variable = self.store.dsn_variable
        return POOL if variable == DEFAULT_DSN_VARIABLE else f"{POOL}_{variable.lower()}"

    def group(self, base: str) -> str:
        return base if self.store.is_default else f"{self.store.name}_{base}"
