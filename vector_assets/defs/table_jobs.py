"""Jobs that change the tables: ``truncate_vector_tables`` and ``restore_vector_tables``.

Both share the pool ``vector_tables`` with the backup op, so they never overlap on the tables.
"""

import os
import re

import dagster as dg
from pydantic import Field

from vector_assets.core.errors import ConfigError, VectorAssetsError
from vector_assets.core.postgres import describe_dsn
from vector_assets.core.restore import RestoreRequest, RestoreResult, run_restore
from vector_assets.core.tables import EMBEDDING_TABLE, MANAGED_TABLES
from vector_assets.core.truncate import TruncateRequest, TruncateResult, run_guarded_truncate
from vector_assets.defs.failures import as_failure
from vector_assets.defs.jobs import VECTOR_TABLES_POOL, registered_set, report_new_set
from vector_assets.defs.resources import BackupRootResource, PgVectorResource

ENV_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TruncateConfig(dg.Config):
    tables: list[str] = Field(
        default=[EMBEDDING_TABLE],
        description="Tables to empty. Adding langchain_pg_collection requires langchain_pg_embedding too.",
    )
    task_id: str | None = Field(default=None, description="Back up into <root>/<task_id>/vector_bak; empty: global.")


@dg.op(pool=VECTOR_TABLES_POOL)
def truncate_after_verified_backup(
    context: dg.OpExecutionContext, config: TruncateConfig, pgvector: PgVectorResource, backup_root: BackupRootResource
) -> dg.Output:
    """Lock, back up both tables, verify the files against the database, truncate, commit."""
    try:
        request = TruncateRequest(dsn=pgvector.dsn, root=backup_root.path(), task_id=config.task_id or None, tables=tuple(config.tables))
        result = run_guarded_truncate(request)
    except VectorAssetsError as error:
        context.log.error(f"backup performed: unknown or no; truncate performed: no. {error}")
        raise as_failure(error, "guarded truncate") from error
    try:
        backup_set = registered_set(backup_root, result.backup)
    except VectorAssetsError as error:
        # The truncate has committed; its rows are in the set on disk, which the sensor will register.
        context.log.error(f"backup performed: yes ({result.backup.folder}); truncate performed: yes. {error}")
        raise as_failure(error, "registering the set after the truncate") from error
    report_new_set(context, backup_set)
    for warning in result.warnings:
        context.log.warning(warning)
    for table in result.truncated_tables:
        context.log_event(dg.AssetObservation(
            asset_key=dg.AssetKey(table),
            metadata={"truncated": True, "rows_before": result.rows_before[table], "backup_partition": backup_set.key},
        ))
    context.log.info(truncate_summary(result, backup_set.key))
    return dg.Output(None, metadata=truncate_metadata(result, backup_set.key))


def truncate_summary(result: TruncateResult, key: str) -> str:
    tables = ", ".join(f"{t}: {result.rows_before[t]:,} -> {result.rows_after[t]} rows" for t in result.truncated_tables)
    return f"backup performed: yes (set {key}); truncate performed: yes; {tables}"


def truncate_metadata(result: TruncateResult, key: str) -> dict:
    rows = [
        dg.TableRecord({"table": t, "rows_before": result.rows_before[t], "rows_after": result.rows_after[t]})
        for t in result.truncated_tables
    ]
    schema = dg.TableSchema(columns=[
        dg.TableColumn("table", "string"), dg.TableColumn("rows_before", "int"), dg.TableColumn("rows_after", "int")
    ])
    return {
        "backup_performed": True,
        "truncate_performed": True,
        "backup_partition": key,
        "backup_folder": dg.MetadataValue.path(str(result.backup.folder)),
        "truncate_results": dg.MetadataValue.table(rows, schema=schema),
        "duration_seconds": dg.MetadataValue.float(round(result.duration_seconds, 3)),
    }


@dg.job(description="Back up, verify, then empty langchain_pg_embedding (and optionally collections) in one transaction.")
def truncate_vector_tables() -> None:
    truncate_after_verified_backup()


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
    name = config.target_env_var
    if not name:
        return pgvector.dsn
    if not ENV_VAR_NAME.match(name):
        raise ConfigError(
            "target_env_var must be the NAME of an environment variable, not a DSN: Dagster keeps run config in plain text"
        )
    if not os.environ.get(name):
        raise ConfigError(f"environment variable {name} (target_env_var) is not set")
    return os.environ[name]


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
                "rows": t.rows_loaded, "rows_skipped": t.rows_skipped, "conflicts": t.conflicts,
                "first_conflict": t.first_conflict, "file": t.file, "size": t.bytes,
                "duration_seconds": round(t.duration_seconds, 3),
            }
            for t in result.tables
        }),
        "indexes_rebuilt": dg.MetadataValue.json(result.indexes_rebuilt),
        "errors": dg.MetadataValue.json([]),
        "duration_seconds": dg.MetadataValue.float(round(result.duration_seconds, 3)),
    }


@dg.job(description="Restore a backup set into the same or another database, in one transaction.")
def restore_vector_tables() -> None:
    restore_from_backup_set()
