"""An object-store root under faults: wrong credentials, an unknown bucket or container, an
unreachable or stopped server, a backup killed mid-upload or around its manifest. Each error is
typed, names the bucket and key and the provider's own variables, and says whether retrying may
help; nothing is left half-written, and nothing complete is left hidden."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from dataclasses import dataclass

import pytest

from vector_assets.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_RETRYABLE, main
from vector_assets.core.errors import ObjectStoreUnreachableError
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.prune import PruneRequest, run_prune
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets.core.sets.catalog import scan_root
from vector_assets.core.sets.retention import RetentionPolicy
from vector_assets_tests.support.dagster import Ticker, run_job
from vector_assets_tests.support.database import execute, fill_store, tables_now
from vector_assets_tests.support.faults import (
    REPO,
    advisory_lock,
    fault_while_waiting,
    restore_in_child,
)
from vector_assets_tests.support.http_proxy import CuttingProxy, Trap
from vector_assets_tests.support.object_store import AZURITE_KEY, start_moto, wrong_azure_key
from vector_assets_tests.test_cli import CLI, cli_environment

TS = "20250301_020000"
WRONG_SECRET = "Wrong-Secret-Hunter2x-SeaLion9"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_wrong_credentials_fail_once_with_one_line_naming_the_bucket_and_key(
    s3_root, store_db, monkeypatch, capsys, dagster_instance
):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", WRONG_SECRET)
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", s3_root.url)

    assert main(["backup"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SignatureDoesNotMatch" in err and "AWS_SECRET_ACCESS_KEY" in err
    assert f"{s3_root.url}/vector_bak/" in err and WRONG_SECRET not in err

    result = run_job(dagster_instance, "backup_vector_tables")
    assert not result.success
    message = result.failure_data_for_node("back_up_tables").error.message
    assert s3_root.bucket in message and WRONG_SECRET not in message
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert s3_root.names() == set()


def test_an_unknown_bucket_is_named_and_not_retryable(s3_root, monkeypatch, capsys):
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", "s3://no-such-bucket-va/rag-backups")
    assert main(["list"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "bucket 'no-such-bucket-va' does not exist" in err and err.count("\n") == 1


def test_an_unreachable_endpoint_is_retryable_and_named(s3_root, store_db, monkeypatch, capsys):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", s3_root.url)
    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", store_db)
    assert main(["backup"]) == EXIT_RETRYABLE
    err = capsys.readouterr().err
    assert f"{s3_root.url}/vector_bak/" in err and endpoint in err and "unreachable" in err


@pytest.fixture
def own_s3_endpoint(s3_server, s3_root, monkeypatch):
    """A second moto server on the same in-process backend (same buckets and keys), which the
    test may stop; the product is pointed at it."""
    server = start_moto()
    port = server.get_host_and_port()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    state = {"server": server, "port": port}
    yield state
    state["server"].stop()


def hold_collection_inserts(dsn: str) -> None:
    """A row trigger that waits for the test's advisory lock: the restore parks inside the
    collection COPY, before it opens the embedding object."""
    execute(
        dsn,
        "CREATE FUNCTION wait_for_s3_fault() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN PERFORM pg_advisory_xact_lock_shared(7350001); RETURN NEW; END $$;"
        " CREATE TRIGGER wait_for_s3_fault BEFORE INSERT ON langchain_pg_collection"
        " FOR EACH ROW EXECUTE FUNCTION wait_for_s3_fault();",
    )


@pytest.mark.faults
def test_the_server_stopped_mid_restore_rolls_back_with_a_retryable_error(own_s3_endpoint, s3_root, store_db):
    run_backup(BackupRequest(dsn=store_db, root=s3_root.url, timestamp=TS))
    execute(store_db, "DELETE FROM langchain_pg_embedding WHERE id IN (SELECT id FROM langchain_pg_embedding LIMIT 10)")
    before = tables_now(store_db)
    hold_collection_inserts(store_db)
    request = RestoreRequest(fire_triggers=True, target_dsn=store_db, root=s3_root.url, timestamp=TS, truncate_before_restore=True)
    holder = advisory_lock(store_db)
    stop = lambda pid: own_s3_endpoint["server"].stop()
    with fault_while_waiting(store_db, 'COPY "langchain_pg_collection"', stop, holder.close):
        error = restore_in_child(request)

    assert error is not None and error.error_type == ObjectStoreUnreachableError.__name__, error
    assert error.retryable and s3_root.bucket in str(error)
    assert tables_now(store_db) == before

    own_s3_endpoint["server"] = start_moto(own_s3_endpoint["port"])
    execute(store_db, "DROP TRIGGER wait_for_s3_fault ON langchain_pg_collection")
    run_restore(request)
    assert tables_now(store_db) != before
    assert execute(store_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0] == sum(
        before["langchain_pg_embedding"].values()) + 10


def grow_embeddings(dsn: str, rows: int) -> None:
    """About 4 KB a row: enough for several multipart parts."""
    execute(
        dsn,
        "INSERT INTO langchain_pg_embedding (id, collection_id, embedding, document, cmetadata)"
        " SELECT 'bulk-' || g, (SELECT uuid FROM langchain_pg_collection LIMIT 1),"
        " (SELECT array_agg(random())::vector FROM generate_series(1, 384)), 'bulk', '{}'::jsonb"
        " FROM generate_series(1, %s) AS g",
        (rows,),
    )


@pytest.mark.faults
def test_a_backup_stopped_mid_upload_leaves_no_set_and_no_multipart_upload(s3_root, empty_db, tmp_path):
    fill_store(empty_db, embeddings=10)
    grow_embeddings(empty_db, 12_000)
    environment = {**os.environ, "VECTOR_ASSETS_PG_DSN": empty_db, "VECTOR_ASSETS_ROOT": s3_root.url}
    with open(tmp_path / "cli.out", "wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "vector_assets.cli", "backup"], cwd=REPO, env=environment,
                                   stdout=output, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while not s3_root.multipart_uploads() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            assert s3_root.multipart_uploads(), f"no multipart upload seen; {(tmp_path / 'cli.out').read_text()}"
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == EXIT_INTERRUPTED, (tmp_path / "cli.out").read_text()
        finally:
            if process.poll() is None:
                process.kill()
    assert s3_root.multipart_uploads() == []
    assert s3_root.names() == set()
    assert scan_root(s3_root.url) == []


@pytest.fixture
def trapping_proxy(s3_server):
    """The S3 server behind a proxy that can stop one request, reached through AWS_ENDPOINT_URL."""
    proxy = CuttingProxy(s3_server.endpoint).start()
    yield proxy
    proxy.stop()


def backup_killed_at(s3_root, store_db: str, proxy: CuttingProxy, set_trap) -> str:
    """A CLI backup through the proxy, killed (SIGKILL) when ``set_trap`` springs, its request
    never reaching the server; the timestamp of the set it was writing."""
    environment = {**cli_environment(store_db, s3_root.url), **s3_root.s3.environment(), "AWS_ENDPOINT_URL": proxy.endpoint}
    process = subprocess.Popen([CLI, "backup"], env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    trap: Trap = set_trap(lambda: os.kill(process.pid, signal.SIGKILL))
    _, err = process.communicate(timeout=120)
    assert process.returncode == -signal.SIGKILL and trap.sprung == 1, err
    (marker,) = [name for name in s3_root.names() if name.endswith(".json.tmp")]
    return marker.removeprefix("vector_backup_").removesuffix(".json.tmp")


def test_a_backup_killed_before_its_manifest_stays_hidden_behind_its_marker(
    s3_root, store_db, trapping_proxy, dagster_instance, monkeypatch, capsys
):
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", s3_root.url)
    killed = backup_killed_at(s3_root, store_db, trapping_proxy,
                              lambda spring: trapping_proxy.trap_put(".json", forward=False, spring=spring))

    # both CSVs are uploaded: without the marker they would pass for a legacy set
    assert s3_root.names() >= {f"langchain_pg_collection_{killed}.csv", f"langchain_pg_embedding_{killed}.csv",
                               f"vector_backup_{killed}.json.tmp"}
    assert f"vector_backup_{killed}.json" not in s3_root.names()
    assert scan_root(s3_root.url) == []
    assert main(["list", "--json"]) == 0 and killed not in capsys.readouterr().out
    ticker = Ticker(dagster_instance)
    ticker.tick()
    assert ticker.partitions == []


def test_a_failed_backup_killed_during_its_cleanup_leaves_its_files_hidden_behind_the_marker(
    s3_root, store_db, trapping_proxy, monkeypatch, capsys
):
    """The cleanup deletes the marker last: cut short, it leaves data files hidden, never a CSV
    pair that passes for a complete legacy set."""
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", s3_root.url)
    key_id, secret = s3_root.s3.user_denied(s3_root.bucket, "rag-backups/vector_bak/vector_backup_*.json")
    environment = {**cli_environment(store_db, s3_root.url), **s3_root.s3.environment(),
                   "AWS_ENDPOINT_URL": trapping_proxy.endpoint, "AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret}
    process = subprocess.Popen([CLI, "backup"], env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    trap = trapping_proxy.trap_delete(".csv", forward=False, spring=lambda: os.kill(process.pid, signal.SIGKILL))
    _, err = process.communicate(timeout=120)
    assert process.returncode == -signal.SIGKILL and trap.sprung == 1, err

    (marker,) = [name for name in s3_root.names() if name.endswith(".json.tmp")]
    killed = marker.removeprefix("vector_backup_").removesuffix(".json.tmp")
    assert {f"langchain_pg_collection_{killed}.csv", f"langchain_pg_embedding_{killed}.csv"} & s3_root.names()
    assert f"vector_backup_{killed}.json" not in s3_root.names()
    assert scan_root(s3_root.url) == []
    assert main(["list", "--json"]) == 0 and killed not in capsys.readouterr().out


def test_a_backup_killed_after_its_manifest_is_listed_found_restored_and_pruned_whole(
    s3_root, store_db, second_db, trapping_proxy, dagster_instance, monkeypatch, capsys
):
    """The marker's DELETE never reaches the server: the set is complete, its marker left beside
    its manifest, and every command takes it for what it is."""
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", s3_root.url)
    killed = backup_killed_at(s3_root, store_db, trapping_proxy,
                              lambda spring: trapping_proxy.trap_delete(".json.tmp", forward=False, spring=spring))
    assert {f"vector_backup_{killed}.json", f"vector_backup_{killed}.json.tmp"} <= s3_root.names()

    assert [backup_set.timestamp for backup_set in scan_root(s3_root.url)] == [killed]
    assert main(["list", "--json"]) == 0 and killed in capsys.readouterr().out
    ticker = Ticker(dagster_instance)
    ticker.tick()
    assert ticker.partitions == [killed]
    run_restore(RestoreRequest(target_dsn=second_db, root=s3_root.url, timestamp=killed, safety_backup=False))
    assert tables_now(second_db) == tables_now(store_db)

    newer = run_backup(BackupRequest(dsn=store_db, root=s3_root.url))  # the same day, a later second
    pruned = run_prune(PruneRequest(root=s3_root.url, policy=RetentionPolicy(1, 0, 0), dry_run=False))

    assert list(pruned.removed_keys) == [killed]
    assert not [name for name in s3_root.names() if killed in name]
    (kept,) = scan_root(s3_root.url)
    assert kept.timestamp == newer.timestamp
    assert s3_root.names() == set(kept.all_stored_files()) | {f"vector_backup_{newer.timestamp}.json", "vector_backup_log.txt"}


def test_a_truncate_whose_upload_is_refused_truncates_nothing_and_leaves_no_object(s3_root, store_db, monkeypatch, capsys):
    key_id, secret = s3_root.s3.user_denied(s3_root.bucket, "rag-backups/vector_bak/langchain_pg_embedding_*")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", s3_root.url)
    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", store_db)
    before = tables_now(store_db)

    assert main(["truncate", "--apply"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "nothing was truncated" in err and "langchain_pg_embedding_" in err and "AccessDenied" in err
    assert tables_now(store_db) == before
    assert s3_root.names() == set() and s3_root.multipart_uploads() == []


@dataclass(frozen=True)
class ProviderFacts:
    """What an operator of each provider sets, and what its server answers a wrong key with."""

    secret_variable: str
    wrong_secret: str
    refusal: str
    endpoint_variable: str
    container: str  # what the provider calls the URL's first part
    foreign_prefix: str  # the other provider's variables, which no message of this one names


FACTS = {
    "s3": ProviderFacts("AWS_SECRET_ACCESS_KEY", WRONG_SECRET, "SignatureDoesNotMatch", "AWS_ENDPOINT_URL",
                        "bucket", "AZURE_"),
    "azure": ProviderFacts("AZURE_STORAGE_ACCOUNT_KEY", wrong_azure_key(), "AuthorizationFailure",
                           "AZURE_STORAGE_ENDPOINT", "container", "AWS_"),
}


def test_a_refused_key_fails_once_in_one_line_naming_the_providers_variables_and_nothing_is_written(
    object_root, store_db, monkeypatch, capsys, dagster_instance
):
    facts = FACTS[object_root.kind]
    monkeypatch.setenv(facts.secret_variable, facts.wrong_secret)
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", object_root.url)
    before = tables_now(store_db)

    assert main(["truncate", "--apply"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{object_root.url}/vector_bak/" in err, err
    assert facts.refusal in err and facts.secret_variable in err and facts.foreign_prefix not in err, err
    assert facts.wrong_secret not in err and facts.wrong_secret[:8] not in err

    result = run_job(dagster_instance, "backup_vector_tables")
    assert not result.success
    message = result.failure_data_for_node("back_up_tables").error.message
    assert object_root.bucket in message and facts.secret_variable in message and facts.wrong_secret not in message
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert tables_now(store_db) == before
    assert object_root.names() == set() and object_root.multipart_uploads() == []


def test_a_missing_bucket_or_container_is_named_with_the_providers_endpoint_and_nothing_is_truncated(
    object_root, store_db, monkeypatch, capsys
):
    facts = FACTS[object_root.kind]
    missing = object_root.url.replace(object_root.bucket, "no-such-place-va", 1)
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", missing)
    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", store_db)
    before = tables_now(store_db)

    assert main(["truncate", "--apply"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"the {facts.container} 'no-such-place-va' does not exist" in err, err
    assert f"from {facts.endpoint_variable}" in err and facts.foreign_prefix not in err, err
    assert tables_now(store_db) == before
    assert object_root.names() == set()


def test_an_azure_root_on_the_emulator_switch_backs_up_and_names_azurites_endpoint_variable(
    az_root, azure_server, store_db, monkeypatch, capsys
):
    """With AZURE_STORAGE_USE_EMULATOR obstore ignores AZURE_STORAGE_ENDPOINT and goes to
    AZURITE_BLOB_STORAGE_URL with the emulator's own account; an error names that variable."""
    monkeypatch.delenv("AZURE_STORAGE_ENDPOINT")
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_KEY")
    monkeypatch.setenv("AZURE_STORAGE_USE_EMULATOR", "true")
    monkeypatch.setenv("AZURITE_BLOB_STORAGE_URL", azure_server.endpoint)
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", az_root.url)
    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", store_db)

    assert main(["backup"]) == 0
    (made,) = scan_root(az_root.url)
    assert f"vector_backup_{made.timestamp}.json" in az_root.names()

    monkeypatch.setenv("VECTOR_ASSETS_ROOT", "az://no-such-place-va/rag-backups")
    assert main(["list"]) == EXIT_FAILED
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "the container 'no-such-place-va' does not exist" in err, err
    assert f"endpoint {azure_server.endpoint} from AZURITE_BLOB_STORAGE_URL" in err and AZURITE_KEY not in err, err


def test_a_gcs_root_that_cannot_be_reached_names_googles_endpoint_variable_not_aws(s3_server, monkeypatch, capsys):
    """No GCS server runs here (none speaks the XML API the client uses), so only the error path
    is tested: with an S3 endpoint set too, a gs:// root's error names GOOGLE_BASE_URL alone."""
    endpoint = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("GOOGLE_BASE_URL", endpoint)
    monkeypatch.setenv("GOOGLE_SKIP_SIGNATURE", "true")  # no credentials to look for on a metadata server
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", "gs://va-bucket/rag-backups")
    assert main(["list"]) == EXIT_RETRYABLE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"endpoint {endpoint} from GOOGLE_BASE_URL" in err, err
    assert "AWS_" not in err and s3_server.endpoint not in err, err
