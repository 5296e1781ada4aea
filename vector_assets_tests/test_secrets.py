"""No part of a password leaks, whatever the DSN looks like, and a refused login is not retried.

libpq quotes the fragment it chokes on, and reads an unencoded '/' or '@' in a URL's password as
the start of the host, port or database; our messages must never echo any of it.
"""

from pathlib import Path

import dagster as dg
import psycopg2
import pytest
from psycopg2 import sql

from vector_assets.cli import main
from vector_assets_tests.support.dagster import run_job
from vector_assets_tests.support.database import dsn_for, execute
from vector_assets_tests.support.files import folder_snapshot

FRAGMENTS = ("Hunter2x", "SeaLion9")
MALFORMED_DSNS = {
    "slash in a URL password": "postgresql://backup_user:Hunter2x/SeaLion9@127.0.0.1:1/rag",
    "two @ in a URL": "postgresql://backup_user:Hunter2x@SeaLion9@127.0.0.1:1/rag",
    "bad percent escape": "postgresql://backup_user:Hunter2x%zzSeaLion9@127.0.0.1:1/rag",
    "unquoted space": "host=127.0.0.1 port=1 user=backup_user password=Hunter2x SeaLion9 dbname=rag",
    "unterminated quote": "host=127.0.0.1 port=1 user=backup_user password='Hunter2x SeaLion9 dbname=rag",
}


def leaked(text: str) -> list[str]:
    return [fragment for fragment in FRAGMENTS if fragment in text]


@pytest.mark.parametrize("dsn", MALFORMED_DSNS.values(), ids=MALFORMED_DSNS.keys())
def test_a_malformed_dsn_is_refused_without_echoing_any_part_of_it_in_the_cli(dsn, backup_root, monkeypatch, capsys):
    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", dsn)
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", str(backup_root))
    assert main(["backup"]) == 2
    out, err = capsys.readouterr()
    assert "malformed" in err and err.count("\n") == 1
    assert leaked(out + err) == []
    assert folder_snapshot(backup_root) == {}


@pytest.mark.parametrize("dsn", MALFORMED_DSNS.values(), ids=MALFORMED_DSNS.keys())
def test_a_malformed_dsn_fails_the_backup_job_once_without_echoing_any_part_of_it(dsn, dagster_instance, monkeypatch):
    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", dsn)
    result = run_job(dagster_instance, "backup_vector_tables")
    assert not result.success
    assert "malformed" in result.failure_data_for_node("back_up_tables").error.message
    logged = " ".join(str(record.dagster_event or record.user_message) for record in dagster_instance.all_logs(result.run_id))
    assert leaked(logged) == []
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]


@pytest.fixture
def password_role(maintenance_dsn):
    """A role that must give its password: a scram line for it heads pg_hba.conf while the test runs."""
    role, password = "va_password_role", "Right-Hunter2x"
    hba = Path(execute(maintenance_dsn, "SHOW hba_file")[0][0])
    original = hba.read_text()
    execute(maintenance_dsn, sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
        sql.Identifier(role), sql.Literal(password)).as_string(psycopg2.connect(maintenance_dsn)))
    hba.write_text(f"local all {role} scram-sha-256\nhost all {role} 127.0.0.1/32 scram-sha-256\n" + original)
    execute(maintenance_dsn, "SELECT pg_reload_conf()")
    try:
        yield role, password
    finally:
        hba.write_text(original)
        execute(maintenance_dsn, "SELECT pg_reload_conf()")
        execute(maintenance_dsn, f"DROP ROLE IF EXISTS {role}")


def test_a_wrong_password_is_a_refused_login_not_an_unreachable_server_and_is_not_retried(
    password_role, maintenance_dsn, backup_root, monkeypatch, capsys
):
    role, _ = password_role
    params = psycopg2.extensions.parse_dsn(dsn_for(maintenance_dsn, "postgres"))
    params.update(user=role, password="Wrong-SeaLion9")
    wrong = psycopg2.extensions.make_dsn(**params)
    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", wrong)
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", str(backup_root))

    assert main(["backup"]) == 2
    err = capsys.readouterr().err
    assert "refused the login" in err and "password authentication failed" in err
    assert "cannot connect" not in err and "SeaLion9" not in err

    with dg.instance_for_test() as instance:
        result = run_job(instance, "backup_vector_tables")
    assert not result.success
    assert "refused the login" in result.failure_data_for_node("back_up_tables").error.message
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]


def test_the_s3_secret_key_is_in_no_event_run_config_metadata_or_object(s3_root, store_db, monkeypatch):
    """Backup, sensor, checks, restore and a failing run on an S3 root: the secret key appears nowhere."""
    from vector_assets_tests.support.dagster import Ticker

    secret = s3_root.s3.secret_key
    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", store_db)
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", s3_root.url)
    with dg.instance_for_test() as instance:
        backup = run_job(instance, "backup_vector_tables")
        key = instance.get_dynamic_partitions("vector_backups")[0]
        Ticker(instance).tick()
        checks = run_job(instance, "check_vector_backup", partition_key=key)
        restore = run_job(instance, "restore_vector_tables", "restore_from_backup_set",
                          {"truncate_before_restore": True, "dry_run": False}, partition_key=key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "Wrong-" + secret[:8])
        refused = run_job(instance, "backup_vector_tables")
        assert backup.success and checks.success and restore.success and not refused.success
        runs = instance.get_runs()
        logged = " ".join(
            str(record.dagster_event or record.user_message) for run in runs for record in instance.all_logs(run.run_id)
        )
        configs = " ".join(str(run.run_config) + str(run.tags) for run in runs)
        materialized = instance.fetch_materializations(
            dg.AssetKey("langchain_pg_embedding_backup"), limit=10
        ).records
    metadata = " ".join(str(record.asset_materialization.metadata) for record in materialized)
    assert materialized and s3_root.url in metadata
    for text in (logged, configs, metadata):
        assert secret not in text and secret[:8] not in text
    assert secret.encode() not in s3_root.all_bytes()


def test_a_stores_age_identity_is_in_no_event_run_config_metadata_message_or_file(
    tmp_path, store_db, backup_root, monkeypatch, capsys
):
    """A store with keys of its own (encrypt_to, identity_file_env in its defs.yaml): backup, file
    and content checks, restore, refused restores (a wrong key, the key itself where its path
    belongs) and rekey, by the jobs and the CLI: the identity appears nowhere, nor its path in
    any run's config or tags."""
    from vector_assets.definitions import defs as load_definitions
    from vector_assets_tests.support.age import make_key
    from vector_assets_tests.test_declared_stores import declare

    key, wrong, new = (make_key(tmp_path / "keys", name) for name in ("docs", "wrong", "new"))
    declare(tmp_path / "stores", "docs", dsn_env="DOCS_PG_DSN", layout="langchain", format="csv.zst",
            encrypt_to=key.recipient, identity_file_env="DOCS_AGE_IDENTITY")
    for variable, value in {"VECTOR_ASSETS_STORES_DIR": str(tmp_path / "stores"), "VECTOR_ASSETS_ROOT": str(backup_root),
                            "DOCS_PG_DSN": store_db, "DOCS_AGE_IDENTITY": str(key.identity_file)}.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.delenv("VECTOR_ASSETS_PG_DSN", raising=False)
    defs = load_definitions()
    restore_config = {"ops": {"docs_restore_from_backup_set": {"config": {"truncate_before_restore": True, "dry_run": False}}}}
    refusals = []
    with dg.instance_for_test() as instance:
        def run(job: str, **kwargs):
            return defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False, **kwargs)

        assert run("docs_backup_vector_tables").success
        (partition,) = instance.get_dynamic_partitions("docs_vector_backups")
        assert run("docs_check_vector_backup", partition_key=partition).success
        assert run("docs_restore_vector_tables", partition_key=partition, run_config=restore_config).success
        for identity in (str(wrong.identity_file), key.secret()):
            monkeypatch.setenv("DOCS_AGE_IDENTITY", identity)
            refused = run("docs_restore_vector_tables", partition_key=partition, run_config=restore_config)
            assert not refused.success
            refusals.append(refused.failure_data_for_node("docs_restore_from_backup_set").error.message)
            assert main(["restore", "latest", "--store", "docs", "--apply"]) == 2
        monkeypatch.setenv("DOCS_AGE_IDENTITY", str(key.identity_file))
        rekey = run("docs_rekey_vector_backups", run_config={"ops": {"docs_rekey_sets": {"config": {
            "to": new.recipient, "dry_run": False}}}})
        assert rekey.success
        assert main(["list", "--store", "docs"]) == 0
        runs = instance.get_runs()
        logged = " ".join(
            str(record.dagster_event or record.user_message) for run in runs for record in instance.all_logs(run.run_id)
        )
        configs = " ".join(str(run.run_config) + str(run.tags) for run in runs)
        metadata = " ".join(
            str(record.asset_materialization.metadata) for table in ("langchain_pg_collection", "langchain_pg_embedding")
            for record in instance.fetch_materializations(dg.AssetKey(["docs", f"{table}_backup"]), limit=10).records
        )
    printed = capsys.readouterr()
    assert "DOCS_AGE_IDENTITY" in refusals[0] and "holds an age identity itself" in refusals[1]
    assert metadata and "DOCS_AGE_IDENTITY" in printed.err
    secret = key.secret()
    body = secret.removeprefix("AGE-SECRET-KEY-1")[:16]  # any recognisable part of it
    for text in (logged, configs, metadata, printed.out + printed.err, " ".join(refusals)):
        assert secret not in text and body not in text
    assert str(key.identity_file) not in configs
    assert body.encode() not in b"".join(path.read_bytes() for path in backup_root.rglob("*") if path.is_file())
