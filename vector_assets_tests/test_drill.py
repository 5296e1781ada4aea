"""The restore drill: drill_vector_backup restores into a scratch database, compares, drops it."""

from __future__ import annotations

import dagster as dg
import psycopg2
import pytest

from vector_assets.core.errors import VectorAssetsError
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.drill import (
    SCRATCH_DATABASE_PREFIX,
    DrillRequest,
    run_drill,
)
from vector_assets.core.sets.naming import csv_file_name
from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE
from vector_assets.dev.demo import write_legacy_set
from vector_assets_tests.support.dagster import asset_checks, backup_asset_key, definitions
from vector_assets_tests.support.database import execute, rows_as_text
from vector_assets_tests.support.files import folder_snapshot


def scratch_databases(dsn: str) -> list[str]:
    rows = execute(dsn, "SELECT datname FROM pg_database WHERE datname LIKE %s", (SCRATCH_DATABASE_PREFIX + "%",))
    return [name for (name,) in rows]


def drill_evaluations(instance: dg.DagsterInstance, run_id: str) -> list:
    return [
        entry.dagster_event.event_specific_data
        for entry in instance.all_logs(run_id)
        if entry.dagster_event and entry.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
    ]


def test_drill_of_the_newest_set_passes_and_drops_the_scratch_database(store_db, backup_root):
    run_backup(BackupRequest(dsn=store_db, root=backup_root, task_id="task_20250101_000000"))
    newest = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    before = rows_as_text(store_db, EMBEDDING_TABLE)

    result = run_drill(DrillRequest(dsn=store_db, root=backup_root))

    assert result.backup_set.timestamp == newest.timestamp
    assert result.passed
    assert {t.table: (t.rows_in_set, t.rows_restored) for t in result.tables} == {
        COLLECTION_TABLE: (3, 3), EMBEDDING_TABLE: (300, 300)
    }
    assert result.scratch_dropped and scratch_databases(store_db) == []
    assert rows_as_text(store_db, EMBEDDING_TABLE) == before


def test_drill_of_a_legacy_set_uses_the_source_column_types(store_db, backup_root):
    conn = psycopg2.connect(store_db)
    write_legacy_set(conn, backup_root / "task_20250721_213627" / "vector_bak", "20250721_213627")
    conn.close()

    result = run_drill(DrillRequest(dsn=store_db, root=backup_root, key="20250721_213627"))

    assert result.backup_set.is_legacy and result.passed
    assert [t.rows_restored for t in result.tables] == [3, 300]


def test_drill_reports_rows_that_do_not_come_back_as_written(store_db, backup_root):
    """A hand-edited legacy file loads, but its text is not what PostgreSQL exports: the drill says so."""
    conn = psycopg2.connect(store_db)
    folder = backup_root / "vector_bak"
    write_legacy_set(conn, folder, "20250102_000000")
    conn.close()
    path = folder / csv_file_name(EMBEDDING_TABLE, "20250102_000000")
    path.write_text(path.read_text(encoding="utf-8").replace('"[', '"[ ', 1), encoding="utf-8")  # pgvector drops the space

    result = run_drill(DrillRequest(dsn=store_db, root=backup_root))

    failed = [t for t in result.tables if not t.passed]
    assert not result.passed and [t.table for t in failed] == [EMBEDDING_TABLE]
    assert "differ from the file" in failed[0].message
    assert scratch_databases(store_db) == []


def test_verify_job_reports_check_evaluations_for_the_partition(dagster_instance, store_db, backup_root):
    made = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    dagster_instance.add_dynamic_partitions("vector_backups", [made.timestamp])

    result = definitions().resolve_job_def("drill_vector_backup").execute_in_process(
        instance=dagster_instance, partition_key=made.timestamp
    )

    assert result.success
    evaluations = drill_evaluations(dagster_instance, result.run_id)
    both = sorted([backup_asset_key(COLLECTION_TABLE), backup_asset_key(EMBEDDING_TABLE)])
    for check in ("restore_drill", "restore_rto"):
        ours = [e for e in evaluations if e.check_name == check]
        assert sorted(e.asset_key for e in ours) == both
        assert all(e.passed and e.partition == made.timestamp for e in ours)
    step_output = [
        e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"
    ][0].event_specific_data.metadata
    assert step_output["passed"].value is True
    assert step_output["scratch_dropped"].value is True


def test_verify_job_fails_on_a_damaged_set_and_still_drops_the_scratch_database(dagster_instance, store_db, backup_root):
    made = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    path = made.folder.path / csv_file_name(EMBEDDING_TABLE, made.timestamp)
    path.write_bytes(path.read_bytes().replace(b"0.", b"1.", 1))
    files_before = folder_snapshot(backup_root)
    rows_before = rows_as_text(store_db, EMBEDDING_TABLE)

    dagster_instance.add_dynamic_partitions("vector_backups", [made.timestamp])
    result = definitions().resolve_job_def("drill_vector_backup").execute_in_process(
        instance=dagster_instance, raise_on_error=False, partition_key=made.timestamp,
    )

    assert not result.success
    failure = result.failure_data_for_node("drill_restore_of_backup_set").error.message
    assert "sha256 does not match the manifest" in failure and path.name in failure
    assert scratch_databases(store_db) == []
    assert folder_snapshot(backup_root) == files_before
    assert rows_as_text(store_db, EMBEDDING_TABLE) == rows_before


def test_restore_drill_check_runs_for_one_partition(dagster_instance, store_db, backup_root):
    made = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    dagster_instance.add_dynamic_partitions("vector_backups", [made.timestamp])
    job = dg.define_asset_job("drill_check_only", selection=dg.AssetSelection.checks(asset_checks("restore_drill_check")))
    check_job = dg.Definitions.merge(definitions(), dg.Definitions(jobs=[job])).resolve_job_def("drill_check_only")

    result = check_job.execute_in_process(instance=dagster_instance, tags={"dagster/partition": made.timestamp})

    assert result.success
    evaluations = drill_evaluations(dagster_instance, result.run_id)
    assert {(e.check_name, e.passed) for e in evaluations if e.asset_key == backup_asset_key(EMBEDDING_TABLE)} == {
        ("restore_drill", True), ("restore_rto", True), ("search_recall", True)  # no vector index: nothing to miss
    }


def test_drill_job_without_a_chosen_set_stops_with_one_line_and_records_no_check(dagster_instance, backup_root):
    result = definitions().resolve_job_def("drill_vector_backup").execute_in_process(
        instance=dagster_instance, raise_on_error=False
    )

    assert not result.success
    assert "no backup set chosen: launch drill_vector_backup" in result.failure_data_for_node(
        "drill_restore_of_backup_set"
    ).error.message
    assert drill_evaluations(dagster_instance, result.run_id) == []


def test_the_drill_schedule_drills_the_newest_registered_set_and_skips_when_there_is_none(dagster_instance):
    schedule = definitions().resolve_schedule_def("vector_drill_schedule")
    context = dg.build_schedule_context(instance=dagster_instance)
    assert schedule.evaluate_tick(context).run_requests == []
    dagster_instance.add_dynamic_partitions(
        "vector_backups", ["20250102_020000", "20250103_020000__task_20250101_000000", "20250101_020000"]
    )
    context = dg.build_schedule_context(instance=dagster_instance, repository_def=definitions().get_repository_def())
    (request,) = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "20250103_020000__task_20250101_000000"


def test_a_partitionless_check_run_records_no_result_marks_nothing_failed_and_says_what_to_do(
    dagster_instance, store_db, backup_root
):
    run_backup(BackupRequest(dsn=store_db, root=backup_root))
    partitioned = dg.AssetSelection.all_asset_checks() - dg.AssetSelection.checks(asset_checks("backup_freshness_checks"))
    job = dg.define_asset_job("all_checks_without_a_partition", selection=partitioned)
    checks_job = dg.Definitions.merge(definitions(), dg.Definitions(jobs=[job])).resolve_job_def(job.name)

    result = checks_job.execute_in_process(instance=dagster_instance, raise_on_error=False)

    # A planned check whose run failed shows as "Execution failed"; in a run that succeeded, as skipped.
    assert result.success
    assert dagster_instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION) == []
    planned = dagster_instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED)
    assert len(planned) >= 8  # every partitioned check: the file checks, the drill and its RTO
    hints = [e.user_message for e in dagster_instance.all_logs(result.run_id) if "no backup set chosen" in e.user_message]
    assert any("check_vector_backup" in hint for hint in hints) and any("drill_vector_backup" in hint for hint in hints)


def test_a_legacy_set_that_cannot_restore_fails_its_drill_too(store_db, backup_root):
    """Its scratch tables take the source tables' keys: a repeated row fails there as in a restore."""
    from vector_assets.core.ops.restore import RestoreRequest, run_restore
    from vector_assets_tests.test_restore import legacy_copy_with_a_repeated_row

    key = run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp="20250721_120000")).timestamp
    legacy = legacy_copy_with_a_repeated_row(backup_root, key)
    with pytest.raises(VectorAssetsError) as restore_error:
        run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=legacy,
                                   truncate_before_restore=True, safety_backup=False))
    with pytest.raises(VectorAssetsError) as drill_error:
        run_drill(DrillRequest(dsn=store_db, root=backup_root, key=legacy))
    assert "primary key" in str(restore_error.value) and "primary key" in str(drill_error.value)
