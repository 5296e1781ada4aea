"""What every run says about itself: progress lines in its log, and the tags that let the
runs list be filtered by the set a run made or used (and, for restores, the target)."""

from __future__ import annotations

import dagster as dg

from vector_assets import settings
from vector_assets.core.progress import ProgressReporter

SET_TAG = "vector_assets/set"
TARGET_TAG = "vector_assets/target"
# Declared on every job that reads sets, so prune spares the sets an unfinished run may read.
READS_SETS_TAG = "vector_assets/reads_sets"
READS_SETS = {READS_SETS_TAG: "true"}
SAFETY_SET_TAG = "vector_assets/safety_set"  # the pre_restore set a restore made, beside the set it used


def log_progress(context: dg.OpExecutionContext | dg.AssetCheckExecutionContext) -> ProgressReporter:
    """Progress lines into the run's log, every VECTOR_ASSETS_PROGRESS_INTERVAL seconds."""
    log = context.log
    return ProgressReporter(lambda event: log.info(event.describe()), settings.PROGRESS_INTERVAL.seconds())


def tag_run(context: dg.OpExecutionContext | dg.AssetCheckExecutionContext, key: str, target: str | None = None) -> None:
    """Tag the run with its set (known only once a backup has picked its timestamp)."""
    tags = {SET_TAG: key}
    if target is not None:
        tags[TARGET_TAG] = target
    op_context = getattr(context, "op_execution_context", context)
    op_context.instance.add_run_tags(op_context.run_id, tags)


def tag_safety_set(context: dg.OpExecutionContext, key: str) -> None:
    context.instance.add_run_tags(context.run_id, {SAFETY_SET_TAG: key})


def set_tags(key: str) -> dict[str, str]:
    """The tags for a run launched by a schedule or sensor, which knows its set at launch."""
    return {SET_TAG: key}
