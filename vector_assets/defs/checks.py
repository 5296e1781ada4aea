"""Verify: the file checks per backup partition (files present, sha256 as in the manifest, CSV
row counts; for an increment, of every set of its chain) and ``check_vector_backup``, the job
that runs them on the set you pick.

Dagster 1.13 cannot give a checks-only asset job a partition picker, so the job is an op job
partitioned by the sets, which records its results as that partition's check evaluations, as
the drill does; ``vector_bak_sensor`` records them for the sets it verifies itself. The checks
of both tables form one step that cannot be subset, so an asset's Checks tab never offers them
alone: its "Execute all" runs only what it can evaluate without a set (the freshness check),
and a run without a set never replaces a set's results.
"""

import warnings

import dagster as dg

from vector_assets import settings
from vector_assets.core.errors import VectorAssetsError
from vector_assets.core.ops.verify import CHECK_NAMES, CheckOutcome, FileReads, check_table_file
from vector_assets.core.sets.catalog import BackupSet
from vector_assets.core.sets.copies import choose_copy
from vector_assets.defs.alerts import alert_failed_check
from vector_assets.defs.failures import as_failure
from vector_assets.defs.partitions import chosen_set, set_checks, set_chosen_for_checks
from vector_assets.defs.resources import BackupRootResource
from vector_assets.defs.run_facts import READS_SETS, tag_run
from vector_assets.defs.store_keys import StoreKeys

CHECK_JOB = "check_vector_backup"
CHAIN = " For an increment, the same for every set of its chain; a missing or damaged ancestor fails, named."
CHECK_DESCRIPTIONS = {
    "file_present": "The table's files (data, and any row index or deleted keys) are present in the set's folder." + CHAIN,
    "sha256_matches_manifest": "Each file's sha256 equals the one the manifest recorded (WARN for a legacy set: none "
    "recorded)." + CHAIN,
    "row_count_matches_manifest": "The data files, parsed properly, have the manifest's row count; a row index or "
    "deleted keys file has its line count." + CHAIN,
}
DATA_QUALITY_CHECK = "vector_data_quality"
DATA_QUALITY_DESCRIPTION = (
    "Rows the store should not hold, counted in the snapshot the set was taken in: vectors of another dimension "
    "than the column's (or, without one, than most of their collection's), NULL and all-zero vectors, ids repeated "
    "within a collection, rows of a missing collection, empty documents. WARN when any count is not zero; it never "
    "blocks anything."
)


def check_fields(backup_set: BackupSet, outcome: CheckOutcome, offsite_note: str | None = None) -> dict:
    """What an outcome says, as the fields of a check result or evaluation. A check that could
    compare nothing (a legacy set has no checksum) is a WARN that says so, never an ERROR."""
    metadata: dict = {"folder": str(backup_set.folder), "legacy": backup_set.is_legacy}
    if offsite_note:
        metadata["read_from_offsite"] = offsite_note
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


def file_check_evaluations(
    keys: StoreKeys, backup_set: BackupSet, offsite_note: str | None = None, reads: FileReads | None = None
) -> list[tuple[CheckOutcome, dg.AssetCheckEvaluation]]:
    """Every file check of the set, as the evaluations recorded on its partition; each file is
    read once (``reads``: files the caller has read already)."""
    reads = FileReads() if reads is None else reads
    identity_file = settings.identity_file(keys.store.environment())
    evaluations = []
    for table in backup_set.tables:
        for check in CHECK_NAMES:
            outcome = check_table_file(backup_set, table, check, identity_file, reads)
            evaluations.append((outcome, dg.AssetCheckEvaluation(
                asset_key=keys.backup_key(table), check_name=check, partition=backup_set.key,
                **check_fields(backup_set, outcome, offsite_note),
            )))
    return evaluations


def data_quality_fields(backup_set: BackupSet, table: str) -> dict:
    """The counts the set recorded for the table: a warning when any is not zero, or when the set
    recorded none (nothing was counted, which is never a silent pass)."""
    entry = backup_set.manifest.tables.get(table) if backup_set.manifest else None
    checks = entry.data_checks if entry is not None else None
    metadata: dict = {"partition": backup_set.key}
    if checks is None:
        return {
            "passed": False, "severity": dg.AssetCheckSeverity.WARN, "metadata": metadata,
            "description": f"{table}: set {backup_set.key} records no data checks (a legacy set, or one written before "
            "they were counted): nothing was checked",
        }
    if checks.failed:
        return {"passed": False, "severity": dg.AssetCheckSeverity.WARN, "metadata": metadata,
                "description": f"{table}: {checks.describe()}"}
    metadata.update({name: dg.MetadataValue.int(count) for name, count in checks.counts().items()})
    metadata["data_checks_seconds"] = dg.MetadataValue.float(round(checks.seconds, 3))
    # A passed result carries the default severity: Dagster 1.13's asset node shows a passed WARN
    # result with the warning sign, which would paint a clean store yellow.
    severity = dg.AssetCheckSeverity.WARN if checks.problems() else dg.AssetCheckSeverity.ERROR
    return {
        "passed": not checks.problems(), "severity": severity, "metadata": metadata,
        "description": f"{table}: {checks.describe()}",
    }


def data_quality_evaluations(keys: StoreKeys, backup_set: BackupSet) -> list[dg.AssetCheckEvaluation]:
    """The data-quality check of each vector table of the set, as evaluations on its partition."""
    return [
        dg.AssetCheckEvaluation(
            asset_key=keys.backup_key(table), check_name=DATA_QUALITY_CHECK, partition=backup_set.key,
            **data_quality_fields(backup_set, table),
        )
        for table in backup_set.tables
        if table in keys.store.vector_tables
    ]


def is_failure(outcome: CheckOutcome) -> bool:
    """Failed, not merely unable to compare: what alerts and fails a check run."""
    return not outcome.passed


# Partitioned asset checks are a preview feature in Dagster 1.13; we rely on it knowingly.
warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def on an AssetCheckSpec")

def file_check_specs(keys: StoreKeys) -> list[dg.AssetCheckSpec]:
    files = [
        dg.AssetCheckSpec(
            check, asset=keys.backup_key(table), description=CHECK_DESCRIPTIONS[check], partitions_def=keys.partitions,
        )
        for table in keys.store.table_names
        for check in CHECK_NAMES
    ]
    data = [
        dg.AssetCheckSpec(DATA_QUALITY_CHECK, asset=keys.backup_key(table), description=DATA_QUALITY_DESCRIPTION,
                          partitions_def=keys.partitions)
        for table in keys.store.vector_tables
    ]
    return files + data


def file_checks(keys: StoreKeys) -> dg.AssetChecksDefinition:
    store, job_name = keys.store, keys.name(CHECK_JOB)

    @set_checks(keys.name("backup_file_checks"), file_check_specs(keys))
    def backup_file_checks(context: dg.AssetCheckExecutionContext, backup_root: BackupRootResource):
        key = set_chosen_for_checks(context, job_name)
        if key is None:
            return
        tag_run(context, key)
        try:
            chosen, failure = choose_copy(backup_root.open(store), backup_root.open_offsite(store), key), ""
        except VectorAssetsError as error:
            chosen, failure = None, str(error)
        reads = FileReads()
        for check_key in context.selected_asset_check_keys:
            table = keys.table_of(check_key.asset_key)
            fields = {"passed": False, "description": failure} if chosen is None else set_check_fields(
                store, chosen.backup_set, table, check_key.name, chosen.note, reads,
            )
            if not fields["passed"] and fields.get("severity") != dg.AssetCheckSeverity.WARN:
                alert_failed_check(context, key, f"{table} {check_key.name}", fields["description"], keys.store)
            yield dg.AssetCheckResult(asset_key=check_key.asset_key, check_name=check_key.name, **fields)

    return backup_file_checks


def set_check_fields(
    store, backup_set: BackupSet, table: str, check: str, offsite_note: str | None, reads: FileReads | None = None
) -> dict:
    """One check of a table of the set: the data-quality check reads the set's counts, a file check its files."""
    if check == DATA_QUALITY_CHECK:
        return data_quality_fields(backup_set, table)
    outcome = check_table_file(backup_set, table, check, settings.identity_file(store.environment()), reads)
    return check_fields(backup_set, outcome, offsite_note)


def verify_op(keys: StoreKeys) -> dg.OpDefinition:
    store, job_name = keys.store, keys.name(CHECK_JOB)

    @dg.op(name=keys.name("verify_backup_set"), out=dg.Out(dg.Nothing))
    def verify_backup_set(context: dg.OpExecutionContext, backup_root: BackupRootResource) -> dg.Output:
        """Run every file check on the chosen set and record them on its partition."""
        key = chosen_set(context, job_name)
        tag_run(context, key)
        try:
            chosen = choose_copy(backup_root.open(store), backup_root.open_offsite(store), key)
        except VectorAssetsError as error:
            raise as_failure(error, "verify") from None
        if chosen.note:
            context.log.warning(chosen.note)
        backup_set = chosen.backup_set
        failed = []
        for outcome, evaluation in file_check_evaluations(keys, backup_set, chosen.note):
            context.log_event(evaluation)
            (context.log.warning if outcome.warning else context.log.info)(f"{outcome.table} {outcome.check}: {outcome.message}")
            if is_failure(outcome):
                failed.append(f"{outcome.table} {outcome.check}: {outcome.message}")
                alert_failed_check(context, key, f"{outcome.table} {outcome.check}", outcome.message, keys.store)
        for evaluation in data_quality_evaluations(keys, backup_set):
            context.log_event(evaluation)
            (context.log.info if evaluation.passed else context.log.warning)(f"{DATA_QUALITY_CHECK}: {evaluation.description}")
        if failed:
            raise dg.Failure(description=f"set {key} failed verification: " + "; ".join(failed), allow_retries=False)
        return dg.Output(None, metadata={"partition": key, "checks": len(backup_set.tables) * len(CHECK_NAMES)})

    return verify_backup_set


def check_job(keys: StoreKeys) -> dg.JobDefinition:
    verify_backup_set = verify_op(keys)

    @dg.job(
        name=keys.name(CHECK_JOB),
        partitions_def=keys.partitions,
        tags=READS_SETS,
        description="Verify the chosen set: its files are present, and their sha256 and row counts match the manifest.",
    )
    def check_vector_backup() -> None:
        verify_backup_set()

    return check_vector_backup


def check_definitions(keys: StoreKeys, job: dg.JobDefinition) -> dg.Definitions:
    """The file checks and the job that runs them (the sensor's too, so it is built once, by the caller)."""
    return dg.Definitions(asset_checks=[file_checks(keys)], jobs=[job])
