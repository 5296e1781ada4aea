"""Verify: the file checks per backup partition (files present, sha256 as in the manifest, CSV
row counts; for an increment, of every set of its chain) and ``check_vector_backup``, the job
that runs them on the set you pick.

Dagster 1.13 cannot give a checks-only asset job a partition picker, so the job is an op job
partitioned by the sets, which records its results as that partition's check evaluations, as
the drill does. The checks themselves stay runnable from an asset's Checks tab on a partition;
run there without one ("Execute all"), they record nothing, say in the run's log what to do,
and show as skipped, never failed.
"""

import warnings

import dagster as dg

from vector_assets.core.errors import VectorAssetsError
from vector_assets.core.ops.verify import CHECK_NAMES, CheckOutcome, check_table_file
from vector_assets.core.sets.copies import ChosenCopy, choose_copy
from vector_assets.core.tables import MANAGED_TABLES
from vector_assets.defs.alerts import alert_failed_check
from vector_assets.defs.backup import backup_asset_key
from vector_assets.defs.failures import as_failure
from vector_assets.defs.partitions import chosen_set, set_chosen_for_checks, vector_backups_partitions
from vector_assets.defs.resources import BackupRootResource
from vector_assets.defs.run_facts import tag_run

CHECK_JOB = "check_vector_backup"
CHAIN = " For an increment, the same for every set of its chain; a missing or damaged ancestor fails, named."
CHECK_DESCRIPTIONS = {
    "file_present": "The table's files (data, and any row index or deleted keys) are present in the set's folder." + CHAIN,
    "sha256_matches_manifest": "Each file's sha256 equals the one the manifest recorded (WARN for a legacy set: none "
    "recorded)." + CHAIN,
    "row_count_matches_manifest": "The data files, parsed properly, have the manifest's row count; a row index or "
    "deleted keys file has its line count." + CHAIN,
}


def check_fields(chosen: ChosenCopy, outcome: CheckOutcome) -> dict:
    """What an outcome says, as the fields of a check result or evaluation."""
    backup_set = chosen.backup_set
    metadata: dict = {"folder": str(backup_set.folder), "legacy": backup_set.is_legacy}
    if chosen.note:
        metadata["read_from_offsite"] = chosen.note
    if outcome.expected is not None:
        metadata["expected"] = outcome.expected
    if outcome.actual is not None:
        metadata["actual"] = outcome.actual
    return {
        "passed": outcome.passed and not outcome.warning,
        "severity": dg.AssetCheckSeverity.WARN if outcome.warning else dg.AssetCheckSeverity.ERROR,
        "description": outcome.message,
        "metadata": metadata,
    }


# Partitioned asset checks are a preview feature in Dagster 1.13; we rely on it knowingly.
warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def on an AssetCheckSpec")

TABLE_OF_BACKUP_ASSET = {backup_asset_key(table): table for table in MANAGED_TABLES}
FILE_CHECK_SPECS = [
    dg.AssetCheckSpec(
        check,
        asset=backup_asset_key(table),
        description=CHECK_DESCRIPTIONS[check],
        partitions_def=vector_backups_partitions,
    )
    for table in MANAGED_TABLES
    for check in CHECK_NAMES
]


# can_subset: the Checks tab runs one asset's checks, and a run without a set yields none.
@dg.multi_asset_check(specs=FILE_CHECK_SPECS, can_subset=True)
def backup_file_checks(context: dg.AssetCheckExecutionContext, backup_root: BackupRootResource):
    key = set_chosen_for_checks(context, CHECK_JOB)
    if key is None:
        return
    tag_run(context, key)
    try:
        chosen, failure = choose_copy(backup_root.open(), backup_root.open_offsite(), key), ""
    except VectorAssetsError as error:
        chosen, failure = None, str(error)
    for check_key in context.selected_asset_check_keys:
        table = TABLE_OF_BACKUP_ASSET[check_key.asset_key]
        fields = (
            {"passed": False, "description": failure}
            if chosen is None
            else check_fields(chosen, check_table_file(chosen.backup_set, table, check_key.name))
        )
        if not fields["passed"] and fields.get("severity") != dg.AssetCheckSeverity.WARN:
            alert_failed_check(context, key, f"{table} {check_key.name}", fields["description"])
        yield dg.AssetCheckResult(asset_key=check_key.asset_key, check_name=check_key.name, **fields)


@dg.op(out=dg.Out(dg.Nothing))
def verify_backup_set(context: dg.OpExecutionContext, backup_root: BackupRootResource) -> dg.Output:
    """Run every file check on the chosen set and record them on its partition."""
    key = chosen_set(context, CHECK_JOB)
    tag_run(context, key)
    try:
        chosen = choose_copy(backup_root.open(), backup_root.open_offsite(), key)
    except VectorAssetsError as error:
        raise as_failure(error, "verify") from None
    if chosen.note:
        context.log.warning(chosen.note)
    backup_set = chosen.backup_set
    failed = []
    for table in backup_set.tables:
        for check in CHECK_NAMES:
            outcome = check_table_file(backup_set, table, check)
            context.log_event(dg.AssetCheckEvaluation(
                asset_key=backup_asset_key(table), check_name=check, partition=key, **check_fields(chosen, outcome)
            ))
            (context.log.warning if outcome.warning else context.log.info)(f"{table} {check}: {outcome.message}")
            if not outcome.passed:
                failed.append(f"{table} {check}: {outcome.message}")
                alert_failed_check(context, key, f"{table} {check}", outcome.message)
    if failed:
        raise dg.Failure(description=f"set {key} failed verification: " + "; ".join(failed), allow_retries=False)
    return dg.Output(None, metadata={"partition": key, "checks": len(backup_set.tables) * len(CHECK_NAMES)})


@dg.job(
    name=CHECK_JOB,
    partitions_def=vector_backups_partitions,
    description="Verify the chosen set: its files are present, and their sha256 and row counts match the manifest.",
)
def check_vector_backup() -> None:
    verify_backup_set()
