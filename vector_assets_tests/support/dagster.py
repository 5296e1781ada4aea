"""The code location as tests load it, and the ways tests run its jobs and read what they report."""

from __future__ import annotations

from functools import cache

import dagster as dg

from vector_assets import settings
from vector_assets.definitions import defs as load_definitions
from vector_assets.defs.store_keys import StoreKeys

PARTITIONS = "vector_backups"
SENSOR = "vector_bak_sensor"
DEFAULT_KEYS = StoreKeys(settings.default_store())
backup_asset_key = DEFAULT_KEYS.backup_key
INVENTORY_KEY = DEFAULT_KEYS.inventory_key


@cache
def definitions() -> dg.Definitions:
    """The Definitions that workspace.yaml and dg load, built once per test session."""
    return load_definitions()


def asset_checks(name: str) -> dg.AssetChecksDefinition:
    """The checks definition of that name (its op's), as the code location holds it."""
    return next(checks for checks in definitions().asset_checks if checks.node_def.name == name)


def run_job(instance: dg.DagsterInstance, job: str, op: str | None = None, config: dict | None = None,
            raise_on_error: bool = False, **kwargs) -> dg.ExecuteInProcessResult:
    """Execute a job in process on the instance; ``config`` is the op's config."""
    run_config = {"ops": {op: {"config": config}}} if op and config is not None else {}
    return definitions().resolve_job_def(job).execute_in_process(
        run_config=run_config, instance=instance, raise_on_error=raise_on_error, **kwargs
    )


def output_metadata(result: dg.ExecuteInProcessResult, op: str) -> dict:
    """The metadata of the op's output, as the run's page shows it."""
    events = [e for e in result.events_for_node(op) if e.event_type_value == "STEP_OUTPUT"]
    return events[-1].event_specific_data.metadata


class Ticker:
    """Evaluates the sensor and applies its result to the instance, as the daemon would."""

    def __init__(self, instance: dg.DagsterInstance):
        self.instance = instance
        self.cursor: str | None = None

    def tick(self, store_events: bool = True):
        """One evaluation as the daemon makes it: ``evaluate_tick`` also resolves the run requests
        against their job, which calling the sensor function directly would not. Without
        ``store_events`` only its partitions are applied (thousands of sets' events take the
        sqlite test instance minutes to store; what a later tick opens does not depend on them)."""
        context = dg.build_sensor_context(
            instance=self.instance, instance_ref=self.instance.get_ref(), cursor=self.cursor, definitions=definitions(),
            resources=definitions().resources,
        )
        result = definitions().resolve_sensor_def(SENSOR).evaluate_tick(context)
        self.apply(result, store_events)
        if result.cursor is not None:  # the daemon keeps the last cursor when a tick sets none
            self.cursor = result.cursor
        return result

    def apply(self, result, store_events: bool = True) -> None:
        for event in result.asset_events if store_events else []:
            self.instance.report_runless_asset_event(event)
        for request in result.dynamic_partitions_requests:
            if isinstance(request, dg.AddDynamicPartitionsRequest):
                self.instance.add_dynamic_partitions(PARTITIONS, list(request.partition_keys))
            else:
                for key in request.partition_keys:
                    self.instance.delete_dynamic_partition(PARTITIONS, key)

    @property
    def partitions(self) -> list[str]:
        return sorted(self.instance.get_dynamic_partitions(PARTITIONS))


def added_keys(result) -> list[str]:
    return sorted(
        key for request in result.dynamic_partitions_requests
        if isinstance(request, dg.AddDynamicPartitionsRequest) for key in request.partition_keys
    )


def deleted_keys(result) -> list[str]:
    return sorted(
        key for request in result.dynamic_partitions_requests
        if isinstance(request, dg.DeleteDynamicPartitionsRequest) for key in request.partition_keys
    )


def partition_metadata(instance: dg.DagsterInstance, table: str, key: str) -> dict:
    event = instance.get_latest_materialization_event(backup_asset_key(table))
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=backup_asset_key(table), asset_partitions=[key]), limit=1
    ).records
    assert event is not None and records, f"no materialization of {table} for {key}"
    return {name: value.value for name, value in records[0].asset_materialization.metadata.items()}
