"""Resources, handed to ops, checks and sensors; and the pool that keeps table-changing ops from
overlapping.

No resource has a config field. The database and the roots come from the code location's
environment (``settings``) only, so the Launchpad offers nothing to type a DSN, a password or a
folder into, and a run config that tries is refused by Dagster's config validation before any
run is stored.
"""

from __future__ import annotations

from functools import cache

import dagster as dg

from vector_assets import settings
from vector_assets.core.sets.roots import open_root
from vector_assets.core.sets.storage import Root
from vector_assets.core.stores import Store

class PgVectorResource(dg.ConfigurableResource):
    """A store's pgvector database (the default store's is ``VECTOR_ASSETS_PG_DSN``), read when a
    run needs it."""

    @property
    def dsn(self) -> str:
        return self.dsn_of(settings.default_store())

    def dsn_of(self, store: Store) -> str:
        return settings.store_dsn(store)


class BackupRootResource(dg.ConfigurableResource):
    """A store's backup root (``VECTOR_ASSETS_ROOT``, else the earlier tooling's default) and offsite root
    (``VECTOR_ASSETS_OFFSITE_ROOT``), read when a run needs them; without a store, the default store's."""

    def configured(self, store: Store | None = None) -> str:
        """The root as the operator wrote it (the earlier tooling's backup_path starts with it)."""
        return settings.ROOT.get(_environment(store))

    def open_offsite(self, store: Store | None = None) -> Root | None:
        """The second root, or None when there is none."""
        configured = settings.OFFSITE_ROOT.get(_environment(store))
        return open_root(configured) if configured else None

    def open(self, store: Store | None = None) -> Root:
        """A local folder, or an object store (``s3://bucket/prefix``) with credentials from the
        store's own environment variables."""
        return open_root(self.configured(store))


def _environment(store: Store | None):
    return (store or settings.default_store()).environment()


class RunStorageIOManager(dg.ConfigurableIOManagerFactory):
    """Dagster's filesystem IO manager in the instance's own storage folder. It replaces the
    default one, whose ``base_dir`` would let a run config choose a folder to write to."""

    def create_io_manager(self, context: dg.InitResourceContext) -> dg.IOManager:
        return dg.FilesystemIOManager().create_io_manager(context)


@cache  # the same objects every time: definitions built apart (one store's component) merge again
def default_resources() -> dict[str, dg.ConfigurableResource | dg.ConfigurableIOManagerFactory]:
    return {"pgvector": PgVectorResource(), "backup_root": BackupRootResource(), "io_manager": RunStorageIOManager()}

