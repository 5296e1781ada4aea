"""Truncate: ``truncate_vector_tables`` empties tables only after a verified backup of exactly
the rows it removes. It shares the pool ``vector_tables`` with backup, restore and prune."""

import dagster as dg
from pydantic import Field

from vector_assets import settings
from vector_assets.core.errors import VectorAssetsError
from vector_assets.core.ops.truncate import (
    TruncateRequest,
    TruncateResult,
    run_guarded_truncate,
)
from vector_assets.core.units import human_duration
from vector_assets.defs.backup import registered_set, report_new_set
from vector_assets.defs.choices import SetFormatChoice, value_of, values
from vector_assets.defs.failures import as_failure
from vector_assets.defs.resources import (
    BackupRootResource,
    PgVectorResource,
)
from vector_assets.defs.run_facts import log_progress, tag_run
from vector_assets.defs.store_keys import StoreKeys


def truncate_config(keys: StoreKeys) -> type[dg.Config]:
    table_choice, store = keys.table_choice, keys.store

    class TruncateConfig(dg.Config):
        tables: list[table_choice] = Field(
            default=list(store.vector_tables),
            description="Tables to empty; the choices are the managed tables. Adding langchain_pg_collection requires "
            "langchain_pg_embedding too.",
        )
        task_id: str | None = Field(default=None, description="Back up into <root>/<task_id>/vector_bak; empty: global.")
        dry_run: bool = Field(
            default=True,
            description="true (the default): lock, back up, verify and truncate, then roll back and discard the set; it "
            "fails where the real truncate would. Write dry_run: false to truncate.",
        )
        format: SetFormatChoice = Field(
            default=settings.backup_format(store.environment()),
            description="The safety set's format (csv, csv.zst, pgcopy, pgcopy.zst). Default: VECTOR_ASSETS_FORMAT.",
        )

    return TruncateConfig


def truncate_op(keys: StoreKeys) -> dg.OpDefinition:
    store = keys.store

    @dg.op(name=keys.name("truncate_after_verified_backup"), pool=keys.pool, out=dg.Out(dg.Nothing))
    def truncate_after_verified_backup(
        context: dg.OpExecutionContext, config: truncate_config(keys), pgvector: PgVectorResource,
        backup_root: BackupRootResource,
    ) -> dg.Output:
        """Lock, back up both tables, verify the files against the database, truncate, commit."""
        try:
            request = TruncateRequest(
                dsn=pgvector.dsn_of(store), root=backup_root.open(store), task_id=config.task_id or None,
                tables=values(config.tables), dry_run=config.dry_run, progress=log_progress(context),
                format=value_of(config.format), store=store,
                encryption=settings.store_encryption_keys(store),
            )
            result = run_guarded_truncate(request)
        except VectorAssetsError as error:
            context.log.error(f"backup performed: unknown or no; truncate performed: no. {error}")
            raise as_failure(error, "guarded truncate") from None
        if result.dry_run:
            context.log.info(result.summary(how_to_apply=LAUNCHPAD_APPLY))
            return dg.Output(None, metadata=dry_run_metadata(result))
        return report_truncate(context, keys, backup_root, result)

    return truncate_after_verified_backup


def dry_run_metadata(result: TruncateResult) -> dict:
    summary = result.summary(how_to_apply=LAUNCHPAD_APPLY).removeprefix("dry run: ")
    return {
        "dry_run": True, "rows_to_remove": dg.MetadataValue.json(result.rows_before),
        "summary": dg.MetadataValue.md(f"**Dry run**, nothing changed: {summary}."),
    }


def report_truncate(
    context: dg.OpExecutionContext, keys: StoreKeys, backup_root: BackupRootResource, result: TruncateResult
) -> dg.Output:
    try:
        backup_set = registered_set(backup_root, keys.store, result.backup)
    except VectorAssetsError as error:
        # The truncate has committed; its rows are in the set on disk, which the sensor will register.
        context.log.error(f"backup performed: yes ({result.backup.folder}); truncate performed: yes. {error}")
        raise as_failure(error, "registering the set after the truncate") from None
    tag_run(context, backup_set.key)
    report_new_set(context, keys, backup_set)
    for warning in result.warnings:
        context.log.warning(warning)
    for table in result.truncated_tables:
        context.log_event(dg.AssetObservation(
            asset_key=keys.source_key(table),
            metadata={
                "truncated": True, "rows_before": result.rows_before[table], "rows_after": result.rows_after[table],
                "backup_partition": backup_set.key,
            },
        ))
    context.log.info(result.summary(backup_set.key))
    return dg.Output(None, metadata=truncate_metadata(result, backup_set.key))


LAUNCHPAD_APPLY = "write dry_run: false"


def truncate_metadata(result: TruncateResult, key: str) -> dict:
    rows = [
        dg.TableRecord({"table": t, "rows_before": result.rows_before[t], "rows_after": result.rows_after[t]})
        for t in result.truncated_tables
    ]
    schema = dg.TableSchema(columns=[
        dg.TableColumn("table", "string"), dg.TableColumn("rows_before", "int"), dg.TableColumn("rows_after", "int")
    ])
    lines = [
        f"**Truncated** after a verified backup into set `{key}`, in {human_duration(result.duration_seconds)}.",
        "", "| table | rows before | rows after |", "|---|---:|---:|",
    ]
    lines += [f"| {t} | {result.rows_before[t]:,} | {result.rows_after[t]:,} |" for t in result.truncated_tables]
    lines += [f"Warning: {warning}" for warning in result.warnings]
    return {
        "summary": dg.MetadataValue.md("\n".join(lines)),
        "backup_performed": True,
        "truncate_performed": True,
        "backup_partition": key,
        "backup_folder": dg.MetadataValue.path(str(result.backup.folder)),
        "truncate_results": dg.MetadataValue.table(rows, schema=schema),
        "duration_seconds": dg.MetadataValue.float(round(result.duration_seconds, 3)),
    }


def truncate_definitions(keys: StoreKeys) -> dg.Definitions:
    truncate_after_verified_backup = truncate_op(keys)

    @dg.job(name=keys.name("truncate_vector_tables"), description=(
        "DELETES ROWS: empties langchain_pg_embedding (and, if asked, the collections) after backing up both tables "
        "into a new set and verifying it against the locked tables, all in one transaction. A dry run (the default) "
        "does every step, then rolls back; write dry_run: false to truncate."
    ))
    def truncate_vector_tables() -> None:
        truncate_after_verified_backup()

    return dg.Definitions(jobs=[truncate_vector_tables])
