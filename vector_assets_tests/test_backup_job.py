"""The backup job through execute_in_process, on a real Dagster instance, and the checks."""

import uuid

import dagster as dg
import psycopg2
import pytest

from vector_assets.core.sets.catalog import scan_root
from vector_assets_tests.support.dagster import backup_asset_key, definitions
from vector_assets_tests.support.database import execute
from vector_assets_tests.support.files import folder_snapshot, write_tiny_legacy_set

TABLES = ("langchain_pg_collection", "langchain_pg_embedding")


@pytest.fixture
def dagster_env(dagster_instance):
    return dagster_instance


def run_backup_job(instance, run_config=None, raise_on_error=True):
    return definitions().resolve_job_def("backup_vector_tables").execute_in_process(
        instance=instance, run_config=run_config or {}, raise_on_error=raise_on_error
    )


def latest_metadata(instance, table: str) -> dict:
    event = instance.get_latest_materialization_event(backup_asset_key(table))
    return event.asset_materialization


def run_checks(instance, partition_key: str) -> dict[tuple[str, str], object]:
    result = definitions().resolve_job_def("check_vector_backup").execute_in_process(
        instance=instance, partition_key=partition_key, raise_on_error=False
    )
    records = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    evaluations = [record.dagster_event.event_specific_data for record in records]
    return {(ev.asset_key.path[-1], ev.check_name): ev for ev in evaluations}


def test_backup_job_registers_a_partition_with_metadata(dagster_env, backup_root):
    result = run_backup_job(dagster_env)
    assert result.success
    (backup_set,) = scan_root(backup_root)
    assert dagster_env.get_dynamic_partitions("vector_backups") == [backup_set.key]
    for table in TABLES:
        materialization = latest_metadata(dagster_env, table)
        metadata = materialization.metadata
        entry = backup_set.manifest.tables[table]
        assert materialization.partition == backup_set.key
        assert metadata["rows"].value == entry.rows > 0
        assert metadata["bytes"].value == entry.bytes
        assert metadata["sha256"].value == entry.sha256
        assert metadata["path"].value == str(backup_set.csv_path(table))
        assert metadata["consistent_snapshot"].value is True
        assert 0 < entry.copy_seconds <= metadata["set_duration_seconds"].value
        assert metadata["copy_seconds"].value == round(entry.copy_seconds, 3)
        # each table's rate from its own copy time, never the whole set's
        assert metadata["throughput_mb_per_s"].value == round(entry.bytes / 1_000_000 / entry.copy_seconds, 1)


def test_backup_job_writes_into_a_task_folder_and_a_subset_of_tables(dagster_env, backup_root):
    config = {"ops": {"back_up_tables": {"config": {"task_id": "task_20250721_213627", "tables": ["langchain_pg_embedding"]}}}}
    assert run_backup_job(dagster_env, config).success
    (backup_set,) = scan_root(backup_root)
    assert backup_set.location.task_id == "task_20250721_213627"
    assert backup_set.tables == ("langchain_pg_embedding",)
    assert dagster_env.get_latest_materialization_event(backup_asset_key("langchain_pg_collection")) is None


def test_an_unknown_table_is_refused_by_the_config_schema_and_no_run_is_stored(dagster_env, backup_root):
    with pytest.raises(dg.DagsterInvalidConfigError, match="not in enum type ManagedTable got pg_authid"):
        run_backup_job(dagster_env, {"ops": {"back_up_tables": {"config": {"tables": ["pg_authid"]}}}})
    assert dagster_env.get_runs() == [] and folder_snapshot(backup_root) == {}


@pytest.mark.parametrize(
    ("op_config", "named"),
    [({"task_id": "../escape"}, "task id '../escape'"), ({"task_id": "task_20250101_000000\n"}, "task id")],
)
def test_bad_backup_config_fails_clearly_and_writes_nothing(dagster_env, backup_root, op_config, named):
    result = run_backup_job(dagster_env, {"ops": {"back_up_tables": {"config": op_config}}}, raise_on_error=False)
    assert not result.success
    failure = result.failure_data_for_node("back_up_tables")
    assert named in failure.error.message
    assert folder_snapshot(backup_root) == {}
    assert dagster_env.get_dynamic_partitions("vector_backups") == []


def test_checks_pass_on_a_good_set_and_fail_on_a_tampered_one(dagster_env, backup_root):
    assert run_backup_job(dagster_env).success
    (backup_set,) = scan_root(backup_root)
    evaluations = run_checks(dagster_env, backup_set.key)
    quality = evaluations.pop(("langchain_pg_embedding_backup", "vector_data_quality"))
    assert len(evaluations) == 6 and all(ev.passed for ev in evaluations.values())
    # the demo store's '' and NULL documents: a warning beside the file checks, never a failed verification
    assert not quality.passed and quality.severity == dg.AssetCheckSeverity.WARN and "2 empty documents" in quality.description

    path = backup_set.csv_path("langchain_pg_embedding")
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines + [lines[-1].replace(b"-sql", b"-sqx", 1)]))
    evaluations = run_checks(dagster_env, backup_set.key)
    assert evaluations[("langchain_pg_collection_backup", "sha256_matches_manifest")].passed
    sha = evaluations[("langchain_pg_embedding_backup", "sha256_matches_manifest")]
    rows = evaluations[("langchain_pg_embedding_backup", "row_count_matches_manifest")]
    assert not sha.passed and path.name in sha.description
    assert not rows.passed and "manifest says" in rows.description

    path.unlink()
    evaluations = run_checks(dagster_env, backup_set.key)
    present = evaluations[("langchain_pg_embedding_backup", "file_present")]
    assert not present.passed and path.name in (present.description or "")


def test_password_in_dsn_is_nowhere_in_run_config_events_or_files(monkeypatch, store_db, backup_root):
    secret = "pw-Zq9-never-shown"
    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", f"{store_db} password={secret}")
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", str(backup_root))
    with dg.instance_for_test() as instance:
        result = run_backup_job(instance)
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        assert secret not in repr(run.run_config)
        records = instance.get_records_for_run(result.run_id).records
        assert records and all(secret not in repr(record.event_log_entry) for record in records)
    for content in folder_snapshot(backup_root).values():
        assert secret.encode() not in content


@pytest.fixture
def role_without_embeddings(store_db):
    """A role that may read the collections but not the embeddings."""
    role = f"va_no_embeddings_{uuid.uuid4().hex[:8]}"
    database = psycopg2.extensions.parse_dsn(store_db)["dbname"]
    execute(store_db, f'CREATE ROLE "{role}" LOGIN')
    execute(store_db, f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"')
    execute(store_db, f'GRANT SELECT ON langchain_pg_collection TO "{role}"')
    params = psycopg2.extensions.parse_dsn(store_db)
    params["user"] = role
    yield psycopg2.extensions.make_dsn(**params)
    execute(store_db, f'DROP OWNED BY "{role}"')
    execute(store_db, f'DROP ROLE "{role}"')


def test_a_permanent_database_error_fails_the_backup_once_with_our_message_and_no_retry(
    dagster_env, role_without_embeddings, backup_root, monkeypatch
):
    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", role_without_embeddings)
    result = run_backup_job(dagster_env, raise_on_error=False)
    assert not result.success
    failure = result.failure_data_for_node("back_up_tables")
    assert failure.error.message.startswith("dagster._core.definitions.events.Failure: backup failed: the database refused")
    assert "permission denied for table langchain_pg_embedding" in failure.error.message
    assert failure.user_failure_data.metadata["error_type"].value == "DatabaseError"
    assert failure.user_failure_data.metadata["retryable"].value is False
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert scan_root(backup_root) == [] and [p for p in backup_root.rglob("*") if p.is_file()] == []


def test_a_legacy_sets_sha256_check_is_a_warning_that_nothing_was_compared(dagster_env, backup_root):
    write_tiny_legacy_set(backup_root / "task_20250721_213627" / "vector_bak", "20250721_213627")
    dagster_env.add_dynamic_partitions("vector_backups", ["20250721_213627"])
    evaluations = run_checks(dagster_env, "20250721_213627")
    for table in TABLES:
        sha = evaluations[(f"{table}_backup", "sha256_matches_manifest")]
        assert not sha.passed and sha.severity == dg.AssetCheckSeverity.WARN
        assert sha.description.startswith("no checksum recorded: counted rows only")
        assert evaluations[(f"{table}_backup", "row_count_matches_manifest")].passed
