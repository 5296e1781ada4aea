"""Freshness: each backup asset reads as stale when its newest set is older than
VECTOR_ASSETS_BACKUP_MAX_AGE (default 26 h).

These are Dagster freshness checks (named ``freshness_check`` and carrying the
``dagster/freshness_params`` metadata, as ``build_last_update_freshness_checks`` makes them),
but judged by the set's own timestamp, not by when Dagster recorded it: a week-old legacy set
the sensor finds today is a week old. They are recorded without a run: ``vector_bak_sensor``
records them when it registers or removes sets, and ``vector_freshness_sensor`` when the newest
set changes otherwise (a job registered it) or passes the age limit. Each records an evaluation
only when the answer differs from the one recorded last, so the Runs page holds what people did.
"""

import time
from collections.abc import Collection, Iterable, Mapping

import dagster as dg

from vector_assets import settings
from vector_assets.core.errors import ConfigError
from vector_assets.core.stores import Store
from vector_assets.core.sets.naming import timestamp_time
from vector_assets.core.units import human_duration
from vector_assets.defs.alerts import NO_SET, alert_failed_check, alert_failed_check_without_run
from vector_assets.defs.partitions import age_order, newest_key
from vector_assets.defs.store_keys import StoreKeys

FRESHNESS_CHECK = "freshness_check"
FRESHNESS_PARAMS = "dagster/freshness_params"
LAST_UPDATED = "dagster/last_updated_timestamp"
FRESH_UNTIL = "dagster/fresh_until_timestamp"
OVERDUE_SECONDS = "dagster/overdue_seconds"
LOWER_BOUND = "dagster/freshness_lower_bound_timestamp"
# How many of the newest registered sets the freshness asks storage about before it asks about all.
NEWEST_PARTITIONS_ASKED_FIRST = 100


def max_age_for_display(environment: Mapping[str, str]) -> float:
    """The limit shown on the check's definition; a malformed value fails the evaluation instead."""
    try:
        return settings.BACKUP_MAX_AGE.seconds(environment)
    except ConfigError:
        return settings.BACKUP_MAX_AGE.seconds({})  # its default


def set_time(key: str) -> float:
    """When a set was made: its key starts with its timestamp (local time, as the tooling wrote it)."""
    return timestamp_time(key.split("__")[0]).astimezone().timestamp()


def newest_sets(
    instance: dg.DagsterInstance, keys: StoreKeys, reported: Mapping[dg.AssetKey, Iterable[str]] | None = None,
    removed: Iterable[str] = (), registered: Collection[str] | None = None,
) -> dict[dg.AssetKey, str | None]:
    """Per backup asset, its newest registered set; ``reported`` and ``removed`` are what a
    sensor tick is about to add and delete, ``registered`` the partitions it has just read."""
    if registered is None:
        registered = instance.get_dynamic_partitions(keys.partitions.name)
    newest_first = sorted(set(registered) - set(removed), key=age_order, reverse=True)
    newest = {}
    for asset_key in keys.backup_keys:
        candidates = [*(reported or {}).get(asset_key, ()), newest_materialized(instance, asset_key, newest_first)]
        newest[asset_key] = newest_key([key for key in candidates if key is not None])
    return newest


def newest_materialized(instance: dg.DagsterInstance, asset_key: dg.AssetKey, newest_first: list[str]) -> str | None:
    """The newest of these partitions that the asset has a materialization of.

    Storage is asked about the newest few first, which nearly always hold it (whoever registers
    a set materializes it), and about every partition only when none of those has one.
    """
    newest = newest_first[:NEWEST_PARTITIONS_ASKED_FIRST]
    materialized = set(instance.event_log_storage.get_latest_storage_id_by_partition(
        asset_key, dg.DagsterEventType.ASSET_MATERIALIZATION, partitions=set(newest)
    ))
    if not materialized and len(newest_first) > len(newest):
        materialized = instance.get_materialized_partitions(asset_key)
    return next((key for key in newest_first if key in materialized), None)


def is_stale(key: str | None, max_age: float, now: float) -> bool:
    return key is None or set_time(key) + max_age <= now


def freshness_fields(key: str | None, max_age: float, now: float) -> dict:
    """What the check says of an asset whose newest set is ``key``: passed, description, metadata."""
    limit = f"{settings.BACKUP_MAX_AGE.name} = {human_duration(max_age)}"
    metadata: dict = {LOWER_BOUND: dg.MetadataValue.timestamp(now - max_age)}
    if key is None:
        return {"passed": False, "metadata": metadata, "description": f"stale: no backup set yet ({limit})"}
    made = set_time(key)
    metadata.update({LAST_UPDATED: dg.MetadataValue.timestamp(made), "newest_set": key})
    age = now - made
    if is_stale(key, max_age, now):
        metadata[OVERDUE_SECONDS] = dg.MetadataValue.float(round(age - max_age, 1))
        description = f"stale: the newest set {key} is {human_duration(age)} old, over {limit}"
    else:
        metadata[FRESH_UNTIL] = dg.MetadataValue.timestamp(made + max_age)
        description = f"fresh: the newest set {key} is {human_duration(age)} old, within {limit}"
    return {"passed": not is_stale(key, max_age, now), "metadata": metadata, "description": description}


def freshness_result(asset_key: dg.AssetKey, key: str | None, max_age: float, now: float) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(asset_key=asset_key, check_name=FRESHNESS_CHECK, **freshness_fields(key, max_age, now))


def recorded_answer(instance: dg.DagsterInstance, asset_key: dg.AssetKey) -> tuple[str | None, bool] | None:
    """The newest set and the verdict of the last recorded evaluation, or None when there is none."""
    check_key = dg.AssetCheckKey(asset_key, FRESHNESS_CHECK)
    # The newest records may be planned by a run in progress (Execute all on the Checks tab).
    records = instance.event_log_storage.get_asset_check_execution_history(check_key, limit=10)
    evaluation = next((r.evaluation for r in records if isinstance(r.evaluation, dg.AssetCheckEvaluation)), None)
    if evaluation is None:
        return None
    newest = evaluation.metadata.get("newest_set")
    return (newest.value if newest is not None else None), evaluation.passed


def freshness_evaluations(
    instance: dg.DagsterInstance, newest: Mapping[dg.AssetKey, str | None], max_age: float, now: float
) -> list[dg.AssetCheckEvaluation]:
    """An evaluation for each asset whose answer differs from the one recorded last."""
    evaluations = []
    for asset_key, key in newest.items():
        fields = freshness_fields(key, max_age, now)
        if recorded_answer(instance, asset_key) != (key, fields["passed"]):
            evaluations.append(dg.AssetCheckEvaluation(asset_key=asset_key, check_name=FRESHNESS_CHECK, **fields))
    return evaluations


def alert_stale(log, sensor: str, evaluations: list[dg.AssetCheckEvaluation], store: Store) -> None:
    for evaluation in evaluations:
        if not evaluation.passed:
            newest = evaluation.metadata.get("newest_set")
            alert_failed_check_without_run(
                log, sensor, newest.value if newest is not None else NO_SET, evaluation.asset_key,
                FRESHNESS_CHECK, evaluation.description or "stale", store,
            )


def freshness_checks(keys: StoreKeys) -> dg.AssetChecksDefinition:
    environment = keys.store.environment()

    @dg.multi_asset_check(
        specs=[
            dg.AssetCheckSpec(
                FRESHNESS_CHECK,
                asset=keys.backup_key(table),
                description=f"Stale when the newest set is older than {settings.BACKUP_MAX_AGE.name} (default 26h).",
                metadata={FRESHNESS_PARAMS: dg.MetadataValue.json(
                    {"lower_bound_delta_seconds": max_age_for_display(environment), "timezone": "UTC"}
                )},
            )
            for table in keys.store.table_names
        ],
        can_subset=True,
        name=keys.name("backup_freshness_checks"),
    )
    def backup_freshness_checks(context: dg.AssetCheckExecutionContext):
        try:
            max_age = settings.BACKUP_MAX_AGE.seconds(keys.store.environment())
        except ConfigError as error:
            raise dg.Failure(description=str(error), allow_retries=False) from None
        now = time.time()
        newest = newest_sets(context.instance, keys)
        for check_key in context.selected_asset_check_keys:
            key = newest[check_key.asset_key]
            result = freshness_result(check_key.asset_key, key, max_age, now)
            if not result.passed:
                alert_failed_check(context, key or NO_SET, f"{check_key.asset_key.to_user_string()} {FRESHNESS_CHECK}",
                                   result.description or "stale", keys.store)
            yield result

    return backup_freshness_checks


FRESHNESS_SENSOR = "vector_freshness_sensor"


def freshness_sensor(keys: StoreKeys, checks: dg.AssetChecksDefinition) -> dg.SensorDefinition:
    environment = keys.store.environment()
    sensor_name = keys.name(FRESHNESS_SENSOR)

    @dg.sensor(
        name=sensor_name,
        asset_selection=dg.AssetSelection.checks(checks) | dg.AssetSelection.assets(*keys.backup_keys),
        minimum_interval_seconds=settings.sensor_interval_seconds(settings.FRESHNESS_INTERVAL, environment),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Records the backups' freshness checks, without a run, when the newest set changes or grows older "
        f"than {settings.BACKUP_MAX_AGE.name}.",
    )
    def vector_freshness_sensor(context: dg.SensorEvaluationContext):
        try:
            max_age = settings.BACKUP_MAX_AGE.seconds(keys.store.environment())
        except ConfigError as error:
            return dg.SkipReason(str(error))
        if context.instance.get_latest_materialization_event(keys.inventory_key) is None:
            # Before vector_bak_sensor has looked at the root, "no backup set yet" would be false.
            return dg.SkipReason("waiting for vector_bak_sensor to register the sets under the root")
        evaluations = freshness_evaluations(context.instance, newest_sets(context.instance, keys), max_age, time.time())
        if not evaluations:
            return dg.SkipReason("no backup asset's newest set or freshness changed")
        alert_stale(context.log, sensor_name, evaluations, keys.store)
        return dg.SensorResult(
            asset_events=evaluations,
            skip_reason="recorded without a run: " + "; ".join(
                f"{e.asset_key.to_user_string()} {e.description}" for e in evaluations
            ),
        )

    return vector_freshness_sensor


def freshness_definitions(keys: StoreKeys) -> dg.Definitions:
    checks = freshness_checks(keys)
    return dg.Definitions(asset_checks=[checks], sensors=[freshness_sensor(keys, checks)])
