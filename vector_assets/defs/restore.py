"""Restore: ``restore_vector_tables`` loads a set into the same or another database, in one
transaction. It shares the pool ``vector_tables`` with backup, truncate and prune."""

import json
from typing import Optional

import dagster as dg
from pydantic import Field

from vector_assets import settings
from vector_assets.core.errors import VectorAssetsError
from vector_assets.core.ops.diff import restore_effect_lines
from vector_assets.core.ops.restore import (
    REPLACE,
    CollectionRestore,
    RestoreRequest,
    RestoreResult,
    TableRestore,
    run_restore,
)
from vector_assets.core.pg.connection import describe_dsn
from vector_assets.core.stores import Store
from vector_assets.core.units import count_of, human_duration, human_size, megabytes_per_second
from vector_assets.defs.backup import registered_set, report_new_set
from vector_assets.defs.choices import OnConflict, restore_target_choice, value_of, values
from vector_assets.defs.failures import as_failure
from vector_assets.defs.partitions import chosen_set
from vector_assets.defs.resources import (
    BackupRootResource,
    PgVectorResource,
)
from vector_assets.defs.run_facts import READS_SETS, log_progress, tag_run, tag_safety_set
from vector_assets.defs.store_keys import StoreKeys

RESTORE_JOB = "restore_vector_tables"


def restore_config(keys: StoreKeys) -> type[dg.Config]:
    table_choice, target_choice = keys.table_choice, restore_target_choice(keys)

    class RestoreConfig(dg.Config):
        target: target_choice = Field(
            default=target_choice[settings.DEFAULT_TARGET],
            description="Where to restore. The choices are 'default' (the database of VECTOR_ASSETS_PG_DSN) and the "
            "names listed in VECTOR_ASSETS_RESTORE_TARGETS in the code location's environment (each the name of the "
            "variable holding that target's DSN).",
        )
        tables: list[table_choice] = Field(
            default=list(keys.store.table_names),
            description="Tables to restore; the choices are the managed tables (both by default).",
        )
        truncate_before_restore: bool = Field(
            default=True,
            description="true (the default): the tables become exactly the set; what they held is kept in a pre_restore "
            "set first, and the run gives the undo. false: append the set's rows; on_conflict decides about existing keys.",
        )
        on_conflict: OnConflict = Field(
            default=OnConflict.error,
            description="Append mode only: error (fail on the first existing key) or skip (keep it, report it).",
        )
        collection: Optional[str] = Field(
            default=None,
            description="Restore only this collection (its row and its embeddings), by its name in the set; the other "
            "collections stay as they are. With truncate_before_restore it replaces that collection, else it appends.",
        )
        rename_collection_to: Optional[str] = Field(
            default=None,
            description="With collection: restore it as a new collection of this name beside the current one, with new "
            "deterministic ids (see the README).",
        )
        dry_run: bool = Field(
            default=True,
            description="true (the default): do everything (lock, safety set, conflict checks, load, index builds), then "
            "roll back; it fails where the real restore would. Write dry_run: false to restore.",
        )
        safety_backup: bool = Field(
            default=True,
            description="Back up what the restore replaces into a pre_restore set first. Turn off only knowingly.",
        )
        fire_triggers: bool = Field(
            default=False,
            description="false (the default): the target tables' own triggers stay off while the rows load (a pgai "
            "source table's would queue every row for embedding again). true: let them fire for every row.",
        )
        name_replaced_rows: bool = Field(
            default=False,
            description="A replacing dry run always names the rows it would replace. true: the real run names the "
            "rows it replaced too, at the cost of a digest scan of the tables before the load and one after.",
        )

    return RestoreConfig


def target_dsn(target: str, store: Store, pgvector: PgVectorResource) -> str:
    if target == settings.DEFAULT_TARGET:
        return pgvector.dsn_of(store)
    return settings.restore_target_dsn(target, store.environment())


def restore_op(keys: StoreKeys) -> dg.OpDefinition:
    store, job_name = keys.store, keys.name(RESTORE_JOB)

    @dg.op(name=keys.name("restore_from_backup_set"), pool=keys.pool, out=dg.Out(dg.Nothing))
    def restore_from_backup_set(
        context: dg.OpExecutionContext, config: restore_config(keys), pgvector: PgVectorResource,
        backup_root: BackupRootResource,
    ) -> dg.Output:
        """Check the set and the target, back up what will be replaced, then load in one transaction."""
        key = chosen_set(context, job_name)
        target = value_of(config.target)
        tag_run(context, key, target)
        try:
            dsn = target_dsn(target, store, pgvector)
            request = RestoreRequest(
                target_dsn=dsn, root=backup_root.open(store), timestamp=key, tables=values(config.tables),
                truncate_before_restore=config.truncate_before_restore, dry_run=config.dry_run,
                on_conflict=value_of(config.on_conflict), configured_root=backup_root.configured(store),
                safety_backup=config.safety_backup, offsite_root=backup_root.open_offsite(store),
                progress=log_progress(context), index_builds=settings.index_build_settings(store.environment()),
                collection=config.collection, rename_collection_to=config.rename_collection_to, store=store,
                encryption=settings.store_encryption_keys(store), fire_triggers=config.fire_triggers,
                name_replaced_rows=config.name_replaced_rows,
            )
            result = run_restore(request)
        except VectorAssetsError as error:
            raise as_failure(error, "restore") from None
        return report_restore(context, keys, config, backup_root, result, target, dsn)

    return restore_from_backup_set


def report_restore(
    context: dg.OpExecutionContext, keys: StoreKeys, config: dg.Config, backup_root: BackupRootResource,
    result: RestoreResult, target: str, dsn: str,
) -> dg.Output:
    """The restore's log lines, observations and metadata, and the undo when it replaced something."""
    if result.read_from_offsite:
        context.log.warning(result.read_from_offsite)
    if not config.safety_backup:
        context.log.warning("safety_backup is off: what this restore replaced was not backed up")
    safety_key = register_safety_set(context, keys, backup_root, result)
    if safety_key is not None:
        tag_safety_set(context, safety_key)
    server = describe_dsn(dsn)
    if not result.dry_run and target == settings.DEFAULT_TARGET:
        for table in result.tables:
            context.log_event(table_observation(keys, result, table, safety_key))
    for build in result.index_builds:
        (context.log.warning if build.spilled else context.log.info)(build.message)
    context.log.info(restore_summary(result, f"{server.database} on {server.host}"))
    effect = restore_effect_lines(result.changes, done=not result.dry_run) if result.changes is not None else []
    for line in effect:
        context.log.info(line)
    if result.dry_run:
        context.log.info("dry run: everything was done, then rolled back; nothing changed. Write dry_run: false to restore")
    metadata = restore_metadata(result, f"{target}: {server.database} on {server.host}:{server.port}", safety_key)
    if result.changes is not None:
        name = "would_change" if result.dry_run else "replaced"
        metadata[name] = dg.MetadataValue.md("\n".join(f"- {line}" for line in effect))
        metadata[f"{name}_rows"] = dg.MetadataValue.json(result.changes.as_json())
    if safety_key is not None:
        undo = undo_instructions(result, safety_key, target, context.op_def.name, keys.store)
        job = keys.name(RESTORE_JOB)
        context.log.info(f"what the restore replaced is in the pre_restore set {safety_key}. To undo: {undo['cli']}; "
                         f"or launch {job} for partition {safety_key} with {undo['launchpad']}")
        metadata.update({"undo_cli": undo["cli"], "undo_launchpad": dg.MetadataValue.md(
            f"Partition `{safety_key}`, config:\n\n```yaml\n{undo['launchpad']}\n```")})
    return dg.Output(None, metadata=metadata)


def register_safety_set(
    context: dg.OpExecutionContext, keys: StoreKeys, backup_root: BackupRootResource, result: RestoreResult
) -> str | None:
    if result.safety_set is None:
        return None
    try:
        backup_set = registered_set(backup_root, keys.store, result.safety_set)
    except VectorAssetsError as error:  # the restore has committed; the sensor registers the set later
        context.log.warning(f"the pre_restore set {result.safety_set.timestamp} is on disk but not registered yet: {error}")
        return result.safety_set.timestamp
    report_new_set(context, keys, backup_set)
    return backup_set.key


def undo_instructions(
    result: RestoreResult, safety_key: str, target: str, op_name: str, store: Store | None = None
) -> dict[str, str]:
    """The undo as a command (the CLI's own wording) and as Launchpad config for the safety set's partition."""
    tables = list(result.safety_set.manifest.tables)
    launchpad = (
        f"ops:\n  {op_name}:\n    config:\n"
        f"      target: {target}\n      tables: [{', '.join(tables)}]\n      truncate_before_restore: true\n"
        "      dry_run: false"
    )
    if result.collection is not None:
        # The safety set holds the collection as it was, or records it absent: that one collection is put back.
        launchpad += f"\n      collection: {json.dumps(result.collection.restored_as, ensure_ascii=False)}"
    return {"cli": result.undo_command(target, store), "launchpad": launchpad}


def restore_summary(result: RestoreResult, target: str) -> str:
    verb = "would restore" if result.dry_run else "restored"
    tables = ", ".join(f"{t.table}: {t.rows_loaded:,} loaded, {t.rows_skipped:,} skipped" for t in result.tables)
    collection = f" {result.collection.describe()};" if result.collection else ""
    return f"{verb} set {result.backup_set.key} into {target}:{collection} {tables}"


RESTORE_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("table", "string"), dg.TableColumn("rows_before", "int"),
    dg.TableColumn("rows_removed", "int", description="rows the restore replaced: truncated, or one collection's deleted"),
    dg.TableColumn("rows_loaded", "int"), dg.TableColumn("rows_skipped", "int"), dg.TableColumn("rows_after", "int"),
    dg.TableColumn("size", "string"), dg.TableColumn("seconds", "float"), dg.TableColumn("mb_per_s", "float"),
])


INDEX_BUILD_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("index", "string"), dg.TableColumn("method", "string"), dg.TableColumn("seconds", "float"),
    dg.TableColumn("maintenance_work_mem", "string"), dg.TableColumn("estimated_need", "string"),
    dg.TableColumn("workers", "int"), dg.TableColumn("fit_in_memory", "bool"), dg.TableColumn("notice", "string"),
])


def index_build_records(result: RestoreResult) -> list[dg.TableRecord]:
    return [
        dg.TableRecord({
            "index": b.name, "method": b.method, "seconds": round(b.seconds, 3),
            "maintenance_work_mem": human_size(b.memory_bytes), "estimated_need": human_size(b.needed_bytes),
            "workers": b.workers, "fit_in_memory": b.spilled is None, "notice": b.spilled or b.shortfall or "",
        })
        for b in result.index_builds
    ]


def rows_after(table: TableRestore) -> int:
    return table.rows_before - table.rows_truncated + table.rows_loaded


def restore_records(result: RestoreResult) -> list[dg.TableRecord]:
    return [
        dg.TableRecord({
            "table": t.table, "rows_before": t.rows_before, "rows_removed": t.rows_truncated,
            "rows_loaded": t.rows_loaded, "rows_skipped": t.rows_skipped, "rows_after": rows_after(t),
            "size": human_size(t.bytes), "seconds": round(t.duration_seconds, 3),
            "mb_per_s": round(megabytes_per_second(t.bytes, t.duration_seconds), 1),
        })
        for t in result.tables
    ]


def restore_markdown(result: RestoreResult, target: str, safety_key: str | None) -> str:
    verb = "Dry run, rolled back: would restore" if result.dry_run else "Restored"
    mode = "replacing the rows" if result.truncated else "appending"
    removed = "truncated"
    if result.collection is not None:
        mode, removed = _collection_mode(result.collection), "deleted"
    lines = [
        f"**{verb}** set `{result.backup_set.key}` into {target}, {mode}, in {human_duration(result.duration_seconds)}.",
        "",
        f"| table | before | {removed} | loaded | skipped | after |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {t.table} | {t.rows_before:,} | {t.rows_truncated:,} | {t.rows_loaded:,} | {t.rows_skipped:,} | {rows_after(t):,} |"
        for t in result.tables
    ]
    lines += ["", f"Indexes rebuilt: {', '.join(f'`{name}`' for name in result.indexes_rebuilt) or 'none'}."]
    lines += [f"- {build.message}" for build in result.index_builds]
    lines += [f"Skipped in {t.table}: " + "; ".join(f"{rows:,} ({why})" for why, rows in t.skipped_because.items())
              for t in result.tables if t.skipped_because]
    if safety_key:
        lines.append(f"What it replaced is in the pre_restore set `{safety_key}`.")
    elif not result.safety_backup:
        lines.append("No safety set: safety_backup was off.")
    return "\n".join(lines)


def _collection_mode(collection: CollectionRestore) -> str:
    renamed = f" as `{collection.restored_as}`" if collection.renamed else ""
    how = "replacing it" if collection.mode == REPLACE else "appending"
    deleted = f", {count_of(collection.embeddings_deleted, 'embedding')} deleted" if collection.mode == REPLACE else ""
    return (f"only collection `{collection.name}`{renamed} (uuid `{collection.uuid}`), {how}{deleted}, "
            f"{collection.embeddings_loaded:,} loaded")


def collection_metadata(result: RestoreResult) -> dict:
    collection = result.collection
    if collection is None:
        return {"collection": "all (whole tables)"}
    return {
        "collection": collection.name, "restored_as": collection.restored_as, "collection_uuid": collection.uuid,
        "collection_mode": collection.mode, "replaced_collection_uuid": collection.replaced_uuid or "none",
        "embeddings_in_set": collection.embeddings_in_set, "embeddings_deleted": collection.embeddings_deleted,
        "embeddings_loaded": collection.embeddings_loaded, "embeddings_skipped": collection.embeddings_skipped,
    }


def restore_metadata(result: RestoreResult, target: str, safety_key: str | None = None) -> dict:
    return {
        "summary": dg.MetadataValue.md(restore_markdown(result, target, safety_key)),
        "backup_partition": result.backup_set.key,
        "backup_folder": dg.MetadataValue.path(str(result.backup_set.folder)),
        "read_from_offsite": result.read_from_offsite or "no: the local copy",
        "target": target,
        "dry_run": result.dry_run,
        "truncated": result.truncated,
        "restore_results": dg.MetadataValue.table(restore_records(result), schema=RESTORE_SCHEMA),
        "indexes_rebuilt": ", ".join(result.indexes_rebuilt) or "none",
        "tables_created": ", ".join(result.tables_created) or "none",
        "index_builds": dg.MetadataValue.table(index_build_records(result), schema=INDEX_BUILD_SCHEMA),
        "index_graph_fit_in_memory": not any(build.spilled for build in result.index_builds),
        "sequences_advanced": ", ".join(result.sequences_advanced) or "none",
        "triggers_not_fired": ", ".join(result.triggers_held) or "none",
        "safety_set": safety_key or "none",
        "duration_seconds": dg.MetadataValue.float(round(result.duration_seconds, 3)),
        **collection_metadata(result),
    }


def table_observation(
    keys: StoreKeys, result: RestoreResult, table: TableRestore, safety_key: str | None
) -> dg.AssetObservation:
    """What the restore did to one source table, on that table's asset."""
    return dg.AssetObservation(
        asset_key=keys.source_key(table.table),
        metadata={
            "restored_from": result.backup_set.key, "truncated": result.truncated,
            "rows_before": table.rows_before, "rows_loaded": table.rows_loaded, "rows_skipped": table.rows_skipped,
            "rows_after": rows_after(table), "duration_seconds": dg.MetadataValue.float(round(table.duration_seconds, 3)),
            "safety_set": safety_key or "none",
            "collection": result.collection.describe() if result.collection else "all (whole tables)",
        },
    )


def restore_definitions(keys: StoreKeys) -> dg.Definitions:
    restore_from_backup_set = restore_op(keys)

    @dg.job(
        name=keys.name(RESTORE_JOB),
        partitions_def=keys.partitions,
        tags=READS_SETS,
        description="Restore the chosen set (the partition) into the pgvector database or a declared target, in one "
        "transaction, replacing the tables' rows by default. What it replaces is backed up first into a pre_restore "
        "set; the run log gives the undo. A dry run (the default) does everything, then rolls back; write "
        "dry_run: false to restore.",
    )
    def restore_vector_tables() -> None:
        restore_from_backup_set()

    return dg.Definitions(jobs=[restore_vector_tables])
