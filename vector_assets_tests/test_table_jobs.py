"""The truncate and restore jobs through execute_in_process, and the pool that keeps them apart."""

from pathlib import Path

import dagster as dg
import psycopg2
import pytest
import yaml

from vector_assets.core.sets.catalog import scan_root
from vector_assets.dev.demo import create_tables
from vector_assets_tests.support.dagster import definitions, output_metadata, run_job
from vector_assets_tests.support.database import execute, rows_as_text

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def instance(dagster_instance):
    return dagster_instance


def test_truncate_job_backs_up_registers_and_reports_rows_before_and_after(instance, store_db, backup_root):
    rows = execute(store_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0]
    result = run_job(instance, "truncate_vector_tables", "truncate_after_verified_backup", {"dry_run": False})
    assert result.success
    (backup_set,) = scan_root(backup_root)
    assert instance.get_dynamic_partitions("vector_backups") == [backup_set.key]
    metadata = output_metadata(result, "truncate_after_verified_backup")
    assert metadata["backup_performed"].value and metadata["truncate_performed"].value
    assert metadata["backup_partition"].value == backup_set.key
    (record,) = metadata["truncate_results"].records
    assert record.data == {"table": "langchain_pg_embedding", "rows_before": rows, "rows_after": 0}
    assert f"| langchain_pg_embedding | {rows:,} | 0 |" in metadata["summary"].value
    assert f"set `{backup_set.key}`" in metadata["summary"].value
    assert execute(store_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0] == 0
    observation = instance.fetch_observations(dg.AssetKey("langchain_pg_embedding"), limit=1).records[0]
    assert observation.asset_observation.metadata["backup_partition"].value == backup_set.key


def test_truncate_job_failure_names_the_step_and_keeps_the_rows(instance, store_db):
    execute(
        store_db,
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no'; END $$;"
        " CREATE TRIGGER no_truncate BEFORE TRUNCATE ON langchain_pg_embedding EXECUTE FUNCTION refuse();",
    )
    before = rows_as_text(store_db, "langchain_pg_embedding")
    result = run_job(instance, "truncate_vector_tables", "truncate_after_verified_backup", {"dry_run": False})
    assert not result.success
    assert "step 'truncate'" in result.failure_data_for_node("truncate_after_verified_backup").error.message
    assert rows_as_text(store_db, "langchain_pg_embedding") == before


def test_restore_job_replaces_rows_and_observes_the_source_table(instance, store_db, backup_root):
    assert definitions().resolve_job_def("backup_vector_tables").execute_in_process(instance=instance).success
    (backup_set,) = scan_root(backup_root)
    snapshot = rows_as_text(store_db, "langchain_pg_embedding")
    execute(store_db, "DELETE FROM langchain_pg_embedding WHERE id IN (SELECT id FROM langchain_pg_embedding LIMIT 7)")
    result = run_job(instance, "restore_vector_tables", "restore_from_backup_set", {"truncate_before_restore": True, "dry_run": False},
                     partition_key=backup_set.key)
    assert result.success
    assert rows_as_text(store_db, "langchain_pg_embedding") == snapshot
    metadata = output_metadata(result, "restore_from_backup_set")
    restored = {record.data["table"]: record.data for record in metadata["restore_results"].records}
    rows = sum(snapshot.values())
    embeddings = restored["langchain_pg_embedding"]
    assert (embeddings["rows_before"], embeddings["rows_removed"]) == (rows - 7, rows - 7)
    assert (embeddings["rows_loaded"], embeddings["rows_skipped"], embeddings["rows_after"]) == (rows, 0, rows)
    safety_key = metadata["safety_set"].value
    assert safety_key != "none" and f"pre_restore set `{safety_key}`" in metadata["summary"].value
    assert f"| langchain_pg_embedding | {rows - 7:,} | {rows - 7:,} | {rows:,} | 0 | {rows:,} |" in metadata["summary"].value
    observation = instance.fetch_observations(dg.AssetKey("langchain_pg_embedding"), limit=1).records[0].asset_observation
    assert observation.metadata["restored_from"].value == backup_set.key
    assert (observation.metadata["rows_after"].value, observation.metadata["safety_set"].value) == (rows, safety_key)


def test_restore_job_targets_a_declared_database_by_its_name(instance, monkeypatch, store_db, backup_root, second_db):
    assert definitions().resolve_job_def("backup_vector_tables").execute_in_process(instance=instance).success
    (backup_set,) = scan_root(backup_root)
    with psycopg2.connect(second_db) as conn, conn.cursor() as cursor:
        create_tables(cursor)
    conn.close()
    monkeypatch.setenv("SCRATCH_VECTORS_DSN", second_db)
    result = run_job(instance, "restore_vector_tables", "restore_from_backup_set", {"target": "SCRATCH_VECTORS_DSN", "dry_run": False},
                     partition_key=backup_set.key)
    assert result.success
    assert rows_as_text(second_db, "langchain_pg_embedding") == rows_as_text(store_db, "langchain_pg_embedding")


def test_restore_job_refuses_a_dsn_or_an_unknown_table_in_config_before_any_run_exists(instance, store_db, backup_root):
    instance.add_dynamic_partitions("vector_backups", ["20250101_000000"])
    for config in ({"target": "postgresql://admin:hunter2@db.example/vectors"}, {"tables": ["foo"]},
                   {"on_conflict": "overwrite"}):
        with pytest.raises(dg.DagsterInvalidConfigError):
            run_job(instance, "restore_vector_tables", "restore_from_backup_set", config, partition_key="20250101_000000")
    assert instance.get_runs() == []


def test_restore_job_without_a_chosen_set_stops_with_one_line_and_changes_nothing(instance, store_db, backup_root):
    before = rows_as_text(store_db, "langchain_pg_embedding")
    result = run_job(instance, "restore_vector_tables", "restore_from_backup_set", {"truncate_before_restore": True, "dry_run": False})
    assert not result.success
    assert "no backup set chosen: launch restore_vector_tables" in result.failure_data_for_node(
        "restore_from_backup_set").error.message
    assert rows_as_text(store_db, "langchain_pg_embedding") == before


def test_a_replacing_restore_job_names_its_safety_set_and_the_undo(instance, store_db, backup_root):
    assert definitions().resolve_job_def("backup_vector_tables").execute_in_process(instance=instance).success
    (backup_set,) = scan_root(backup_root)
    execute(store_db, "DELETE FROM langchain_pg_embedding WHERE id IN (SELECT id FROM langchain_pg_embedding LIMIT 7)")
    before = rows_as_text(store_db, "langchain_pg_embedding")
    result = run_job(instance, "restore_vector_tables", "restore_from_backup_set", {"truncate_before_restore": True, "dry_run": False},
                     partition_key=backup_set.key)
    assert result.success
    metadata = output_metadata(result, "restore_from_backup_set")
    safety = metadata["safety_set"].value
    assert safety in instance.get_dynamic_partitions("vector_backups")
    assert safety.endswith("__pre_restore")
    assert metadata["undo_cli"].value.startswith(f"vector-assets restore {safety.split('__')[0]} --backup-path vector_bak --replace")
    undo = run_job(instance, "restore_vector_tables", "restore_from_backup_set",
                   {"truncate_before_restore": True, "safety_backup": False, "dry_run": False}, partition_key=safety)
    assert undo.success
    assert rows_as_text(store_db, "langchain_pg_embedding") == before


def test_backup_truncate_restore_prune_and_replication_share_one_pool_limited_to_one():
    job_ops = {"backup_vector_tables": "back_up_tables", "truncate_vector_tables": "truncate_after_verified_backup",
               "restore_vector_tables": "restore_from_backup_set", "prune_vector_backups": "prune_backup_sets",
               "replicate_vector_backups": "replicate_sets", "rekey_vector_backups": "rekey_sets"}
    pools = {job: definitions().resolve_job_def(job).graph.node_named(op).definition.pool for job, op in job_ops.items()}
    assert pools == dict.fromkeys(job_ops, "vector_tables")
    settings = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert "tag_concurrency_limits" not in str(settings.get("run_coordinator", ""))
    with dg.instance_for_test(overrides={"concurrency": settings["concurrency"]}) as instance:
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1


def test_a_truncate_dry_run_job_counts_the_rows_and_changes_nothing(instance, store_db, backup_root):
    before = rows_as_text(store_db, "langchain_pg_embedding")
    result = run_job(instance, "truncate_vector_tables")  # the Launchpad's pre-filled config: a dry run
    assert result.success
    metadata = output_metadata(result, "truncate_after_verified_backup")
    assert metadata["dry_run"].value is True
    assert metadata["rows_to_remove"].value == {"langchain_pg_embedding": 300}
    assert rows_as_text(store_db, "langchain_pg_embedding") == before
    assert list(backup_root.iterdir()) == [] and instance.get_dynamic_partitions("vector_backups") == []
    description = definitions().resolve_job_def("truncate_vector_tables").description
    assert description.startswith("DELETES ROWS") and "write dry_run: false to truncate" in description
