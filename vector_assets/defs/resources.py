"""Resources, built once from environment variables and handed to ops, checks and sensors."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

DSN_ENV_VAR = "VECTOR_ASSETS_PG_DSN"
ROOT_ENV_VAR = "VECTOR_ASSETS_ROOT"
DEFAULT_ROOT = "./data_pipeline/training_data"


class PgVectorResource(dg.ConfigurableResource):
    """The pgvector database. Configured from an ``EnvVar`` so the DSN (and its password) never
    appears in run config or the UI."""

    dsn: str


class BackupRootResource(dg.ConfigurableResource):
    """The backup root. Empty means: ``VECTOR_ASSETS_ROOT`` at run time, else the seed's default."""

    root: str = ""

    def configured(self) -> str:
        """The root as the operator wrote it (the seed's backup_path starts with it)."""
        return self.root or os.environ.get(ROOT_ENV_VAR) or DEFAULT_ROOT

    def path(self) -> Path:
        return Path(self.configured())


def default_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "pgvector": PgVectorResource(dsn=dg.EnvVar(DSN_ENV_VAR)),
        "backup_root": BackupRootResource(),
    }
