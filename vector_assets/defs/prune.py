"""The prune job ``prune_vector_backups`` and its schedule ``vector_prune_schedule``.

The op shows the keep-and-delete plan as a table; it deletes only with ``dry_run: false``.
Sets that an unfinished restore, drill or check run mentions are protected.
"""

import dagster as dg
from pydantic import Field

from vector_assets import settings
from vector_assets.core.errors import ConfigError, PruneError, VectorAssetsError
from vector_assets.core.ops.prune import PruneRequest, PruneResult, run_prune
from vector_assets.core.sets.retention import RetentionPolicy
from vector_assets.core.sets.storage import Root
from vector_assets.core.stores import Store
from vector_assets.core.units import human_size
from vector_assets.defs.cron import cron_from
from vector_assets.defs.failures import as_failure
from vector_assets.defs.resources import BackupRootResource
from vector_assets.defs.run_facts import READS_SETS
from vector_assets.defs.store_keys import StoreKeys

# Jobs whose unfinished runs read sets: restore, the restore drill (and its name before 0.2), the file checks.
UNFINISHED_STATUSES = [
    status
    for status in dg.DagsterRunStatus
    if status not in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
]

PLAN_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("key", "string"),
    dg.TableColumn("location", "string"),
    dg.TableColumn("timestamp", "string"),
    dg.TableColumn("action", "string"),
    dg.TableColumn("reasons", "string"),
    dg.TableColumn("note", "string"),
    dg.TableColumn("size", "string"),
    dg.TableColumn("bytes", "int"),
])


class PruneConfig(dg.Config):
    dry_run: bool = Field(
        default=True,
        description="Only show the keep-and-delete plan. Set false to delete the sets marked 'delete'.",
    )
    offsite: bool = Field(
        default=False,
        description="Prune the offsite root (VECTOR_ASSETS_OFFSITE_ROOT) with its own counts "
        "(VECTOR_ASSETS_OFFSITE_KEEP_*) instead of the local root.",
    )


def prune_op(keys: StoreKeys) -> dg.OpDefinition:
    store = keys.store

    @dg.op(name=keys.name("prune_backup_sets"), pool=keys.pool, out=dg.Out(dg.Nothing))
    def prune_backup_sets(context: dg.OpExecutionContext, config: PruneConfig, backup_root: BackupRootResource) -> dg.Output:
        """Plan retention per location and, unless this is a dry run, delete and unregister old sets.

        It shares the pool with backup and restore, so a restore launched after the in-use check
        waits for the prune instead of reading a set while it is deleted.
        """
        try:
            root, policy = pruned_root(config, store, backup_root)
            request = PruneRequest(
                root=root, policy=policy, dry_run=config.dry_run, in_use=mentions_in_unfinished_runs(context.instance),
            )
            result = run_prune(request)
        except PruneError as error:
            if isinstance(error.partial_result, PruneResult) and not config.offsite:
                update_partitions(context.instance, keys, error.partial_result)
            raise as_failure(error, "prune") from None
        except VectorAssetsError as error:
            raise as_failure(error, "prune") from None
        removed = [] if config.offsite else update_partitions(context.instance, keys, result)  # partitions are local sets
        for skipped in result.plan.skipped_locations:
            context.log.warning(skipped)
        context.log.info(prune_summary(result))
        metadata = prune_metadata(result, removed)
        context.log_event(dg.AssetObservation(
            asset_key=keys.inventory_key,
            metadata={key: metadata[key] for key in ("summary", "plan", "sets_kept", "sets_deleted", "bytes_freed", "dry_run")},
        ))
        return dg.Output(None, metadata=metadata)

    return prune_backup_sets


def pruned_root(config: PruneConfig, store: Store, backup_root: BackupRootResource) -> tuple[Root, RetentionPolicy]:
    environment = store.environment()
    if not config.offsite:
        return backup_root.open(store), settings.retention_policy(environment)
    offsite = backup_root.open_offsite(store)
    if offsite is None:
        raise ConfigError(f"offsite: true, but {settings.OFFSITE_ROOT.name} is not set")
    return offsite, settings.retention_policy(environment, offsite=True)


def mentions_in_unfinished_runs(instance: dg.DagsterInstance) -> frozenset[str]:
    """Every string in the config and tags of unfinished runs of jobs that read sets (they carry
    the ``READS_SETS`` tag their job declares).

    Generous on purpose: whatever op or field names a timestamp or key, the set is protected.
    """
    mentions: set[str] = set()
    runs = instance.get_runs(filters=dg.RunsFilter(tags=READS_SETS, statuses=UNFINISHED_STATUSES))
    for run in runs:
        mentions.update(strings_in(run.run_config))
        mentions.update(strings_in(run.tags))
    return frozenset(mentions)


def strings_in(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in [*strings_in(key), *strings_in(item)]]
    if isinstance(value, (list, tuple)):
        return [text for item in value for text in strings_in(item)]
    return []


def update_partitions(instance: dg.DagsterInstance, keys: StoreKeys, result: PruneResult) -> list[str]:
    """Drop the partitions of deleted sets; register keys that surviving sets carry now."""
    name = keys.partitions.name
    removed = [key for key in result.removed_keys if instance.has_dynamic_partition(name, key)]
    for key in removed:
        instance.delete_dynamic_partition(name, key)
    if result.new_keys:
        instance.add_dynamic_partitions(name, list(result.new_keys))
    return removed


def prune_summary(result: PruneResult) -> str:
    return result.summary(how_to_apply="run with dry_run: false")


def prune_metadata(result: PruneResult, partitions_removed: list[str]) -> dict:
    plan = result.plan
    records = [
        dg.TableRecord({
            "key": planned.key, "location": planned.location, "timestamp": planned.timestamp,
            "action": planned.action, "reasons": ", ".join(planned.reasons), "note": planned.note,
            "size": human_size(planned.bytes), "bytes": planned.bytes,
        })
        for planned in plan.sets
    ]
    return {
        "summary": dg.MetadataValue.md(prune_markdown(result)),
        "dry_run": result.dry_run,
        "policy": plan.policy.describe(),
        "plan": dg.MetadataValue.table(records, schema=PLAN_SCHEMA),
        "sets_kept": len(plan.kept),
        "sets_to_delete": len(plan.to_delete),
        "sets_deleted": len(result.deleted),
        "bytes_to_free": plan.bytes_to_free,
        "bytes_freed": result.bytes_freed,
        "partitions_removed": dg.MetadataValue.json(partitions_removed),
        "skipped_locations": dg.MetadataValue.json(list(plan.skipped_locations)),
    }


def prune_markdown(result: PruneResult) -> str:
    lines = [f"**{prune_summary(result)[0].upper()}{prune_summary(result)[1:]}.**", "",
             "| set | location | action | why | size |", "|---|---|---|---|---:|"]
    lines += [
        f"| `{p.key}` | {p.location} | {p.action} | {', '.join(p.reasons) or p.note or ''} | {human_size(p.bytes)} |"
        for p in result.plan.sets
    ]
    return "\n".join(lines)


def prune_definitions(keys: StoreKeys) -> dg.Definitions:
    prune_backup_sets = prune_op(keys)
    cron = settings.PRUNE_CRON

    @dg.job(
        name=keys.name("prune_vector_backups"),
        description="Delete backup sets outside the retention policy (7 daily / 4 weekly / 12 monthly by default); "
        "dry run unless dry_run: false.",
    )
    def prune_vector_backups() -> None:
        prune_backup_sets()

    schedule = dg.ScheduleDefinition(
        name=keys.name("vector_prune_schedule"),
        job=prune_vector_backups,
        cron_schedule=cron_from(cron, keys.store.environment()),
        run_config={"ops": {prune_backup_sets.name: {"config": {"dry_run": False}}}},
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=(
            "Off by default. When turned on it really deletes (dry_run: false) the sets outside the retention policy "
            f"on {cron.name} (default daily at 03:30); launch prune_vector_backups by hand to see the plan first."
        ),
    )
    return dg.Definitions(jobs=[prune_vector_backups], schedules=[schedule])
