"""Backup: the source tables, the partitioned backup assets, ``backup_vector_tables``,
``vector_backup_schedule`` (full sets) and ``vector_incremental_schedule`` (increments).

Backups are made by jobs (which pick their own timestamp) and found by the sensor, so the
backup assets are declared as specs and their materializations are reported by those.
"""


from typing import Any

import dagster as dg
from pydantic import Field

from vector_assets import settings
from vector_assets.core.errors import BackupSetNotFoundError, VectorAssetsError
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.sets.catalog import BackupSet, set_at
from vector_assets.core.sets.csv_files import LegacyFileStats
from vector_assets.core.sets.describe import changes_text, keys_deleted, kind_text
from vector_assets.core.sets.manifest import FULL, INCREMENTAL
from vector_assets.core.sets.naming import LOG_FILE_NAME
from vector_assets.core.sets.writer import BackupResult
from vector_assets.core.stores import Store
from vector_assets.core.units import count_of, human_size, megabytes_per_second
from vector_assets.defs.checks import DATA_QUALITY_CHECK, data_quality_evaluations
from vector_assets.defs.choices import BackupKind, SetFormatChoice, value_of, values
from vector_assets.defs.cron import cron_from
from vector_assets.defs.failures import as_failure
from vector_assets.defs.resources import (
    BackupRootResource,
    PgVectorResource,
)
from vector_assets.defs.run_facts import log_progress, tag_run
from vector_assets.defs.store_keys import BACKUP_GROUP, SOURCE_GROUP, StoreKeys

def source_table_specs(keys: StoreKeys) -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec(
            keys.source_key(table),
            group_name=keys.group(SOURCE_GROUP),
            description=f"The LangChain PGVector table {table} in the pgvector database.",
            kinds={"postgres"},
        )
        for table in keys.store.table_names
    ]


def backup_specs(keys: StoreKeys) -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec(
            keys.backup_key(table),
            deps=[keys.source_key(table)],
            partitions_def=keys.partitions,
            group_name=keys.group(BACKUP_GROUP),
            description=f"Backups of {table}, one partition per backup set (key = timestamp), in the set's format: "
            "csv, csv.zst, pgcopy or pgcopy.zst.",
            kinds={"csv", "zstd", "pgcopy"},
        )
        for table in keys.store.table_names
    ]


def table_metadata(
    backup_set: BackupSet, table: str, legacy: LegacyFileStats | None = None
) -> dict[str, Any]:
    """Metadata for one table of a set; ``legacy`` stats are given for legacy sets, read by the caller."""
    files = backup_set.data_files(table)
    entry = backup_set.manifest.tables[table] if backup_set.manifest else None
    size = backup_set.table_bytes(table) or 0  # what the list, prune and the checks say too
    metadata: dict[str, Any] = {
        "path": dg.MetadataValue.path(str(backup_set.csv_path(table))),
        "file": backup_set.file_name(table),
        "format": backup_set.manifest.format if backup_set.manifest else "csv",
        "files": len(files),
        "bytes": dg.MetadataValue.int(size),
        "size": human_size(size),
        "location": backup_set.location.label,
        "task_id": backup_set.location.task_id or "global",
        "timestamp": backup_set.timestamp,
        "legacy": backup_set.is_legacy,
        "has_log": backup_set.folder.size(LOG_FILE_NAME) is not None,
    }
    known = entry or legacy
    if known is not None:
        metadata["rows"] = dg.MetadataValue.int(known.rows)
        metadata["sha256"] = known.sha256 or "one per part, in the manifest"
    if entry and entry.copy_seconds:
        metadata["copy_seconds"] = dg.MetadataValue.float(round(entry.copy_seconds, 3))
        metadata["throughput_mb_per_s"] = dg.MetadataValue.float(
            round(megabytes_per_second(entry.bytes, entry.copy_seconds), 1)
        )
    if entry and entry.rows_index is not None:
        metadata["row_index_file"] = entry.rows_index.file
    if entry and entry.deleted_keys is not None:
        metadata["deleted_keys_file"] = entry.deleted_keys.file
    if entry and backup_set.manifest.is_increment:
        metadata["rows_changed_or_added"] = dg.MetadataValue.int(entry.rows)
        metadata["keys_deleted"] = dg.MetadataValue.int(keys_deleted(entry))
        metadata["rows_after"] = dg.MetadataValue.int(entry.rows_after)
    if entry and entry.data_checks is not None:
        metadata.update({name: dg.MetadataValue.int(count) for name, count in entry.data_checks.counts().items()})
        metadata["data_checks_seconds"] = dg.MetadataValue.float(round(entry.data_checks.seconds, 3))
    if entry:
        metadata["columns"] = dg.MetadataValue.table_schema(
            dg.TableSchema(columns=[dg.TableColumn(c.name, c.type) for c in entry.columns])
        )
    return metadata


def set_metadata(backup_set: BackupSet) -> dict[str, Any]:
    """What the whole set shares: kind and parent, snapshot, timing, source (never a password)."""
    manifest = backup_set.manifest
    size = backup_set.total_bytes()  # every file of the set, as the list and prune give it
    sizes = {"set_bytes": dg.MetadataValue.int(size), "set_size": human_size(size)}
    if manifest is None:
        return {"consistent_snapshot": False, "kind": "legacy", **sizes}
    return {
        **sizes,
        "kind": manifest.kind,
        **({"parent": manifest.parent} if manifest.parent else {}),
        **({"fallback": manifest.fallback} if manifest.fallback else {}),
        "consistent_snapshot": manifest.consistent_snapshot,
        "set_duration_seconds": dg.MetadataValue.float(round(manifest.duration_seconds, 3)),
        "source": f"{manifest.source.get('database')} on {manifest.source.get('host')}:{manifest.source.get('port')}",
        "postgres_version": manifest.server_version,
        "pgvector_version": manifest.pgvector_version or "missing",
    }


def set_materializations(
    keys: StoreKeys, backup_set: BackupSet, legacy_stats: dict[str, LegacyFileStats] | None = None
) -> list[dg.AssetMaterialization]:
    shared = set_metadata(backup_set)
    return [
        dg.AssetMaterialization(
            asset_key=keys.backup_key(table),
            partition=backup_set.key,
            metadata={**table_metadata(backup_set, table, (legacy_stats or {}).get(table)), **shared},
        )
        for table in backup_set.tables
    ]


def backup_config(keys: StoreKeys) -> type[dg.Config]:
    table_choice = keys.table_choice

    class BackupConfig(dg.Config):
        task_id: str | None = Field(
            default=None,
            description="Write into <root>/<task_id>/vector_bak (task_… or manual_…); empty means the global vector_bak.",
        )
        tables: list[table_choice] = Field(default=list(keys.store.table_names), description="Tables to back up.")
        format: SetFormatChoice = Field(
            default=settings.backup_format(keys.store.environment()),
            description="csv (the earlier tooling's, the default), csv.zst (compressed), pgcopy (binary COPY: fastest), "
            "pgcopy.zst (binary, compressed: smallest). Default: VECTOR_ASSETS_FORMAT.",
        )
        kind: BackupKind = Field(
            default=FULL,
            description="full: every row. incremental: only the rows added or changed since the newest set in the same "
            "location (its parent) and the keys deleted since then; without a usable parent it is a full set that says why.",
        )
        allow_plaintext: bool = Field(
            default=False,
            description="Write this set unencrypted into a location that holds encrypted sets while "
            "VECTOR_ASSETS_ENCRYPT_TO is empty; refused otherwise (unless VECTOR_ASSETS_ALLOW_PLAINTEXT or the store's "
            "allow_plaintext says true), so a missing setting never downgrades a location.",
        )

    return BackupConfig


def backup_op(keys: StoreKeys) -> dg.OpDefinition:
    store = keys.store

    @dg.op(name=keys.name("back_up_tables"), pool=keys.pool, retry_policy=dg.RetryPolicy(max_retries=2, delay=15))
    def back_up_tables(
        context: dg.OpExecutionContext, config: backup_config(keys), pgvector: PgVectorResource,
        backup_root: BackupRootResource,
    ) -> None:
        """Stream the tables into a new set in one snapshot, then register it as a partition."""
        try:
            request = BackupRequest(
                dsn=pgvector.dsn_of(store), root=backup_root.open(store), task_id=config.task_id or None,
                tables=values(config.tables), format=value_of(config.format),
                parts=settings.part_policy(store.environment()), progress=log_progress(context),
                kind=value_of(config.kind), store=store,
                encryption=settings.store_encryption_keys(store, config.allow_plaintext),
            )
            result = run_backup(request)
            backup_set = registered_set(backup_root, store, result)
        except VectorAssetsError as error:
            raise as_failure(error, "backup") from None
        tag_run(context, backup_set.key)
        report_new_set(context, keys, backup_set)
        if result.manifest.fallback:
            context.log.warning(f"set {backup_set.key}: {result.manifest.fallback}")
        context.log.info(summary_line(result, backup_set))

    return back_up_tables


def registered_set(backup_root: BackupRootResource, store: Store, result: BackupResult) -> BackupSet:
    found = set_at(backup_root.open(store), result.folder, result.timestamp)
    if found is None:
        raise BackupSetNotFoundError(f"the new set {result.timestamp} in {result.folder} is not complete")
    return found


def report_new_set(context: dg.OpExecutionContext, keys: StoreKeys, backup_set: BackupSet) -> None:
    context.instance.add_dynamic_partitions(keys.partitions.name, [backup_set.key])
    for materialization in set_materializations(keys, backup_set):
        context.log_event(materialization)
    for evaluation in data_quality_evaluations(keys, backup_set):
        context.log_event(evaluation)
        (context.log.info if evaluation.passed else context.log.warning)(f"{DATA_QUALITY_CHECK}: {evaluation.description}")


def summary_line(result: BackupResult, backup_set: BackupSet) -> str:
    manifest = result.manifest
    tables = ", ".join(
        f"{name}: {changes_text(entry) if manifest.is_increment else count_of(entry.rows, 'row')} ({human_size(entry.bytes)}, "
        f"{megabytes_per_second(entry.bytes, entry.copy_seconds or 0):.1f} MB/s)"
        for name, entry in manifest.tables.items()
    )
    return (
        f"{kind_text(manifest)} backup set {backup_set.key} in {backup_set.location.label}: {tables}; "
        f"{result.manifest.duration_seconds:.2f}s, {result.megabytes_per_second:.1f} MB/s, consistent snapshot"
    )


def backup_definitions(keys: StoreKeys) -> dg.Definitions:
    """The store's source and backup assets, its backup job, and the full and incremental schedules."""
    environment = keys.store.environment()
    back_up_tables = backup_op(keys)

    @dg.job(
        name=keys.name("backup_vector_tables"),
        description="Back up the LangChain pgvector tables to a new timestamped set (one consistent snapshot) in the "
        "chosen format: a full set, or (kind: incremental) only what changed since the newest set.",
    )
    def backup_vector_tables() -> None:
        back_up_tables()

    full = dg.ScheduleDefinition(
        name=keys.name("vector_backup_schedule"),
        job=backup_vector_tables,
        cron_schedule=cron_from(settings.BACKUP_CRON, environment),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Backs up the pgvector tables on {settings.BACKUP_CRON.name} (default {settings.BACKUP_CRON.default!r}).",
    )
    incremental = dg.ScheduleDefinition(
        name=keys.name("vector_incremental_schedule"),
        job=backup_vector_tables,
        cron_schedule=cron_from(settings.INCREMENTAL_CRON, environment),
        run_config={"ops": {back_up_tables.name: {"config": {"kind": INCREMENTAL}}}},
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Off by default: turn it on under Automation to write an incremental backup on "
        f"{settings.INCREMENTAL_CRON.name} (default hourly, {settings.INCREMENTAL_CRON.default!r}).",
    )
    return dg.Definitions(
        assets=[*source_table_specs(keys), *backup_specs(keys)], jobs=[backup_vector_tables], schedules=[full, incremental]
    )
