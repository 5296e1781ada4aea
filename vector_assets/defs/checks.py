"""The file checks per backup partition (files present, sha256 as in the manifest, CSV row
counts) and ``check_vector_backup``, the job that runs them on one partition."""

import warnings

import dagster as dg

from vector_assets.core.errors import VectorAssetsError
from vector_assets.core.ops.verify import CHECK_NAMES, check_table_file
from vector_assets.core.sets.catalog import SetCatalog
from vector_assets.core.tables import MANAGED_TABLES
from vector_assets.defs.backup import backup_asset_key
from vector_assets.defs.partitions import vector_backups_partitions
from vector_assets.defs.resources import BackupRootResource

CHECK_DESCRIPTIONS = {
    "file_present": "The table's CSV file is present in the set's folder.",
    "sha256_matches_manifest": "The file's sha256 equals the one the manifest recorded.",
    "row_count_matches_manifest": "The CSV, parsed properly, has the manifest's row count.",
}


def _build_check(table: str, check: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=backup_asset_key(table),
        name=check,
        description=CHECK_DESCRIPTIONS[check],
        partitions_def=vector_backups_partitions,
    )
    def _check(context: dg.AssetCheckExecutionContext, backup_root: BackupRootResource) -> dg.AssetCheckResult:
        try:
            backup_set = SetCatalog(backup_root.path()).get(context.partition_key)
        except VectorAssetsError as error:
            return dg.AssetCheckResult(passed=False, description=str(error))
        outcome = check_table_file(backup_set, table, check)
        metadata = {"folder": str(backup_set.folder), "legacy": backup_set.is_legacy}
        if outcome.expected is not None:
            metadata["expected"] = outcome.expected
        if outcome.actual is not None:
            metadata["actual"] = outcome.actual
        return dg.AssetCheckResult(passed=outcome.passed, description=outcome.message, metadata=metadata)

    return _check


# Partitioned asset checks are a preview feature in Dagster 1.13; we rely on it knowingly.
warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def on an AssetCheckSpec")

backup_checks = [_build_check(table, check) for table in MANAGED_TABLES for check in CHECK_NAMES]

check_vector_backup = dg.define_asset_job(
    "check_vector_backup",
    selection=dg.AssetSelection.checks(*backup_checks),
    description="Run the file, sha256 and row-count checks on one backup partition.",
)
