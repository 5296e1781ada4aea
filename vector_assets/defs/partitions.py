"""One partition per backup set; the key is the set's timestamp (``<ts>__<task_id>`` when the
same timestamp is in more than one location)."""

import dagster as dg

vector_backups_partitions = dg.DynamicPartitionsDefinition(name="vector_backups")


def chosen_set(context: dg.OpExecutionContext | dg.AssetCheckExecutionContext, job: str) -> str:
    """The run's partition key. A run without one (the Checks tab's "Execute all", a job
    launched without picking a set) stops here with one line that says what to do, before any
    check result is recorded."""
    op_context = getattr(context, "op_execution_context", context)
    if not op_context.has_partition_key:
        raise dg.Failure(
            description=f"no backup set chosen: launch {job} from its Launchpad and pick the set (its partition)",
            allow_retries=False,
        )
    return op_context.partition_key


def newest_key(keys: list[str]) -> str | None:
    """The newest set's key: keys start with the set's timestamp."""
    return max(keys, key=lambda key: (key.split("__")[0], key), default=None)
