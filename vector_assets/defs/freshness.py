"""Freshness: each backup asset reads as stale when its newest set is older than
VECTOR_ASSETS_BACKUP_MAX_AGE (default 26 h).

These are Dagster freshness checks (named ``freshness_check`` and carrying the
``dagster/freshness_params`` metadata, as ``build_last_update_freshness_checks`` makes them),
but judged by the set's own timestamp, not by when Dagster recorded it: a week-old legacy set
the sensor finds today is a week old. ``vector_freshness_sensor`` evaluates them when an asset's
newest set changes and again when that set passes the age limit, so a run is made only when
the answer can change.
"""

import json
import time

import dagster as dg

from vector_assets import settings
from vector_assets.core.errors import ConfigError
from vector_assets.core.sets.naming import timestamp_time
from vector_assets.core.tables import MANAGED_TABLES
from vector_assets.core.units import human_duration
from vector_assets.defs.alerts import alert_failed_check
from vector_assets.defs.backup import backup_asset_key
from vector_assets.defs.partitions import newest_key

FRESHNESS_CHECK = "freshness_check"
BACKUP_KEYS = [backup_asset_key(table) for table in MANAGED_TABLES]
FRESHNESS_PARAMS = "dagster/freshness_params"
LAST_UPDATED = "dagster/last_updated_timestamp"
FRESH_UNTIL = "dagster/fresh_until_timestamp"
OVERDUE_SECONDS = "dagster/overdue_seconds"
LOWER_BOUND = "dagster/freshness_lower_bound_timestamp"


def max_age_for_display() -> float:
    """The limit shown on the check's definition; a malformed value fails the evaluation instead."""
    try:
        return settings.BACKUP_MAX_AGE.seconds()
    except ConfigError:
        return settings.parse_duration(settings.BACKUP_MAX_AGE.default, settings.BACKUP_MAX_AGE.name)


def set_time(key: str) -> float:
    """When a set was made: its key starts with its timestamp (local time, as the tooling wrote it)."""
    return timestamp_time(key.split("__")[0]).astimezone().timestamp()


def newest_set(instance: dg.DagsterInstance, asset_key: dg.AssetKey) -> str | None:
    return newest_key(list(instance.get_materialized_partitions(asset_key)))


def is_stale(key: str | None, max_age: float, now: float) -> bool:
    return key is None or set_time(key) + max_age <= now


def freshness_result(asset_key: dg.AssetKey, key: str | None, max_age: float, now: float) -> dg.AssetCheckResult:
    limit = f"{settings.BACKUP_MAX_AGE.name} = {human_duration(max_age)}"
    metadata: dict = {LOWER_BOUND: dg.MetadataValue.timestamp(now - max_age)}
    if key is None:
        return dg.AssetCheckResult(
            asset_key=asset_key, check_name=FRESHNESS_CHECK, passed=False, metadata=metadata,
            description=f"stale: no backup set yet ({limit})",
        )
    made = set_time(key)
    metadata.update({LAST_UPDATED: dg.MetadataValue.timestamp(made), "newest_set": key})
    age = now - made
    if is_stale(key, max_age, now):
        metadata[OVERDUE_SECONDS] = dg.MetadataValue.float(round(age - max_age, 1))
        description = f"stale: the newest set {key} is {human_duration(age)} old, over {limit}"
    else:
        metadata[FRESH_UNTIL] = dg.MetadataValue.timestamp(made + max_age)
        description = f"fresh: the newest set {key} is {human_duration(age)} old, within {limit}"
    return dg.AssetCheckResult(
        asset_key=asset_key, check_name=FRESHNESS_CHECK, passed=not is_stale(key, max_age, now),
        metadata=metadata, description=description,
    )


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            FRESHNESS_CHECK,
            asset=backup_asset_key(table),
            description=f"Stale when the newest set is older than {settings.BACKUP_MAX_AGE.name} (default 26h).",
            metadata={FRESHNESS_PARAMS: dg.MetadataValue.json(
                {"lower_bound_delta_seconds": max_age_for_display(), "timezone": "UTC"}
            )},
        )
        for table in MANAGED_TABLES
    ],
    can_subset=True,
    name="backup_freshness_checks",
)
def backup_freshness_checks(context: dg.AssetCheckExecutionContext):
    try:
        max_age = settings.BACKUP_MAX_AGE.seconds()
    except ConfigError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None
    now = time.time()
    for check_key in context.selected_asset_check_keys:
        key = newest_set(context.instance, check_key.asset_key)
        result = freshness_result(check_key.asset_key, key, max_age, now)
        if not result.passed:
            alert_failed_check(context, key or "none", f"{check_key.asset_key.to_user_string()} {FRESHNESS_CHECK}",
                               result.description or "stale")
        yield result


def freshness_states(instance: dg.DagsterInstance, max_age: float, now: float) -> dict[str, str]:
    """Per asset, what decides its freshness: its newest set and whether that is stale now."""
    states = {}
    for table in MANAGED_TABLES:
        key = newest_set(instance, backup_asset_key(table))
        states[table] = f"{key}|{'stale' if is_stale(key, max_age, now) else 'fresh'}"
    return states


@dg.sensor(
    name="vector_freshness_sensor",
    asset_selection=dg.AssetSelection.checks(backup_freshness_checks) | dg.AssetSelection.assets(*BACKUP_KEYS),
    minimum_interval_seconds=settings.sensor_interval_seconds(settings.FRESHNESS_INTERVAL),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Evaluates the backups' freshness checks when the newest set changes or grows older than "
    f"{settings.BACKUP_MAX_AGE.name}.",
)
def vector_freshness_sensor(context: dg.SensorEvaluationContext):
    try:
        max_age = settings.BACKUP_MAX_AGE.seconds()
    except ConfigError as error:
        return dg.SkipReason(str(error))
    states = freshness_states(context.instance, max_age, time.time())
    known = json.loads(context.cursor) if context.cursor else {}
    changed = [table for table, state in states.items() if known.get(table) != state]
    context.update_cursor(json.dumps(states))
    if not changed:
        return dg.SkipReason("no backup asset's newest set or freshness changed")
    return dg.RunRequest(  # the checks only: the backup assets are listed so the UI shows this sensor on them
        asset_selection=[],
        asset_check_keys=[dg.AssetCheckKey(backup_asset_key(table), FRESHNESS_CHECK) for table in changed],
    )


