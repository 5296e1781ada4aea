"""The backup schedule, and where every schedule's cron comes from: an env var read when the
code loads, else a default."""

from __future__ import annotations

import os

import dagster as dg

from vector_assets.defs.jobs import backup_vector_tables

CRON_ENV_VAR = "VECTOR_ASSETS_BACKUP_CRON"
DEFAULT_BACKUP_CRON = "0 2 * * *"


def cron_from_env(env_var: str, default: str) -> str:
    return os.environ.get(env_var) or default


def backup_cron() -> str:
    return cron_from_env(CRON_ENV_VAR, DEFAULT_BACKUP_CRON)


vector_backup_schedule = dg.ScheduleDefinition(
    name="vector_backup_schedule",
    job=backup_vector_tables,
    cron_schedule=backup_cron(),
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=f"Backs up the pgvector tables on {CRON_ENV_VAR} (default {DEFAULT_BACKUP_CRON!r}).",
)
