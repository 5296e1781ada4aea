"""Restore: ``restore_vector_tables`` loads a set into the same or another database, in one
transaction. It shares the pool ``vector_tables`` with backup, truncate and prune."""

import dagster as dg
from pydantic import Field

from vector_assets import settings
from vector_assets.core.errors import VectorAssetsError
from vector_assets.core.ops.restore import RestoreRequest, RestoreResult, run_restore
from vector_assets.core.pg.connection import describe_dsn
from vector_assets.core.tables import MANAGED_TABLES
from vector_assets.defs.failures import as_failure
from vector_assets.defs.resources import (
    VECTOR_TABLES_POOL,
    BackupRootResource,
    PgVectorResource,
)


class RestoreConfig(dg.Config):
    timestamp: str = Field(description="The set's timestamp (YYYYMMDD_HHMMSS) or partition key.")
    backup_path: str | None = Field(
        default=None, description="Location relative to the backup root, e.g. task_20250721_213627/vector_bak or ./vector_bak."
    )
    tables: list[str] = Field(default=list(MANAGED_TABLES), description="Tables to restore.")
    truncate_before_restore: bool = Field(default=False, description="Replace the tables' rows instead of appending.")
    dry_run: bool = Field(default=False, description="Report what would happen and change nothing.")
    on_conflict: str = Field(default="error", description="Append mode: 'error' on an existing key, or 'skip' it.")
    target_env_var: str | None = Field(
        default=None,
        description="NAME of an environment variable holding the target DSN (never the DSN itself); empty: the pgvector resource.",
    )


def target_dsn(config: RestoreConfig, pgvector: PgVectorResource) -> str:
    """Resolve the target from an env var name; a DSN pasted into run config is refused."""
    if not config.target_env_var:
        return pgvector.dsn
    return settings.dsn_from_variable(config.target_env_var, "target_env_var")


@dg.op(pool=VECTOR_TABLES_POOL)
def restore_from_backup_set(
    context: dg.OpExecutionContext, config: RestoreConfig, pgvector: PgVectorResource, backup_root: BackupRootResource
) -> dg.Output:
    """Check the set and the target, then load in one transaction that rolls back on any error."""
    try:
        dsn = target_dsn(config, pgvector)
        request = RestoreRequest(
            target_dsn=dsn, root=backup_root.path(), timestamp=config.timestamp, backup_path=config.backup_path,
            tables=tuple(config.tables), truncate_before_restore=config.truncate_before_restore,
            dry_run=config.dry_run, on_conflict=config.on_conflict, configured_root=backup_root.configured(),
        )
        result = run_restore(request)
    except VectorAssetsError as error:
        raise as_failure(error, "restore") from error
    target = describe_dsn(dsn)
    if not result.dry_run and not config.target_env_var:
        for table in result.tables:
            context.log_event(dg.AssetObservation(
                asset_key=dg.AssetKey(table.table),
                metadata={"restored_from": result.backup_set.key, "rows_loaded": table.rows_loaded, "truncated": result.truncated},
            ))
    context.log.info(restore_summary(result, f"{target.database} on {target.host}"))
    return dg.Output(None, metadata=restore_metadata(result, f"{target.database} on {target.host}:{target.port}"))


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


@dg.job(description="Restore a backup set into the same or another database, in one transaction.")
def restore_vector_tables() -> None:
    restore_from_backup_set()
