"""The restore drill: job ``drill_vector_backup``, check ``restore_drill``, ``vector_drill_schedule``.

The job is partitioned by the sets, so the Launchpad offers the set picker; it reports its
outcome as that partition's ``restore_drill`` check evaluation. The schedule drills the newest
registered set.
"""

import dagster as dg

from vector_assets import settings
from vector_assets.core.errors import VectorAssetsError
from vector_assets.core.ops.drill import PASSED, WARNING, DrillRequest, DrillResult, run_drill
from vector_assets.core.pg.search_quality import IndexRecall
from vector_assets.core.rto import OVER, WITHIN
from vector_assets.core.stores import Store
from vector_assets.core.units import human_size
from vector_assets.defs.alerts import alert_failed_check
from vector_assets.defs.cron import cron_from
from vector_assets.defs.failures import as_failure
from vector_assets.defs.partitions import chosen_set, newest_key, set_checks, set_chosen_for_checks
from vector_assets.defs.resources import BackupRootResource, PgVectorResource
from vector_assets.defs.restore import INDEX_BUILD_SCHEMA, index_build_records
from vector_assets.defs.run_facts import READS_SETS, log_progress, set_tags, tag_run
from vector_assets.defs.store_keys import StoreKeys

DRILL_JOB = "drill_vector_backup"
DRILL_CHECK = "restore_drill"
RTO_CHECK = "restore_rto"
RECALL_CHECK = "search_recall"


def drill(
    context: dg.OpExecutionContext | dg.AssetCheckExecutionContext,
    store: Store,
    pgvector: PgVectorResource,
    backup_root: BackupRootResource,
    key: str,
) -> DrillResult:
    tag_run(context, key)
    environment = store.environment()
    try:
        request = DrillRequest(
            dsn=pgvector.dsn_of(store), root=backup_root.open(store), key=key or None,
            configured_root=backup_root.configured(store), offsite_root=backup_root.open_offsite(store),
            progress=log_progress(context), rto_targets=settings.rto_targets(environment),
            index_builds=settings.index_build_settings(environment), store=store,
            recall=settings.recall_settings(environment),
            encryption=settings.store_encryption_keys(store),
        )
        return run_drill(request)
    except VectorAssetsError as error:
        raise as_failure(error, "restore drill") from None


def drill_check_results(result: DrillResult) -> list[tuple[str, bool, str, dict]]:
    """(table, passed, description, metadata) per table of the set."""
    shared = {
        "partition": result.backup_set.key,
        "location": result.backup_set.location.label,
        "scratch_database": result.scratch_database,
        "scratch_dropped": result.scratch_dropped,
        "read_from_offsite": result.read_from_offsite or "no: the local copy",
    }
    return [
        (
            table.table,
            table.passed,
            table.message,
            {
                **shared,
                "rows_in_set": dg.MetadataValue.int(table.rows_in_set),
                "rows_restored": dg.MetadataValue.int(table.rows_restored),
                "set_sha256": table.set_sha256,
                "restored_sha256": table.restored_sha256,
            },
        )
        for table in result.tables
    ]


def rto_metadata(result: DrillResult) -> dict:
    """Numbers Dagster plots over time: the restore's seconds, its target, the set's bytes."""
    recovery = result.recovery_time
    return {
        "restore_seconds": dg.MetadataValue.float(round(recovery.restore_seconds, 3)),
        "rto_target_seconds": dg.MetadataValue.float(recovery.target_seconds),
        "bytes": dg.MetadataValue.int(recovery.bytes),
        "size": human_size(recovery.bytes),
    }


def rto_check_fields(result: DrillResult) -> dict:
    """Over the target is a warning, over twice the target an error."""
    recovery = result.recovery_time
    return {
        "passed": recovery.verdict == WITHIN,
        "severity": dg.AssetCheckSeverity.WARN if recovery.verdict == OVER else dg.AssetCheckSeverity.ERROR,
        "description": recovery.message,
        "metadata": {**rto_metadata(result), "partition": result.backup_set.key},
    }


def recall_check_fields(result: DrillResult, table: str) -> dict:
    """The table's worst index decides: at the target it passes, below it warns, far below it fails."""
    measured = result.recall_of(table)
    settings_used = result.recall_settings
    if not measured:
        return {"passed": True, "description": f"{table} has no HNSW or IVFFlat index: nothing to measure",
                "metadata": {"partition": result.backup_set.key, "indexes": 0}}
    worst = min(measured, key=lambda index: index.recall)
    verdict = settings_used.verdict(worst.recall)
    return {
        "passed": verdict == PASSED,
        "severity": dg.AssetCheckSeverity.WARN if verdict == WARNING else dg.AssetCheckSeverity.ERROR,
        "description": f"{verdict}: " + "; ".join(index.describe() for index in measured)
        + f" (target {settings_used.target:.2f})",
        "metadata": recall_metadata(result, measured, worst),
    }


def recall_metadata(result: DrillResult, measured: list[IndexRecall], worst: IndexRecall) -> dict:
    """Numbers Dagster plots per set: the worst index's recall and the latency and short answers."""
    return {
        "partition": result.backup_set.key,
        "recall": dg.MetadataValue.float(round(worst.recall, 4)),
        "recall_target": dg.MetadataValue.float(result.recall_settings.target),
        "k": result.recall_settings.k,
        "queries": sum(index.queries for index in measured),
        "p50_ms": dg.MetadataValue.float(round(max(index.p50_ms for index in measured), 2)),
        "p95_ms": dg.MetadataValue.float(round(max(index.p95_ms for index in measured), 2)),
        "short_answers": sum(index.short_answers for index in measured),
        "iterative_scan": result.recall_settings.iterative_scan,
        "live_answers_differing": sum(index.live_differences for index in measured),
        "live": result.live_compared,
        "indexes": dg.MetadataValue.table(
            [dg.TableRecord({"index": i.index, "method": i.method, "recall": round(i.recall, 4), "p50_ms": round(i.p50_ms, 2),
                             "p95_ms": round(i.p95_ms, 2), "short_answers": i.short_answers}) for i in measured],
            schema=RECALL_SCHEMA,
        ),
        "recall_seconds": dg.MetadataValue.float(round(result.recall_seconds, 3)),
    }


RECALL_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("index", "string"), dg.TableColumn("method", "string"), dg.TableColumn("recall", "float"),
    dg.TableColumn("p50_ms", "float"), dg.TableColumn("p95_ms", "float"), dg.TableColumn("short_answers", "int"),
])


def alert_failed_drill_checks(context, result: DrillResult, store: Store) -> None:
    for table in result.tables:
        if not table.passed:
            alert_failed_check(context, result.backup_set.key, f"{table.table} {DRILL_CHECK}", table.message, store)
    for table in {measured.table for measured in result.recall}:
        fields = recall_check_fields(result, table)
        if not fields["passed"]:
            alert_failed_check(context, result.backup_set.key, f"{table} {RECALL_CHECK}", fields["description"], store)
    if result.recovery_time.verdict != WITHIN:
        alert_failed_check(context, result.backup_set.key, RTO_CHECK, result.recovery_time.message, store)


def drill_check_specs(keys: StoreKeys) -> list[dg.AssetCheckSpec]:
    rto = (f"The drill's restore time, index builds included, against {settings.RTO_TARGETS.name} "
           "(under 1 GB 5 min, to 10 GB 30 min, above 2 h): WARN over it, ERROR over twice.")
    recall = (f"recall@k of each vector index the drill rebuilt, against exact search, with sampled queries: "
              f"WARN below {settings.RECALL_TARGET.name} (default 0.90), ERROR below it minus 0.2.")
    rows = "Restore the set into a scratch database and compare every row with the file."
    return [
        dg.AssetCheckSpec(check, asset=keys.backup_key(table), partitions_def=keys.partitions, description=description)
        for check, tables, description in (
            (DRILL_CHECK, keys.store.table_names, rows),
            (RTO_CHECK, keys.store.table_names, rto),
            (RECALL_CHECK, keys.store.vector_tables, recall),
        )
        for table in tables
    ]


def drill_checks(keys: StoreKeys) -> dg.AssetChecksDefinition:
    job_name = keys.name(DRILL_JOB)

    @set_checks(keys.name("restore_drill_check"), drill_check_specs(keys))
    def restore_drill_check(
        context: dg.AssetCheckExecutionContext, pgvector: PgVectorResource, backup_root: BackupRootResource
    ):
        key = set_chosen_for_checks(context, job_name)
        if key is None:
            return
        result = drill(context, keys.store, pgvector, backup_root, key)
        alert_failed_drill_checks(context, result, keys.store)
        selected = context.selected_asset_check_keys
        for table, passed, description, metadata in drill_check_results(result):
            if dg.AssetCheckKey(keys.backup_key(table), DRILL_CHECK) in selected:
                yield dg.AssetCheckResult(
                    asset_key=keys.backup_key(table), check_name=DRILL_CHECK, passed=passed, description=description,
                    metadata=metadata,
                )
        for table in result.backup_set.tables:
            if dg.AssetCheckKey(keys.backup_key(table), RTO_CHECK) in selected:
                yield dg.AssetCheckResult(asset_key=keys.backup_key(table), check_name=RTO_CHECK, **rto_check_fields(result))
            if dg.AssetCheckKey(keys.backup_key(table), RECALL_CHECK) in selected:
                yield dg.AssetCheckResult(
                    asset_key=keys.backup_key(table), check_name=RECALL_CHECK, **recall_check_fields(result, table)
                )

    return restore_drill_check


def drill_op(keys: StoreKeys) -> dg.OpDefinition:
    job_name = keys.name(DRILL_JOB)

    @dg.op(name=keys.name("drill_restore_of_backup_set"), out=dg.Out(dg.Nothing))
    def drill_restore_of_backup_set(
        context: dg.OpExecutionContext, pgvector: PgVectorResource, backup_root: BackupRootResource
    ) -> dg.Output:
        """Restore the set into a scratch database, compare, drop the scratch data; fail if it differs."""
        result = drill(context, keys.store, pgvector, backup_root, chosen_set(context, job_name))
        report_drill(context, keys, result)
        if not result.passed:
            raise dg.Failure(
                description=f"restore drill of set {result.backup_set.key} failed: "
                + "; ".join(t.message for t in result.tables if not t.passed),
                metadata={"partition": result.backup_set.key},
            )
        return dg.Output(None, metadata=drill_metadata(result))

    return drill_restore_of_backup_set


def report_drill(context: dg.OpExecutionContext, keys: StoreKeys, result: DrillResult) -> None:
    """The drill's checks as evaluations on the set's partition, its restore time as an observation."""
    for table, passed, description, metadata in drill_check_results(result):
        context.log_event(dg.AssetCheckEvaluation(
            asset_key=keys.backup_key(table), check_name=DRILL_CHECK, passed=passed,
            description=description, metadata=metadata, partition=result.backup_set.key,
        ))
        context.log.info(description)
    for table in result.backup_set.tables:
        context.log_event(dg.AssetCheckEvaluation(
            asset_key=keys.backup_key(table), check_name=RTO_CHECK, partition=result.backup_set.key,
            **rto_check_fields(result),
        ))
        context.log_event(dg.AssetObservation(
            asset_key=keys.backup_key(table), partition=result.backup_set.key, metadata=rto_metadata(result)
        ))
        if table in keys.store.vector_tables:
            recall = recall_check_fields(result, table)
            context.log_event(dg.AssetCheckEvaluation(
                asset_key=keys.backup_key(table), check_name=RECALL_CHECK, partition=result.backup_set.key, **recall,
            ))
            (context.log.info if recall["passed"] else context.log.warning)(f"{table} search recall: {recall['description']}")
    for build in result.restore.index_builds:
        (context.log.warning if build.spilled else context.log.info)(build.message)
    (context.log.info if result.recovery_time.verdict == WITHIN else context.log.warning)(result.recovery_time.message)
    alert_failed_drill_checks(context, result, keys.store)


def drill_metadata(result: DrillResult) -> dict:
    schema = dg.TableSchema(columns=[
        dg.TableColumn("table", "string"), dg.TableColumn("rows_in_set", "int"), dg.TableColumn("rows_restored", "int"),
        dg.TableColumn("identical", "bool"),
    ])
    rows = [
        dg.TableRecord({"table": t.table, "rows_in_set": t.rows_in_set, "rows_restored": t.rows_restored, "identical": t.passed})
        for t in result.tables
    ]
    return {
        "partition": result.backup_set.key,
        "location": result.backup_set.location.label,
        "passed": result.passed,
        "tables": dg.MetadataValue.table(rows, schema=schema),
        "scratch_database": result.scratch_database,
        "scratch_dropped": result.scratch_dropped,
        "duration_seconds": dg.MetadataValue.float(round(result.duration_seconds, 3)),
        "rto": result.recovery_time.message,
        **rto_metadata(result),
        "search_recall": "; ".join(index.describe() for index in result.recall) or "no vector index to measure",
        "recall_seconds": dg.MetadataValue.float(round(result.recall_seconds, 3)),
        "index_builds": dg.MetadataValue.table(index_build_records(result.restore), schema=INDEX_BUILD_SCHEMA),
        "index_graph_fit_in_memory": not any(build.spilled for build in result.restore.index_builds),
    }


def drill_definitions(keys: StoreKeys) -> dg.Definitions:
    drill_restore_of_backup_set = drill_op(keys)
    cron = settings.DRILL_CRON

    @dg.job(
        name=keys.name(DRILL_JOB),
        partitions_def=keys.partitions,
        tags=READS_SETS,
        description="Restore drill: restore the chosen set into a scratch database, compare every row, drop the "
        "scratch database.",
    )
    def drill_vector_backup() -> None:
        drill_restore_of_backup_set()

    @dg.schedule(
        name=keys.name("vector_drill_schedule"),
        job=drill_vector_backup,
        cron_schedule=cron_from(cron, keys.store.environment()),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            f"Restore drill of the newest set in a scratch database, on {cron.name} "
            f"(default weekly, Sundays 04:00; {cron.deprecated_alias} still works, deprecated)."
        ),
    )
    def vector_drill_schedule(context: dg.ScheduleEvaluationContext):
        newest = newest_key(context.instance.get_dynamic_partitions(keys.partitions.name))
        if newest is None:
            return dg.SkipReason("no backup set is registered yet; nothing to drill")
        return dg.RunRequest(partition_key=newest, tags=set_tags(newest))

    return dg.Definitions(asset_checks=[drill_checks(keys)], jobs=[drill_vector_backup], schedules=[vector_drill_schedule])
