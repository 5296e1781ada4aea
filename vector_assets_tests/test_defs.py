"""The definitions load, every job resolves, and the wiring matches the product's names."""

import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from vector_assets import settings
from vector_assets.core.errors import ConfigError
from vector_assets.core.stores import langchain_store
from vector_assets.defs.location import code_location_definitions
from vector_assets_tests.support.dagster import backup_asset_key, definitions

REPO = Path(__file__).resolve().parent.parent


def test_every_job_resolves():
    names = {job.name for job in definitions().get_repository_def().get_all_jobs()}
    assert {
        "backup_vector_tables", "check_vector_backup", "truncate_vector_tables", "restore_vector_tables",
        "drill_vector_backup", "prune_vector_backups",
    } <= names
    assert "verify_vector_backup" not in names  # "verify" means the file checks; the drill is the drill
    for name in names:
        job = definitions().resolve_job_def(name)  # raises for a job that does not resolve
        assert job.name == name and job.graph.node_defs, name


def test_backup_schedule_is_on_by_default_and_launches_the_backup_job():
    schedule = definitions().resolve_schedule_def("vector_backup_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.job_name == "backup_vector_tables"
    with dg.instance_for_test() as instance:
        requests = schedule.evaluate_tick(dg.build_schedule_context(instance=instance)).run_requests
    assert len(requests) == 1 and requests[0].run_key is None


def reloaded_schedule(schedule_name: str):
    """The schedule as a code location load would build it from the environment now."""
    return code_location_definitions([settings.default_store()]).resolve_schedule_def(schedule_name)


def test_backup_schedule_cron_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("VECTOR_ASSETS_BACKUP_CRON", "15 3 * * 1")
    schedule = reloaded_schedule("vector_backup_schedule")
    assert schedule.cron_schedule == "15 3 * * 1"


@pytest.mark.parametrize("variable", [
    "VECTOR_ASSETS_BACKUP_CRON", "VECTOR_ASSETS_INCREMENTAL_CRON", "VECTOR_ASSETS_DRILL_CRON", "VECTOR_ASSETS_PRUNE_CRON",
    "VECTOR_ASSETS_REPLICATE_CRON",
])
def test_a_bad_cron_stops_the_load_with_a_line_that_names_its_variable(monkeypatch, variable):
    monkeypatch.setenv(variable, "every day at 2")
    with pytest.raises(ConfigError) as refused:
        code_location_definitions([settings.default_store()])
    message = str(refused.value)
    assert message.startswith(f"environment variable {variable} must be a cron schedule of five fields")
    assert message.endswith("got 'every day at 2'") and "\n" not in message


def test_a_store_setting_outweighs_the_environment(monkeypatch):
    monkeypatch.setenv("VECTOR_ASSETS_BACKUP_CRON", "15 3 * * 1")
    store = langchain_store(settings={"VECTOR_ASSETS_BACKUP_CRON": "45 1 * * *"})
    schedule = code_location_definitions([store]).resolve_schedule_def("vector_backup_schedule")
    assert schedule.cron_schedule == "45 1 * * *"


def test_dg_check_defs_reports_a_bad_cron_by_its_variable():
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dg")), "check", "defs"], cwd=REPO, capture_output=True, text=True,
        env={**{k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "VECTOR_ASSETS_"))},
             "VECTOR_ASSETS_BACKUP_CRON": "0 25 * * *"},
    )
    assert result.returncode != 0
    assert "environment variable VECTOR_ASSETS_BACKUP_CRON must be a cron schedule" in result.stdout + result.stderr


def test_drill_schedule_cron_comes_from_drill_cron_and_still_from_the_deprecated_verify_cron(monkeypatch):
    monkeypatch.setenv("VECTOR_ASSETS_VERIFY_CRON", "0 5 * * 1")
    assert reloaded_schedule("vector_drill_schedule").cron_schedule == "0 5 * * 1"
    monkeypatch.setenv("VECTOR_ASSETS_DRILL_CRON", "0 6 * * 2")
    assert reloaded_schedule("vector_drill_schedule").cron_schedule == "0 6 * * 2"


def test_lineage_runs_from_source_tables_to_partitioned_backups():
    graph = definitions().resolve_asset_graph()
    for table in ("langchain_pg_collection", "langchain_pg_embedding"):
        backup = graph.get(backup_asset_key(table))
        assert backup.parent_keys == {dg.AssetKey(table)}
        assert backup.partitions_def.name == "vector_backups"
        checks = {key.name for key in graph.get_check_keys_for_assets({backup.key})}
        search = {"search_recall", "vector_data_quality"} if table == "langchain_pg_embedding" else set()  # only vectors
        assert checks == {
            "file_present", "sha256_matches_manifest", "row_count_matches_manifest", "restore_drill", "restore_rto",
            "freshness_check", *search,
        }


def test_dsn_is_read_from_an_env_var_never_stored_in_config(monkeypatch):
    resource = definitions().resources["pgvector"]
    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", "postgresql://reader@db.internal/rag")
    assert resource.dsn == "postgresql://reader@db.internal/rag"
    assert "db.internal" not in repr(resource)


def test_sensor_and_drill_schedule_are_on_and_prune_schedule_is_off_by_default():
    assert definitions().resolve_sensor_def("vector_bak_sensor").default_status == dg.DefaultSensorStatus.RUNNING
    drill = definitions().resolve_schedule_def("vector_drill_schedule")
    assert drill.default_status == dg.DefaultScheduleStatus.RUNNING and drill.job_name == "drill_vector_backup"
    assert drill.cron_schedule == "0 4 * * 0"
    prune = definitions().resolve_schedule_def("vector_prune_schedule")
    assert prune.default_status == dg.DefaultScheduleStatus.STOPPED and prune.job_name == "prune_vector_backups"


DEFINITION_TYPES = (
    dg.JobDefinition, dg.ScheduleDefinition, dg.SensorDefinition, dg.AssetsDefinition, dg.AssetChecksDefinition,
    dg.AssetSpec, dg.PartitionsDefinition,
)


def test_definitions_are_built_from_the_stores_and_none_is_declared_at_import():
    import importlib
    import pkgutil

    import vector_assets.defs as package

    declared = {}  # one name per definition: a module that imports one does not declare it again
    for module_info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{module_info.name}")
        for name, value in vars(module).items():
            if isinstance(value, DEFINITION_TYPES):
                declared.setdefault(id(value), f"{module_info.name}.{name}")
    assert list(declared.values()) == []


def test_two_stores_live_side_by_side_in_one_code_location():
    docs = langchain_store(name="docs", dsn_variable="DOCS_PG_DSN", settings={"VECTOR_ASSETS_BACKUP_CRON": "5 1 * * *"})
    both = code_location_definitions([settings.default_store(), docs])
    jobs = {job.name for job in both.get_repository_def().get_all_jobs()}
    assert {"backup_vector_tables", "docs_backup_vector_tables", "docs_restore_vector_tables"} <= jobs
    assert both.resolve_job_def("docs_restore_vector_tables").partitions_def.name == "docs_vector_backups"
    assert both.resolve_job_def("restore_vector_tables").partitions_def.name == "vector_backups"
    assert both.resolve_schedule_def("docs_vector_backup_schedule").cron_schedule == "5 1 * * *"
    assert both.resolve_schedule_def("vector_backup_schedule").cron_schedule == "0 2 * * *"
    keys = both.resolve_asset_graph().get_all_asset_keys()
    assert {dg.AssetKey(["docs", "langchain_pg_embedding_backup"]), backup_asset_key("langchain_pg_embedding")} <= keys


def test_dg_check_defs_passes_from_the_project_root():
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dg")), "check", "defs"], cwd=REPO, capture_output=True, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "VECTOR_ASSETS_"))},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully" in result.stdout + result.stderr


def test_the_cli_and_the_core_import_no_dagster():
    program = (
        "import sys, vector_assets.cli, vector_assets.core.ops.restore, vector_assets.settings\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith('dagster')}))"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_only_the_settings_layer_reads_the_environment():
    """settings.py, and the Setting type it declares every variable with (an object-store
    driver declares the variables its client library reads with it too); no other module."""
    readers = sorted(
        path.relative_to(REPO).as_posix()
        for path in (REPO / "vector_assets").rglob("*.py")
        if re.search(r"os\.environ|os\.getenv", path.read_text()) and "/dev/" not in path.as_posix()
    )
    assert readers == ["vector_assets/core/environment.py", "vector_assets/settings.py"]


def test_every_setting_declared_anywhere_is_listed_in_all_settings():
    """A driver declares the variables it reads itself; settings.ALL_SETTINGS lists them all."""
    import importlib
    import pkgutil

    import vector_assets
    from vector_assets import settings
    from vector_assets.core.environment import Setting

    declared = {
        value.name
        for module in pkgutil.walk_packages(vector_assets.__path__, "vector_assets.")
        for value in vars(importlib.import_module(module.name)).values()
        if isinstance(value, Setting)
    }
    assert {"AZURE_STORAGE_USE_EMULATOR", "AZURITE_BLOB_STORAGE_URL", "GOOGLE_BASE_URL"} <= declared
    assert declared == {setting.name for setting in settings.ALL_SETTINGS}


def test_the_core_never_imports_settings():
    importers = [
        path.relative_to(REPO).as_posix()
        for path in (REPO / "vector_assets" / "core").rglob("*.py")
        if re.search(r"^from vector_assets import settings|^import vector_assets\.settings|^from vector_assets\.settings",
                     path.read_text(), re.MULTILINE)
    ]
    assert importers == []


def test_alert_and_freshness_sensors_are_on_by_default():
    for name in ("vector_alert_sensor", "vector_freshness_sensor"):
        assert definitions().resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING
