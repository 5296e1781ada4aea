"""Verify: the file checks per backup partition (files present, sha256 as in the manifest, CSV
row counts) and ``check_vector_backup``, the job that runs them on the set you pick.

Dagster 1.13 cannot give a checks-only asset job a partition picker, so the job is an op job
partitioned by the sets, which records its results as that partition's check evaluations, as
the drill does. The checks themselves stay runnable from an asset's Checks tab on a partition;
run there without one, they stop with a line that says what to do and record nothing.
"""

import warnings

import dagster as dg

from vector_assets.core.errors import VectorAssetsError
from vector_assets.core.ops.verify import CHECK_NAMES, CheckOutcome, check_table_file
from vector_assets.core.sets.catalog import BackupSet, SetCatalog
from vector_assets.core.tables import MANAGED_TABLES
from vector_assets.defs.alerts import alert_failed_check
from vector_assets.defs.backup import backup_asset_key
from vector_assets.defs.failures import as_failure
from vector_assets.defs.partitions import chosen_set, vector_backups_partitions
from vector_assets.defs.resources import BackupRootResource
from vector_assets.defs.run_facts import tag_run

CHECK_JOB = "check_vector_backup"
CHECK_DESCRIPTIONS = {
    "file_present": "The table's CSV file is present in the set's folder.",
    "sha256_matches_manifest": "The file's sha256 equals the one the manifest recorded (WARN for a legacy set: none recorded).",
    "row_count_matches_manifest": "The CSV, parsed properly, has the manifest's row count.",
}


def check_fields(backup_set: BackupSet, outcome: CheckOutcome) -> dict:
    """What an outcome says, as the fields of a check result or evaluation."""
    metadata: dict = {"folder": str(backup_set.folder), "legacy": backup_set.is_legacy}
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


def _build_check(table: str, check: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=backup_asset_key(table),
        name=check,
        description=CHECK_DESCRIPTIONS[check],
        partitions_def=vector_backups_partitions,
    )
    def _check(context: dg.AssetCheckExecutionContext, backup_root: BackupRootResource) -> dg.AssetCheckResult:
        key = chosen_set(context, CHECK_JOB)
        tag_run(context, key)
        try:
            backup_set = SetCatalog(backup_root.path()).get(key)
        except VectorAssetsError as error:
            return dg.AssetCheckResult(passed=False, description=str(error))
        outcome = check_table_file(backup_set, table, check)
        if not outcome.passed:
            alert_failed_check(context, key, f"{table} {check}", outcome.message)
        return dg.AssetCheckResult(**check_fields(backup_set, outcome))

    return _check


# Partitioned asset checks are a preview feature in Dagster 1.13; we rely on it knowingly.
warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def on an AssetCheckSpec")

backup_checks = [_build_check(table, check) for table in MANAGED_TABLES for check in CHECK_NAMES]


@dg.op(out=dg.Out(dg.Nothing))
def verify_backup_set(context: dg.OpExecutionContext, backup_root: BackupRootResource) -> dg.Output:
    """Run every file check on the chosen set and record them on its partition."""
    key = chosen_set(context, CHECK_JOB)
    tag_run(context, key)
    try:
        backup_set = SetCatalog(backup_root.path()).get(key)
    except VectorAssetsError as error:
        raise as_failure(error, "verify") from None
    failed = []
    for table in backup_set.tables:
        for check in CHECK_NAMES:
            outcome = check_table_file(backup_set, table, check)
            context.log_event(dg.AssetCheckEvaluation(
                asset_key=backup_asset_key(table), check_name=check, partition=key, **check_fields(backup_set, outcome)
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
