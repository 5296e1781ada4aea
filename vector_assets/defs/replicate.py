"""The job ``replicate_vector_backups`` and its daily ``vector_replicate_schedule``: copy every
complete set that the offsite root (``VECTOR_ASSETS_OFFSITE_ROOT``) lacks.

Each copied set's backup assets get an observation on its partition saying where its copies
are. A set whose files fail their checksums is not copied; the run fails naming it, after
copying the others, so the damage is seen.
"""

import dagster as dg
from pydantic import Field

from vector_assets import settings
from vector_assets.core.errors import ConfigError, VectorAssetsError
from vector_assets.core.ops.replicate import (
    ReplicateRequest,
    ReplicateResult,
    run_replicate,
)
from vector_assets.core.stores import Store
from vector_assets.core.units import count_of, human_size
from vector_assets.defs.cron import cron_from
from vector_assets.defs.failures import as_failure
from vector_assets.defs.resources import BackupRootResource
from vector_assets.defs.run_facts import READS_SETS
from vector_assets.defs.store_keys import StoreKeys


class ReplicateConfig(dg.Config):
    dry_run: bool = Field(
        default=False,
        description="Read and check every file it would copy and try a write in the offsite root, copying nothing; "
        "it fails where the real run would.",
    )


def replicate_op(keys: StoreKeys) -> dg.OpDefinition:
    store = keys.store

    retry = dg.RetryPolicy(max_retries=2, delay=60)

    @dg.op(name=keys.name("replicate_sets"), pool=keys.pool, retry_policy=retry)  # never beside a prune
    def replicate_sets(context: dg.OpExecutionContext, config: ReplicateConfig, backup_root: BackupRootResource) -> dg.Output:
        """Stream each missing set to the offsite root, checksums verified, manifest last."""
        try:
            offsite = backup_root.open_offsite(store)
            if offsite is None:
                raise ConfigError(f"{settings.OFFSITE_ROOT.name} is not set: there is no second root to copy sets to")
            request = ReplicateRequest(root=backup_root.open(store), offsite_root=offsite, dry_run=config.dry_run)
            result = run_replicate(request)
        except VectorAssetsError as error:
            raise as_failure(error, "replicate") from None
        for backup_set in [] if result.dry_run else result.copied:
            for table in backup_set.tables:
                context.log_event(dg.AssetObservation(
                    asset_key=keys.backup_key(table), partition=backup_set.key,
                    metadata={"copies": "local, offsite", "offsite_copy": str(backup_set.location.folder(offsite))},
                ))
        context.log.info(
            f"{'dry run: would copy' if result.dry_run else 'copied'} {count_of(len(result.copied), 'set')} "
            f"({human_size(result.bytes_copied)}) to {offsite}; "
            f"{len(result.already_offsite)} were there already"
        )
        if result.refused:
            raise dg.Failure(
                description="not copied, damaged: " + "; ".join(f"{key}: {why}" for key, why in result.refused.items()),
                metadata=replicate_metadata(result), allow_retries=False,
            )
        return dg.Output(None, metadata=replicate_metadata(result))

    return replicate_sets


def replicate_metadata(result: ReplicateResult) -> dict:
    return {
        "sets_copied": dg.MetadataValue.json([s.key for s in result.copied]),
        "sets_already_offsite": len(result.already_offsite),
        "sets_refused": dg.MetadataValue.json(result.refused),
        "bytes_copied": result.bytes_copied,
        "dry_run": result.dry_run,
    }


def replicate_description(store: Store) -> str:
    """Says, when the code location loads without an offsite root, that the job cannot work yet."""
    what = "Copy every complete backup set that the offsite root (VECTOR_ASSETS_OFFSITE_ROOT) lacks."
    if settings.OFFSITE_ROOT.get(store.environment()):
        return what
    return (f"NOT SET UP: {settings.OFFSITE_ROOT.name} is not set in this code location, so a run stops at once "
            f"saying so. {what}")


def replicate_definitions(keys: StoreKeys) -> dg.Definitions:
    replicate_sets = replicate_op(keys)
    environment, cron = keys.store.environment(), settings.REPLICATE_CRON

    @dg.job(name=keys.name("replicate_vector_backups"), description=replicate_description(keys.store), tags=READS_SETS)
    def replicate_vector_backups() -> None:
        replicate_sets()

    schedule = dg.ScheduleDefinition(
        name=keys.name("vector_replicate_schedule"),
        job=replicate_vector_backups,
        cron_schedule=cron_from(cron, environment),
        default_status=(
            dg.DefaultScheduleStatus.RUNNING if settings.OFFSITE_ROOT.get(environment) else dg.DefaultScheduleStatus.STOPPED
        ),
        description=(
            f"Daily after the backup ({cron.name}, default 03:00): copies new sets to "
            f"{settings.OFFSITE_ROOT.name}. On when that is set at load time."
        ),
    )
    return dg.Definitions(jobs=[replicate_vector_backups], schedules=[schedule])
