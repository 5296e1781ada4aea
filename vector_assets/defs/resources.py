"""Resources, built once from environment variables (``settings``) and handed to ops, checks
and sensors; and the pool that keeps table-changing ops from overlapping."""

from __future__ import annotations

import dagster as dg

from vector_assets import settings
from vector_assets.core.sets.roots import Root, open_root

# Backup, truncate, restore and prune ops share this pool; dagster.yaml limits it to 1.
VECTOR_TABLES_POOL = "vector_tables"


class PgVectorResource(dg.ConfigurableResource):
    """The pgvector database. Configured from an ``EnvVar`` so the DSN (and its password) never
    appears in run config or the UI."""

    dsn: str


class BackupRootResource(dg.ConfigurableResource):
    """The backup root. Empty means: ``VECTOR_ASSETS_ROOT`` at run time, else the seed's default."""

    root: str = ""
    offsite: str = ""  # empty: VECTOR_ASSETS_OFFSITE_ROOT at run time; unset there too: no second root

    def configured(self) -> str:
        """The root as the operator wrote it (the seed's backup_path starts with it)."""
        return self.root or settings.ROOT.get()

    def open_offsite(self) -> Root | None:
        """The second root (``VECTOR_ASSETS_OFFSITE_ROOT``), or None when there is none."""
        configured = self.offsite or settings.OFFSITE_ROOT.get()
        return open_root(configured) if configured else None

    def open(self) -> Root:
        """A local folder, or an object store (``s3://bucket/prefix``) with credentials from the
        store's own environment variables."""
        return open_root(self.configured())


def default_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "pgvector": PgVectorResource(dsn=dg.EnvVar(settings.PG_DSN.name)),
        "backup_root": BackupRootResource(),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=default_resources())
