"""The code location as tests load it, and the ways tests run its jobs and read what they report."""

from __future__ import annotations

from functools import cache

import dagster as dg

from vector_assets.definitions import defs as load_definitions


@cache
def definitions() -> dg.Definitions:
    """The Definitions that workspace.yaml and dg load, built once per test session."""
    return load_definitions()


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
