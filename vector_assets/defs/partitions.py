"""One partition per backup set; the key is the set's timestamp (``<ts>__<task_id>`` when the
same timestamp is in more than one location). Each store has its own partitions
(``StoreKeys.partitions``)."""

from collections.abc import Callable, Sequence

import dagster as dg

def no_set_chosen(job: str) -> str:
    return f"no backup set chosen: launch {job} from its Launchpad and pick the set (its partition)"


def chosen_set(context: dg.OpExecutionContext, job: str) -> str:
    """The run's partition key. A job launched without picking a set stops here with one line
    that says what to do."""
    if not context.has_partition_key:
        raise dg.Failure(description=no_set_chosen(job), allow_retries=False)
    return context.partition_key


def set_chosen_for_checks(context: dg.AssetCheckExecutionContext, job: str) -> str | None:
    """The run's partition key, or None for a run without one (the Checks tab's "Execute all").

    Such a run records no result and ends successfully, so Dagster shows its checks as skipped,
    not failed: a failed run would mark every planned check "Execution failed". The one line
    that says what to do goes to the run's log."""
    op_context = context.op_execution_context
    if op_context.has_partition_key:
        return op_context.partition_key
    context.log.warning(no_set_chosen(job) + "; nothing was checked")
    return None


def age_order(key: str) -> tuple[str, str]:
    """Sorts keys oldest first: keys start with the set's timestamp."""
    return key.split("__")[0], key


def newest_key(keys: list[str]) -> str | None:
    """The newest set's key."""
    return max(keys, key=age_order, default=None)


def set_checks(name: str, specs: Sequence[dg.AssetCheckSpec]) -> Callable[[Callable], dg.AssetChecksDefinition]:
    """``@multi_asset_check`` for checks of one set, made to run together or not at all.

    Not subsettable: Dagster then marks each check "cannot execute on its own", so an asset's
    Checks tab, which has no partition picker, leaves them out of its "Execute all" instead of
    planning them in a run without a set, whose unevaluated checks would replace every set's
    results in the UI. Unlike ``@multi_asset_check(can_subset=False)``, each result stays
    optional, so a run without a set that an API call still makes records nothing and succeeds
    (the checks read as skipped, never failed)."""

    def decorate(fn: Callable) -> dg.AssetChecksDefinition:
        outs = {spec.get_python_identifier(): dg.Out(None, is_required=False) for spec in specs}
        return dg.AssetChecksDefinition.create(
            keys_by_input_name={},
            node_def=dg.op(name=name, out=outs)(fn),
            check_specs_by_output_name={spec.get_python_identifier(): spec for spec in specs},
            can_subset=False,
        )

    return decorate
