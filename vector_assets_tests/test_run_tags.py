"""Every run that makes or uses a set carries its key, so the runs list filters by set."""

import pytest

from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets_tests.support.dagster import definitions, output_metadata, run_job

SET_TAG = "vector_assets/set"
TARGET_TAG = "vector_assets/target"


@pytest.fixture
def registered_set(dagster_instance, store_db, backup_root) -> str:
    made = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    dagster_instance.add_dynamic_partitions("vector_backups", [made.timestamp])
    return made.timestamp


def run_tags(instance, result) -> dict[str, str]:
    assert result.success
    return dict(instance.get_run_by_id(result.run_id).tags)


def test_backup_and_truncate_runs_carry_the_set_they_made(dagster_instance):
    backup = run_job(dagster_instance, "backup_vector_tables")
    truncate = run_job(dagster_instance, "truncate_vector_tables", "truncate_after_verified_backup", {"dry_run": False})

    made = dagster_instance.get_dynamic_partitions("vector_backups")
    assert len(made) == 2
    tags = [run_tags(dagster_instance, backup)[SET_TAG], run_tags(dagster_instance, truncate)[SET_TAG]]
    assert sorted(tags) == sorted(made)


def test_restore_runs_carry_the_set_and_the_target(dagster_instance, registered_set):
    result = run_job(
        dagster_instance, "restore_vector_tables", "restore_from_backup_set", {"truncate_before_restore": True, "dry_run": False},
        partition_key=registered_set,
    )
    tags = run_tags(dagster_instance, result)
    assert (tags[SET_TAG], tags[TARGET_TAG]) == (registered_set, "default")
    safety = output_metadata(result, "restore_from_backup_set")["safety_set"].value
    assert safety.endswith("__pre_restore") and tags["vector_assets/safety_set"] == safety
    assert safety in dagster_instance.get_dynamic_partitions("vector_backups")


@pytest.mark.parametrize("job", ["check_vector_backup", "drill_vector_backup"])
def test_check_and_drill_runs_carry_the_set_they_used(dagster_instance, registered_set, job):
    result = run_job(dagster_instance, job, partition_key=registered_set)
    assert run_tags(dagster_instance, result)[SET_TAG] == registered_set


def test_the_drill_schedule_tags_its_run_at_launch(dagster_instance, registered_set):
    import dagster as dg

    schedule = definitions().resolve_schedule_def("vector_drill_schedule")
    repository = definitions().get_repository_def()
    with dg.build_schedule_context(instance=dagster_instance, repository_def=repository) as context:
        request = schedule.evaluate_tick(context).run_requests[0]
    assert request.tags[SET_TAG] == request.partition_key == registered_set
