"""The backup schedule. Its cron comes from VECTOR_ASSETS_BACKUP_CRON when the code loads."""

from __future__ import annotations

import os

import dagster as dg

from vector_assets.defs.jobs import backup_vector_tables

CRON_ENV_VAR = "VECTOR_ASSETS_BACKUP_CRON"
DEFAULT_BACKUP_CRON = "0 2 * * *"


def backup_cron() -> str:
    return os.environ.get(CRON_ENV_VAR) or DEFAULT_BACKUP_CRON


vector_backup_schedule = dg.ScheduleDefinition(
    name="vector_backup_schedule",
    job=backup_vector_tables,
    cron_schedule=backup_cron(),
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=f"Backs up the pgvector tables on {CRON_ENV_VAR} (default {DEFAULT_BACKUP_CRON!r}).",
)
