"""Discovery: ``vector_bak_sensor`` turns backup sets on disk into partitions, materializations
and check results, and reports ``vector_backup_inventory``.

Sets written by other tools (the earlier ``psql \\copy`` scripts, the CLI, a crashed truncate)
land under the root without Dagster knowing. Each tick registers the new ones, reports their
metadata, records their file checks and the backups' freshness, and removes the partitions of
sets deleted from disk. Only a set too large to read within a tick gets a run: one
``check_vector_backup`` run, so the Runs page holds what people did.
"""

import time
from collections import Counter
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.event_api import PartitionKeyFilter  # the storage API takes it; dagster exports it nowhere public

from vector_assets import settings
from vector_assets.core.errors import ConfigError, ManifestError, ObjectStoreError, VectorAssetsError
from vector_assets.core.sets.catalog import BackupSet, read_set
from vector_assets.core.ops.verify import FileReads
from vector_assets.core.sets.csv_files import LegacyFileStats
from vector_assets.core.sets.discovery import (
    Discovery,
    DiscoveryCursor,
    FoundSet,
    discover,
)
from vector_assets.core.sets.inventory_state import (
    NEWEST_SETS_SHOWN,
    InventorySummary,
    InventoryUpdateRequest,
    update_inventory,
)
from vector_assets.core.sets.legacy_rows import remember_rows
from vector_assets.core.sets.manifest import ManifestReads
from vector_assets.core.sets.naming import set_file_names
from vector_assets.core.sets.storage import Root
from vector_assets.core.units import BYTES_PER_MB, count_of, human_size
from vector_assets.defs import freshness
from vector_assets.defs.alerts import alert_failed_check_without_run
from vector_assets.defs.backup import set_materializations
from vector_assets.defs.checks import data_quality_evaluations, file_check_evaluations
from vector_assets.defs.resources import BackupRootResource
from vector_assets.defs.run_facts import set_tags
from vector_assets.defs.store_keys import BACKUP_GROUP, StoreKeys

# Dagster stops a sensor evaluation after 60 s; reading large legacy CSVs stops well before that
# and the rest is reported on the next tick.
WORK_BUDGET_SECONDS = 30.0
# The first tick over a root with hundreds of old sets should not queue hundreds of runs at once.
MAX_CHECK_RUNS_PER_TICK = 10
# A set up to this size is verified by the sensor itself (its file checks read each file once, at
# about 200 MB/s on disk); a larger one gets one check_vector_backup run.
SENSOR_VERIFY_MAX_BYTES = 128 * BYTES_PER_MB
SENSOR_NAME = "vector_bak_sensor"

def inventory_spec(keys: StoreKeys) -> dg.AssetSpec:
    return dg.AssetSpec(
        keys.inventory_key,
        deps=keys.backup_keys,
        group_name=keys.group(BACKUP_GROUP),
        description=f"The backup sets under the root: totals over every set, and a table of the newest "
        f"{NEWEST_SETS_SHOWN} over all locations (`vector-assets list` prints every set). "
        "Reported by vector_bak_sensor whenever the sets on disk change.",
        kinds={"csv"},
    )

# What matters first: the UI cuts a wide table off at its right edge.
INVENTORY_COLUMNS = [
    ("key", "string"), ("kind", "string"), ("collection_rows", "int"), ("embedding_rows", "int"), ("total_size", "string"),
    ("location", "string"), ("backup_date", "string"), ("parent", "string"), ("legacy", "bool"), ("copies", "string"),
    ("has_log", "bool"), ("total_bytes", "int"), ("timestamp", "string"),
]


def inventory_materialization(keys: StoreKeys, inventory: InventorySummary) -> dg.AssetMaterialization:
    records = [dg.TableRecord({name: record[name] for name, _ in INVENTORY_COLUMNS}) for record in inventory.newest]
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in INVENTORY_COLUMNS])
    shown = f"the newest {len(records)} of {count_of(inventory.total_backup_sets, 'set')}"
    return dg.AssetMaterialization(
        asset_key=keys.inventory_key,
        description=f"{inventory.response}; the table shows {shown}",
        metadata={
            "backup_sets": dg.MetadataValue.table(records, schema=schema),
            "total_backup_sets": dg.MetadataValue.int(inventory.total_backup_sets),
            "global_backups": dg.MetadataValue.int(inventory.global_backups),
            "task_backups": dg.MetadataValue.int(inventory.task_backups),
            "total_locations": dg.MetadataValue.int(inventory.total_locations),
            "total_size": human_size(inventory.total_bytes),
            "total_bytes": dg.MetadataValue.int(inventory.total_bytes),
            "sets_shown": shown,
            "root": inventory.root,
            "warnings": dg.MetadataValue.json(list(inventory.warnings)),
        },
    )


def discovery_sensor(keys: StoreKeys, check_job: dg.JobDefinition) -> dg.SensorDefinition:
    store = keys.store

    @dg.sensor(
        name=keys.name(SENSOR_NAME),
        jobs=[check_job],
        minimum_interval_seconds=settings.sensor_interval_seconds(environ=store.environment()),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Registers backup sets found under VECTOR_ASSETS_ROOT (global, task_*, manual_*) as partitions, "
        "and records their file checks (a large set gets one check_vector_backup run) and the backups' freshness.",
    )
    def vector_bak_sensor(context: dg.SensorEvaluationContext, backup_root: BackupRootResource) -> dg.SensorResult:
        return discover_and_report(context, keys, check_job.name, backup_root)

    return vector_bak_sensor


def discover_and_report(
    context: dg.SensorEvaluationContext, keys: StoreKeys, check_job: str, backup_root: BackupRootResource
) -> dg.SensorResult:
    """One tick: register new sets, remove the partitions of deleted ones, record checks and freshness."""
    store = keys.store
    root = backup_root.open(store)
    if not root.exists():
        # An unmounted root must not look like "every set was deleted".
        return dg.SensorResult(skip_reason=f"backup root {root} does not exist; nothing registered or removed")
    cursor = DiscoveryCursor.from_json(context.cursor)
    manifests = ManifestReads()  # a new set's manifest is read once: by discovery, for its report and the inventory
    try:
        discovery = discover(root, cursor, manifests)
    except ObjectStoreError as error:  # an unreachable store must not look like "every set was deleted"
        return dg.SensorResult(skip_reason=f"{error}; nothing registered or removed")
    registered = set(context.instance.get_dynamic_partitions(keys.partitions.name))
    on_disk = {found.key for found in discovery.sets}
    log_duplicates(context, discovery, cursor)
    for skipped in discovery.skipped:
        context.log.warning(f"{skipped.label} is not read: {skipped.reason}")
    reports = report_unreported(context, keys, root, discovery, cursor, registered, manifests)
    fresh = {id(evaluation) for evaluation in not_yet_recorded(context.instance, [c for r in reports for c in r.checks])}
    for report in reports:
        report.checks = [evaluation for evaluation in report.checks if id(evaluation) in fresh]
    removed = sorted(registered - on_disk)
    added = sorted({report.found.key for report in reports} - registered)
    if removed:
        context.log.info(f"sets deleted from disk, removing partitions: {', '.join(removed)}")
    next_cursor = DiscoveryCursor(discovery.folders, next_reported(cursor, discovery, reports))
    # Oldest set first: the newest set's materializations and checks are then the latest ones,
    # which the asset's node and its Checks tab show.
    events: list = [event for report in reversed(reports) for event in report.materializations + report.checks]
    alert_failed_file_checks(context, keys, reports)
    if reports or removed or context.cursor is None:
        events += freshness_events(context, keys, reports, removed, registered)
    if context.cursor is None or next_cursor.reported != cursor.reported or removed:
        inventory = update_inventory(InventoryUpdateRequest(
            root=root, locations=discovery.fingerprints(),
            list_again=frozenset(report.found.location.label for report in reports), skipped=tuple(discovery.skipped),
            configured_root=backup_root.configured(store), offsite_root=backup_root.open_offsite(store),
            manifests=manifests,
        ))
        events.append(inventory_materialization(keys, inventory))
    run_requests = check_run_requests(reports, check_job)
    return dg.SensorResult(
        dynamic_partitions_requests=partition_requests(keys, added, removed),
        asset_events=events,
        run_requests=run_requests,
        cursor=next_cursor.to_json(),
        skip_reason=None if run_requests else tick_summary(reports, removed),
    )


def tick_summary(reports: list["SetReport"], removed: list[str]) -> str | None:
    """What a tick that needs no run did, for the sensor's tick history."""
    done = []
    if reports:
        done.append(f"recorded {count_of(len(reports), 'set')} and {'its' if len(reports) == 1 else 'their'} "
                     "file checks without a run")
    if removed:
        done.append(f"removed {count_of(len(removed), 'partition')} of sets deleted from disk")
    return "; ".join(done) or None


def freshness_events(
    context: dg.SensorEvaluationContext, keys: StoreKeys, reports: list["SetReport"], removed: list[str],
    registered: set[str],
) -> list[dg.AssetCheckEvaluation]:
    """The backups' freshness as this tick leaves it, where it changed; a malformed limit is
    left to vector_freshness_sensor, which says so."""
    try:
        max_age = settings.BACKUP_MAX_AGE.seconds(keys.store.environment())
    except ConfigError:
        return []
    reported: dict[dg.AssetKey, set[str]] = {}
    for report in reports:
        for event in report.materializations:
            reported.setdefault(event.asset_key, set()).add(event.partition)
    newest = freshness.newest_sets(context.instance, keys, reported, removed, registered)
    evaluations = freshness.freshness_evaluations(context.instance, newest, max_age, time.time())
    freshness.alert_stale(context.log, keys.name(SENSOR_NAME), evaluations, keys.store)
    return evaluations


def alert_failed_file_checks(context: dg.SensorEvaluationContext, keys: StoreKeys, reports: list["SetReport"]) -> None:
    for report in reports:
        for evaluation in report.checks:
            if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
                alert_failed_check_without_run(
                    context.log, keys.name(SENSOR_NAME), report.found.key, evaluation.asset_key, evaluation.check_name,
                    evaluation.description or "failed", keys.store,
                )


@dataclass
class SetReport:
    """One newly seen set: its materializations (none for a set our own job reported), and
    its appearance, which identifies it on disk now (a set deleted and written again gets a new one)."""

    found: FoundSet
    materializations: list[dg.AssetMaterialization]
    appearance: str
    checks: list[dg.AssetCheckEvaluation] = field(default_factory=list)  # the file checks the sensor ran itself
    needs_check_run: bool = False  # too large to read in a tick, or unreadable: one check_vector_backup run


def not_yet_recorded(
    instance: dg.DagsterInstance, evaluations: list[dg.AssetCheckEvaluation]
) -> list[dg.AssetCheckEvaluation]:
    """The evaluations whose check has no result recorded without a run for that partition yet.

    Dagster stores one such result per check and partition and refuses a second, which would
    fail the tick, and every tick after it. A set is reported again when the cursor is lost or
    reset, or when its key gains its kind; its checks then stay as they were recorded.
    """
    storage = instance.event_log_storage
    check_keys = {dg.AssetCheckKey(evaluation.asset_key, evaluation.check_name) for evaluation in evaluations}
    if not check_keys:
        return []
    # One query for which of these partitions have any record (not every partition's: a tick
    # grows with the sets it reports); the history only of those (rare: a reset).
    partitions = sorted({evaluation.partition for evaluation in evaluations if evaluation.partition is not None})
    infos = storage.get_asset_check_partition_info(list(check_keys), partition_keys=partitions)
    with_records = {(info.check_key, info.partition_key) for info in infos}
    fresh = []
    for evaluation in evaluations:
        check_key = dg.AssetCheckKey(evaluation.asset_key, evaluation.check_name)
        if (check_key, evaluation.partition) in with_records:
            history = storage.get_asset_check_execution_history(
                check_key, limit=100, partition_filter=PartitionKeyFilter(key=evaluation.partition)
            )
            if any(record.run_id == "" for record in history):
                continue
        fresh.append(evaluation)
    return fresh


def appearance_of(found: FoundSet, root: Root) -> str:
    listing = found.location.folder(root).entries()
    stamps = [listing[name].modified_ns for name in sorted(set_file_names(found.timestamp)) if name in listing]
    return f"{found.identity}:{found.key}:{min(stamps, default=0)}"


def read_report(
    keys: StoreKeys, root: Root, found: FoundSet, is_new_partition: bool, manifests: ManifestReads
) -> SetReport:
    backup_set = read_set(root, found.key, found.location, found.timestamp, manifests)
    reads = FileReads()  # each file read once: a legacy set's metadata and the file checks share the pass
    materializations = []
    if is_new_partition:  # else our own job registered and materialized it; only its checks are due
        legacy = read_legacy_stats(root, backup_set, reads) if backup_set.is_legacy else {}
        materializations = set_materializations(keys, backup_set, legacy)
    report = SetReport(found, materializations, appearance_of(found, root))
    if is_new_partition:  # whoever materializes a set records the counts it was written with
        report.checks = data_quality_evaluations(keys, backup_set)
    if backup_set.total_bytes() > SENSOR_VERIFY_MAX_BYTES:
        report.needs_check_run = True
    else:
        report.checks += [evaluation for _, evaluation in file_check_evaluations(keys, backup_set, reads=reads)]
    return report


def unreadable_report(keys: StoreKeys, root: Root, found: FoundSet, error: Exception) -> SetReport:
    """A set that could not be read still gets its partition, with what is wrong as metadata."""
    metadata = {
        "readable": False, "error": f"{type(error).__name__}: {error}", "location": found.location.label,
        "timestamp": found.timestamp,
    }
    events = [
        dg.AssetMaterialization(asset_key=keys.backup_key(table), partition=found.key, metadata=metadata)
        for table in keys.store.table_names
    ]
    try:
        appearance = appearance_of(found, root)
    except (OSError, VectorAssetsError):
        appearance = f"{found.identity}:{found.key}:unreadable"
    return SetReport(found, events, appearance, needs_check_run=True)


def report_unreported(
    context: dg.SensorEvaluationContext, keys: StoreKeys, root: Root, discovery: Discovery, cursor: DiscoveryCursor,
    registered: set[str], manifests: ManifestReads,
) -> list[SetReport]:
    started = time.monotonic()
    reports = []
    pending = discovery.unreported(cursor)
    for found in pending:
        if time.monotonic() - started > WORK_BUDGET_SECONDS:
            context.log.info(f"{count_of(len(pending) - len(reports), 'set')} left for the next tick (time budget)")
            break
        # A key that moved to this set from another (a duplicate timestamp appeared earlier in
        # scan order) needs this set's metadata even though the partition exists.
        needs_report = found.key not in registered or found.key in cursor.reported.values()
        try:
            reports.append(read_report(keys, root, found, needs_report, manifests))
        except ManifestError as error:
            context.log.warning(f"skipping set {found.identity}: {error}")
        except Exception as error:  # one unreadable set must not stop every other set, forever
            context.log.warning(f"set {found.identity} is unreadable; registered with the error as metadata: {error}")
            reports.append(unreadable_report(keys, root, found, error))
    return reports


def read_legacy_stats(root: Root, backup_set: BackupSet, reads: FileReads) -> dict[str, LegacyFileStats]:
    """Count a legacy set's rows once, and remember them for the inventory and the CLI's list."""
    stats = {}
    for table in backup_set.tables:
        read = reads.data_file(backup_set.folder, backup_set.file_name(table))
        stats[table] = LegacyFileStats(rows=read.rows(), sha256=read.sha256)
    remember_rows(root, backup_set, {table: stat.rows for table, stat in stats.items()})
    return stats


def log_duplicates(context: dg.SensorEvaluationContext, discovery: Discovery, cursor: DiscoveryCursor) -> None:
    """Says once, when such a set is first reported, that its timestamp is in another location
    too (a key that carries its set's kind is no duplicate)."""
    locations_of = Counter(found.timestamp for found in discovery.sets)
    for found in discovery.unreported(cursor):
        if locations_of[found.timestamp] > 1 and found.key.endswith(f"__{found.location.task_id or 'global'}"):
            context.log.info(
                f"timestamp {found.timestamp} exists in more than one location; the set in "
                f"{found.location.label} is registered as {found.key}"
            )


def next_reported(cursor: DiscoveryCursor, discovery: Discovery, reports: list[SetReport]) -> dict[str, str]:
    present = {found.identity for found in discovery.sets}
    reported = {identity: key for identity, key in cursor.reported.items() if identity in present}
    reported.update({report.found.identity: report.found.key for report in reports})
    return reported


def partition_requests(keys: StoreKeys, added: list[str], removed: list[str]) -> list:
    requests = []
    if added:
        requests.append(keys.partitions.build_add_request(added))
    if removed:
        requests.append(keys.partitions.build_delete_request(removed))
    return requests


def check_run_requests(reports: list[SetReport], check_job: str) -> list[dg.RunRequest]:
    """Check runs for the newest sets the sensor could not check itself; a run key per set
    appearance, never the bare partition key."""
    return [
        dg.RunRequest(
            run_key=f"checks:{report.appearance}",
            job_name=check_job,
            partition_key=report.found.key,
            tags=set_tags(report.found.key),
        )
        for report in [report for report in reports if report.needs_check_run][:MAX_CHECK_RUNS_PER_TICK]
    ]


def discovery_definitions(keys: StoreKeys, check_job: dg.JobDefinition) -> dg.Definitions:
    return dg.Definitions(assets=[inventory_spec(keys)], sensors=[discovery_sensor(keys, check_job)])
