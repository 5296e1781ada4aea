"""Incremental backups from Dagster and the CLI: the job's ``kind``, what its partitions and the
CLI report (kind, parent, changes, a fallback's reason), and ``vector_incremental_schedule``."""

import dagster as dg
import pytest

from vector_assets.cli import main
from vector_assets.core.sets.catalog import scan_root
from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE
from vector_assets_tests.support.database import STORE_TABLES
from vector_assets_tests.support.chains import change_store
from vector_assets_tests.support.dagster import definitions, partition_metadata, run_job
from vector_assets_tests.support.files import folder_snapshot
from vector_assets_tests.test_defs import reloaded_schedule

JOB, OP = "backup_vector_tables", "back_up_tables"


def warnings_of(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [record.user_message for record in instance.all_logs(run_id) if record.level == 30]


def test_the_backup_job_writes_an_increment_on_the_newest_set_and_reports_kind_parent_and_changes(
    dagster_instance, store_db, backup_root
):
    assert run_job(dagster_instance, JOB, OP, {}).success  # kind defaults to full, with no row index
    assert run_job(dagster_instance, JOB, OP, {"kind": "incremental"}).success  # a full set with one
    change_store(store_db, 1)
    result = run_job(dagster_instance, JOB, OP, {"kind": "incremental"})

    assert result.success
    unindexed, full, increment = scan_root(backup_root)
    assert "it has no row index" in full.manifest.fallback
    assert full.manifest.kind == "full" and increment.manifest.kind == "incremental"
    assert increment.manifest.parent == full.timestamp
    for table in STORE_TABLES:
        assert partition_metadata(dagster_instance, table, full.key)["kind"] == "full"
        assert "parent" not in partition_metadata(dagster_instance, table, full.key)
        metadata = partition_metadata(dagster_instance, table, increment.key)
        entry = increment.manifest.tables[table]
        assert metadata["kind"] == "incremental" and metadata["parent"] == full.timestamp
        assert metadata["rows_changed_or_added"] == entry.rows
        assert metadata["keys_deleted"] == entry.deleted_keys.rows
        assert metadata["rows_after"] == entry.rows_after
        assert metadata["file"] == f"{table}_{increment.timestamp}.changes.csv"
        assert (metadata["row_index_file"], metadata["deleted_keys_file"]) == (
            f"{table}_{increment.timestamp}.index.zst", f"{table}_{increment.timestamp}.deleted.zst"
        )
        assert "fallback" not in metadata
    embeddings = increment.manifest.tables[EMBEDDING_TABLE]
    # change_store: 3 rows changed, 2 added, 1 deleted; the collections did not change
    assert (embeddings.rows, embeddings.deleted_keys.rows) == (5, 1)
    assert embeddings.rows_after == full.manifest.tables[EMBEDDING_TABLE].rows + 1
    assert increment.manifest.tables[COLLECTION_TABLE].rows == 0
    # no fallback; only the data checks' warning of the demo store's deliberate empty documents
    assert warnings_of(dagster_instance, result.run_id) == [f"vector_data_quality: {EMBEDDING_TABLE}: 2 empty documents"]


def test_an_incremental_run_without_a_parent_writes_a_full_set_and_says_why(dagster_instance, backup_root):
    result = run_job(dagster_instance, JOB, OP, {"kind": "incremental"})

    assert result.success
    (backup_set,) = scan_root(backup_root)
    assert backup_set.manifest.kind == "full" and backup_set.manifest.parent is None
    why = backup_set.manifest.fallback
    assert why.startswith("an incremental backup was asked for; this is a full one, because no earlier set")
    for table in STORE_TABLES:
        metadata = partition_metadata(dagster_instance, table, backup_set.key)
        assert metadata["kind"] == "full" and metadata["fallback"] == why
    assert [message for message in warnings_of(dagster_instance, result.run_id) if why in message]


def test_an_unknown_kind_is_refused_by_the_config_schema_and_no_run_is_stored(dagster_instance, backup_root):
    with pytest.raises(dg.DagsterInvalidConfigError, match="not in enum type BackupKind got differential"):
        run_job(dagster_instance, JOB, OP, {"kind": "differential"})
    assert dagster_instance.get_runs() == [] and folder_snapshot(backup_root) == {}


def test_vector_assets_backup_incremental_prints_kind_parent_changes_and_a_fallback(
    dagster_instance, store_db, backup_root, capsys
):
    assert main(["backup", "--incremental"]) == 0
    first = capsys.readouterr()
    (full,) = scan_root(backup_root)
    assert f"warning: {full.manifest.fallback}" in first.err
    assert f"set {full.timestamp} (full):" in first.out

    change_store(store_db, 1)
    assert main(["backup", "--incremental"]) == 0
    second = capsys.readouterr()
    _, increment = scan_root(backup_root)
    assert f"set {increment.timestamp} (incremental on {full.timestamp}):" in second.out
    rows_after = increment.manifest.tables[EMBEDDING_TABLE].rows_after
    assert f"{EMBEDDING_TABLE}: 5 rows changed or added, 1 key deleted, {rows_after:,} rows after" in second.out
    assert second.err == f"warning: {EMBEDDING_TABLE}: 2 empty documents (data checks)\n"  # the demo's; no fallback


def test_the_incremental_schedule_is_off_by_default_hourly_and_runs_an_increment(dagster_instance, store_db, backup_root):
    schedule = definitions().resolve_schedule_def("vector_incremental_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.cron_schedule == "0 * * * *" and schedule.job_name == JOB
    assert "Off by default" in schedule.description and "VECTOR_ASSETS_INCREMENTAL_CRON" in schedule.description
    assert "\n" not in schedule.description

    assert run_job(dagster_instance, JOB, OP, {"kind": "incremental"}).success  # the first: a full set
    change_store(store_db, 1)
    (request,) = schedule.evaluate_tick(dg.build_schedule_context(instance=dagster_instance)).run_requests
    result = definitions().resolve_job_def(JOB).execute_in_process(instance=dagster_instance, run_config=request.run_config)

    assert result.success
    full, increment = scan_root(backup_root)
    assert increment.manifest.kind == "incremental" and increment.manifest.parent == full.timestamp


def test_the_incremental_schedules_cron_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("VECTOR_ASSETS_INCREMENTAL_CRON", "*/15 * * * *")
    schedule = reloaded_schedule("vector_incremental_schedule")
    assert schedule.cron_schedule == "*/15 * * * *"
