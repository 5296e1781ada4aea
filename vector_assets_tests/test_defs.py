"""The definitions load, every job resolves, and the wiring matches the product's names."""

import dagster as dg

from vector_assets.definitions import defs
from vector_assets.defs.assets import backup_asset_key


def test_every_job_resolves():
    names = {job.name for job in defs.get_repository_def().get_all_jobs()}
    assert {
        "backup_vector_tables", "check_vector_backup", "truncate_vector_tables", "restore_vector_tables",
        "verify_vector_backup", "prune_vector_backups",
    } <= names
    for name in names:
        assert defs.resolve_job_def(name) is not None


def test_backup_schedule_is_on_by_default_and_launches_the_backup_job():
    schedule = defs.resolve_schedule_def("vector_backup_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.job_name == "backup_vector_tables"
    with dg.instance_for_test() as instance:
        requests = schedule.evaluate_tick(dg.build_schedule_context(instance=instance)).run_requests
    assert len(requests) == 1 and requests[0].run_key is None


def test_backup_schedule_cron_comes_from_the_environment(monkeypatch):
    import importlib

    import vector_assets.defs.schedules as schedules

    monkeypatch.setenv("VECTOR_ASSETS_BACKUP_CRON", "15 3 * * 1")
    try:
        assert importlib.reload(schedules).vector_backup_schedule.cron_schedule == "15 3 * * 1"
    finally:
        monkeypatch.delenv("VECTOR_ASSETS_BACKUP_CRON")
        importlib.reload(schedules)


def test_lineage_runs_from_source_tables_to_partitioned_backups():
    graph = defs.resolve_asset_graph()
    for table in ("langchain_pg_collection", "langchain_pg_embedding"):
        backup = graph.get(backup_asset_key(table))
        assert backup.parent_keys == {dg.AssetKey(table)}
        assert backup.partitions_def.name == "vector_backups"
        checks = {key.name for key in graph.get_check_keys_for_assets({backup.key})}
        assert checks == {"file_present", "sha256_matches_manifest", "row_count_matches_manifest", "restore_drill"}


def test_dsn_is_read_from_an_env_var_never_stored_in_config():
    resource = defs.resources["pgvector"]
    assert "VECTOR_ASSETS_PG_DSN" in repr(resource.dsn)


def test_sensor_and_drill_schedule_are_on_and_prune_schedule_is_off_by_default():
    assert defs.resolve_sensor_def("vector_bak_sensor").default_status == dg.DefaultSensorStatus.RUNNING
    drill = defs.resolve_schedule_def("vector_verify_schedule")
    assert drill.default_status == dg.DefaultScheduleStatus.RUNNING and drill.job_name == "verify_vector_backup"
    assert drill.cron_schedule == "0 4 * * 0"
    prune = defs.resolve_schedule_def("vector_prune_schedule")
    assert prune.default_status == dg.DefaultScheduleStatus.STOPPED and prune.job_name == "prune_vector_backups"
