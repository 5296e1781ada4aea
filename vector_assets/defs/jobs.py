"""Jobs: ``backup_vector_tables`` makes its own timestamp; ``check_vector_backup`` runs the checks."""


import dagster as dg
from pydantic import Field

from vector_assets.core.backup import BackupRequest, BackupResult, run_backup
from vector_assets.core.backup_log import human_size
from vector_assets.core.backup_set import BackupSet
from vector_assets.core.errors import BackupSetNotFoundError, VectorAssetsError
from vector_assets.core.scan import scan_root
from vector_assets.core.tables import MANAGED_TABLES
from vector_assets.defs.assets import set_materializations
from vector_assets.defs.checks import backup_checks
from vector_assets.defs.failures import as_failure
from vector_assets.defs.partitions import vector_backups_partitions
from vector_assets.defs.resources import BackupRootResource, PgVectorResource

VECTOR_TABLES_POOL = "vector_tables"


class BackupConfig(dg.Config):
    task_id: str | None = Field(
        default=None,
        description="Write into <root>/<task_id>/vector_bak (task_… or manual_…); empty means the global vector_bak.",
    )
    tables: list[str] = Field(
        default=list(MANAGED_TABLES), description="Tables to back up, from langchain_pg_collection, langchain_pg_embedding."
    )


@dg.op(pool=VECTOR_TABLES_POOL, retry_policy=dg.RetryPolicy(max_retries=2, delay=15))
def back_up_tables(
    context: dg.OpExecutionContext, config: BackupConfig, pgvector: PgVectorResource, backup_root: BackupRootResource
) -> None:
    """Stream the tables into a new set in one snapshot, then register it as a partition."""
    try:
        request = BackupRequest(
            dsn=pgvector.dsn, root=backup_root.path(), task_id=config.task_id or None, tables=tuple(config.tables)
        )
        result = run_backup(request)
        backup_set = registered_set(backup_root, result)
    except VectorAssetsError as error:
        raise as_failure(error, "backup") from error
    report_new_set(context, backup_set)
    context.log.info(summary_line(result, backup_set))


def registered_set(backup_root: BackupRootResource, result: BackupResult) -> BackupSet:
    for backup_set in scan_root(backup_root.path()):
        if backup_set.folder == result.folder.resolve() and backup_set.timestamp == result.timestamp:
            return backup_set
    raise BackupSetNotFoundError(f"the new set {result.timestamp} in {result.folder} is not complete on disk")


def report_new_set(context: dg.OpExecutionContext, backup_set: BackupSet) -> None:
    context.instance.add_dynamic_partitions(vector_backups_partitions.name, [backup_set.key])
    for materialization in set_materializations(backup_set):
        context.log_event(materialization)


def summary_line(result: BackupResult, backup_set: BackupSet) -> str:
    tables = ", ".join(
        f"{name}: {entry.rows:,} rows ({human_size(entry.bytes)})" for name, entry in result.manifest.tables.items()
    )
    return (
        f"backup set {backup_set.key} in {backup_set.location.label}: {tables}; "
        f"{result.manifest.duration_seconds:.2f}s, {result.megabytes_per_second:.1f} MB/s, consistent snapshot"
    )


@dg.job(description="Back up the LangChain pgvector tables to a new timestamped CSV set (one consistent snapshot).")
def backup_vector_tables() -> None:
    back_up_tables()


check_vector_backup = dg.define_asset_job(
    "check_vector_backup",
    selection=dg.AssetSelection.checks(*backup_checks),
    description="Run the file, sha256 and row-count checks on one backup partition.",
)
