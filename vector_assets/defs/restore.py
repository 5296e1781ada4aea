"""Restore: ``restore_vector_tables`` loads a set into the same or another database, in one
transaction. It shares the pool ``vector_tables`` with backup, truncate and prune."""

import dagster as dg
from pydantic import Field

from vector_assets import settings
from vector_assets.core.errors import VectorAssetsError
from vector_assets.core.ops.restore import RestoreRequest, RestoreResult, run_restore
from vector_assets.core.pg.connection import describe_dsn
from vector_assets.core.tables import MANAGED_TABLES
from vector_assets.defs.backup import registered_set, report_new_set
from vector_assets.defs.choices import ManagedTable, OnConflict, RestoreTarget, value_of, values
from vector_assets.defs.failures import as_failure
from vector_assets.defs.partitions import chosen_set, vector_backups_partitions
from vector_assets.defs.run_facts import log_progress, tag_run
from vector_assets.defs.resources import (
    VECTOR_TABLES_POOL,
    BackupRootResource,
    PgVectorResource,
)


class RestoreConfig(dg.Config):
    target: RestoreTarget = Field(
        default=RestoreTarget[settings.DEFAULT_TARGET],
        description="Where to restore: 'default' (the pgvector database) or a target declared in "
        "VECTOR_ASSETS_RESTORE_TARGETS in the code location's environment.",
    )
    tables: list[ManagedTable] = Field(default=list(MANAGED_TABLES), description="Tables to restore.")
    truncate_before_restore: bool = Field(
        default=False, description="Replace the tables' rows instead of appending (what is replaced is kept in a pre_restore set)."
    )
    on_conflict: OnConflict = Field(default=OnConflict.error, description="Append mode: fail on any conflict, or skip and report.")
    dry_run: bool = Field(default=False, description="Do everything, then roll back: nothing changes.")
    safety_backup: bool = Field(
        default=True, description="Back up what the restore replaces into a pre_restore set first. Turn off only knowingly."
    )


def target_dsn(target: str, pgvector: PgVectorResource) -> str:
    return pgvector.dsn if target == settings.DEFAULT_TARGET else settings.restore_target_dsn(target)


@dg.op(pool=VECTOR_TABLES_POOL)
def restore_from_backup_set(
    context: dg.OpExecutionContext, config: RestoreConfig, pgvector: PgVectorResource, backup_root: BackupRootResource
) -> dg.Output:
    """Check the set and the target, back up what will be replaced, then load in one transaction."""
    key = chosen_set(context, "restore_vector_tables")
    target = value_of(config.target)
    tag_run(context, key, target)
    try:
        dsn = target_dsn(target, pgvector)
        request = RestoreRequest(
            target_dsn=dsn, root=backup_root.path(), timestamp=key, tables=values(config.tables),
            truncate_before_restore=config.truncate_before_restore, dry_run=config.dry_run,
            on_conflict=value_of(config.on_conflict), configured_root=backup_root.configured(),
            safety_backup=config.safety_backup, progress=log_progress(context),
        )
        result = run_restore(request)
    except VectorAssetsError as error:
        raise as_failure(error, "restore") from None
    if not config.safety_backup:
        context.log.warning("safety_backup is off: what this restore replaced was not backed up")
    safety_key = register_safety_set(context, backup_root, result)
    server = describe_dsn(dsn)
    if not result.dry_run and target == settings.DEFAULT_TARGET:
        for table in result.tables:
            context.log_event(dg.AssetObservation(
                asset_key=dg.AssetKey(table.table),
                metadata={"restored_from": result.backup_set.key, "rows_loaded": table.rows_loaded, "truncated": result.truncated},
            ))
    context.log.info(restore_summary(result, f"{server.database} on {server.host}"))
    metadata = restore_metadata(result, f"{target}: {server.database} on {server.host}:{server.port}")
    if safety_key is not None:
        undo = undo_instructions(result, safety_key, target)
        context.log.info(f"what the restore replaced is in the pre_restore set {safety_key}. To undo: {undo['cli']}; "
                         f"or launch restore_vector_tables for partition {safety_key} with {undo['launchpad']}")
        metadata.update({"safety_set": safety_key, "undo_cli": undo["cli"], "undo_launchpad": dg.MetadataValue.md(
            f"Partition `{safety_key}`, config:\n\n```yaml\n{undo['launchpad']}\n```")})
    return dg.Output(None, metadata=metadata)


def register_safety_set(context: dg.OpExecutionContext, backup_root: BackupRootResource, result: RestoreResult) -> str | None:
    if result.safety_set is None:
        return None
    try:
        backup_set = registered_set(backup_root, result.safety_set)
    except VectorAssetsError as error:  # the restore has committed; the sensor registers the set later
        context.log.warning(f"the pre_restore set {result.safety_set.timestamp} is on disk but not registered yet: {error}")
        return result.safety_set.timestamp
    report_new_set(context, backup_set)
    return backup_set.key


def undo_instructions(result: RestoreResult, safety_key: str, target: str) -> dict[str, str]:
    tables = list(result.safety_set.manifest.tables)
    target_flag = "" if target == settings.DEFAULT_TARGET else f" --target {target}"
    cli = (f"vector-assets restore {safety_key} --replace --tables {' '.join(tables)}{target_flag}")
    launchpad = (
        "ops:\n  restore_from_backup_set:\n    config:\n"
        f"      target: {target}\n      tables: [{', '.join(tables)}]\n      truncate_before_restore: true"
    )
    return {"cli": cli, "launchpad": launchpad}


def restore_summary(result: RestoreResult, target: str) -> str:
    verb = "would restore" if result.dry_run else "restored"
    tables = ", ".join(f"{t.table}: {t.rows_loaded:,} loaded, {t.rows_skipped:,} skipped" for t in result.tables)
    return f"{verb} set {result.backup_set.key} into {target}: {tables}"


def restore_metadata(result: RestoreResult, target: str) -> dict:
    return {
        "backup_partition": result.backup_set.key,
        "backup_folder": dg.MetadataValue.path(str(result.backup_set.folder)),
        "target": target,
        "dry_run": result.dry_run,
        "truncate_results": dg.MetadataValue.json({
            t.table: {"rows_before": t.rows_before, "rows_truncated": t.rows_truncated} for t in result.tables
        } if result.truncated else {}),
        "restore_results": dg.MetadataValue.json({
            t.table: {
                "rows": t.rows_loaded, "rows_skipped": t.rows_skipped, "skipped_because": t.skipped_because,
                "conflicts": t.conflicts,
                "first_conflict": t.first_conflict, "file": t.file, "size": t.bytes,
                "duration_seconds": round(t.duration_seconds, 3),
            }
            for t in result.tables
        }),
        "indexes_rebuilt": dg.MetadataValue.json(result.indexes_rebuilt),
        "sequences_advanced": dg.MetadataValue.json(result.sequences_advanced),
        "errors": dg.MetadataValue.json([]),
        "duration_seconds": dg.MetadataValue.float(round(result.duration_seconds, 3)),
    }


@dg.job(
    partitions_def=vector_backups_partitions,
    description="Restore the chosen set (the partition) into the pgvector database or a declared target, in one "
    "transaction. What it replaces is backed up first into a pre_restore set; the run log gives the undo.",
)
def restore_vector_tables() -> None:
    restore_from_backup_set()
