"""The code location: ``defs`` is the single Definitions object (see workspace.yaml)."""

import dagster as dg

from vector_assets.defs.assets import backup_specs, inventory_spec, source_table_specs
from vector_assets.defs.checks import backup_checks
from vector_assets.defs.drill import restore_drill_check, verify_vector_backup, vector_verify_schedule
from vector_assets.defs.jobs import backup_vector_tables, check_vector_backup
from vector_assets.defs.prune import prune_vector_backups, vector_prune_schedule
from vector_assets.defs.resources import default_resources
from vector_assets.defs.schedules import vector_backup_schedule
from vector_assets.defs.sensors import vector_bak_sensor
from vector_assets.defs.table_jobs import restore_vector_tables, truncate_vector_tables

defs = dg.Definitions(
    assets=[*source_table_specs, *backup_specs, inventory_spec],
    asset_checks=[*backup_checks, restore_drill_check],
    jobs=[backup_vector_tables, check_vector_backup, truncate_vector_tables, restore_vector_tables, verify_vector_backup,
          prune_vector_backups],
    schedules=[vector_backup_schedule, vector_verify_schedule, vector_prune_schedule],
    sensors=[vector_bak_sensor],
    resources=default_resources(),
)
