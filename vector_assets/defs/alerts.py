"""Alerts: a failed run of one of our jobs, or a failed check, posts ``{"text": ...}`` to its
store's webhook (VECTOR_ASSETS_ALERT_WEBHOOK, or the variable its alert_webhook_env names) with
the job, the set, the error in one line and a link to the run.

The webhook URL is a secret: it is read from the environment where it is used, never put in
config, metadata or a log line. An unreachable webhook is a warning; it never fails a run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import dagster as dg

from vector_assets import settings
from vector_assets.core.stores import Store
from vector_assets.core.webhook import post_text
from vector_assets.defs.run_facts import SET_TAG

PARTITION_TAG = "dagster/partition"
EXCEPTION_PREFIX = re.compile(r"^[\w.]+(Error|Exception|Failure): ")  # 'dagster...Failure: ' before the message
NO_SET = "none"


def run_link(run_id: str) -> str:
    return f"{settings.UI_URL.get().rstrip('/')}/runs/{run_id}"


def one_line(text: str) -> str:
    return " ".join(text.split())


def set_of(tags: dict[str, str]) -> str:
    return tags.get(SET_TAG) or tags.get(PARTITION_TAG) or NO_SET


def send_alert(log, text: str, store: Store | None = None) -> bool:
    """Post when the store (without one, the environment) has a webhook; True when delivered."""
    url = settings.alert_webhook(store.environment() if store is not None else None)
    if not url:
        return False
    problem = post_text(url, text)
    if problem is not None:
        log.warning(f"alert not delivered ({problem}); the run goes on")
        return False
    return True


def failed_run_text(job: str, key: str, error: str, run_id: str) -> str:
    return f"{job} failed (set {key}): {one_line(error)}\n{run_link(run_id)}"


def failed_check_text(job: str, key: str, check: str, error: str, run_id: str) -> str:
    return f"check {check} failed in {job} (set {key}): {one_line(error)}\n{run_link(run_id)}"


def alert_failed_check(
    context: dg.OpExecutionContext | dg.AssetCheckExecutionContext, key: str, check: str, error: str, store: Store
) -> None:
    op_context = getattr(context, "op_execution_context", context)
    send_alert(op_context.log, failed_check_text(op_context.job_name, key, check, error, op_context.run_id), store)


def asset_checks_link(asset_key: dg.AssetKey) -> str:
    return f"{settings.UI_URL.get().rstrip('/')}/assets/{'/'.join(asset_key.path)}?view=checks"


def alert_failed_check_without_run(
    log, sensor: str, key: str, asset_key: dg.AssetKey, check: str, error: str, store: Store
) -> None:
    """A check a sensor recorded itself failed: there is no run to link to, so the link is the asset's checks."""
    text = f"check {asset_key.to_user_string()} {check} failed in {sensor} (set {key}): {one_line(error)}"
    send_alert(log, f"{text}\n{asset_checks_link(asset_key)}", store)


def first_error(context: dg.RunFailureSensorContext) -> str:
    """The first failed step's own message (our Failure's description, even after its retries
    ran out), else the run's."""
    for event in context.get_step_failure_events():
        data = event.event_specific_data
        if data is not None and data.user_failure_data is not None and data.user_failure_data.description:
            return data.user_failure_data.description
        error = data.error if data is not None else None
        if error is not None and error.message:
            return EXCEPTION_PREFIX.sub("", error.message.strip().splitlines()[0])
    return context.failure_event.message or "the run failed"


def alert_sensor(stores_by_job: Mapping[str, Store]) -> dg.SensorDefinition:
    """One sensor for the code location; a failed run posts to the webhook of its job's store."""

    # With no monitored_jobs the sensor watches every job of this code location: all of them are ours.
    @dg.run_failure_sensor(
        name="vector_alert_sensor",
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Posts each failed run of our jobs to its store's webhook: VECTOR_ASSETS_ALERT_WEBHOOK, "
        "or the variable the store's alert_webhook_env names (off when it is empty).",
    )
    def vector_alert_sensor(context: dg.RunFailureSensorContext) -> None:
        run = context.dagster_run
        text = failed_run_text(run.job_name, set_of(dict(run.tags)), first_error(context), run.run_id)
        send_alert(context.log, text, stores_by_job.get(run.job_name))

    return vector_alert_sensor
