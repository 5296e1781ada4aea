"""Alerts reach a real local webhook: a failed run and a failed check, never the URL itself."""

import socket
from datetime import datetime, timedelta

import dagster as dg
import psycopg2
import pytest

from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.sets.naming import csv_file_name, new_timestamp
from vector_assets.core.tables import EMBEDDING_TABLE
from vector_assets.dev.demo import write_legacy_set
from vector_assets_tests.support.dagster import Ticker, definitions, run_job
from vector_assets_tests.support.webhook import webhook_receiver

UI_URL = "http://dagster.example:3000"


@pytest.fixture
def receiver(monkeypatch):
    with webhook_receiver() as receiver:
        monkeypatch.setenv("VECTOR_ASSETS_ALERT_WEBHOOK", receiver.url)
        monkeypatch.setenv("VECTOR_ASSETS_UI_URL", UI_URL)
        yield receiver


@pytest.fixture
def damaged_set(dagster_instance, store_db, backup_root) -> str:
    made = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    dagster_instance.add_dynamic_partitions("vector_backups", [made.timestamp])
    path = made.paths["langchain_pg_embedding"]
    path.write_bytes(path.read_bytes().replace(b"a", b"b", 1))
    return made.timestamp


def evaluate_failure_sensor(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> None:
    context = dg.build_run_status_sensor_context(
        sensor_name="vector_alert_sensor", dagster_instance=instance, dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
    )
    definitions().resolve_sensor_def("vector_alert_sensor")(context.for_run_failure())


def all_log_text(instance: dg.DagsterInstance, run_id: str) -> str:
    return "\n".join(record.user_message for record in instance.all_logs(run_id))


def test_a_failed_check_and_the_failed_run_post_job_set_error_and_link(dagster_instance, damaged_set, receiver):
    result = run_job(dagster_instance, "check_vector_backup", partition_key=damaged_set)
    assert not result.success
    (check_text,) = receiver.texts
    evaluate_failure_sensor(dagster_instance, result)

    run_text = receiver.texts[1]
    link = f"{UI_URL}/runs/{result.run_id}"
    assert check_text.startswith("check langchain_pg_embedding sha256_matches_manifest failed in check_vector_backup")
    assert f"(set {damaged_set})" in check_text and check_text.endswith(link) and "sha256" in check_text
    assert run_text.startswith(f"check_vector_backup failed (set {damaged_set}): set {damaged_set} failed verification")
    assert run_text.endswith(link) and len(run_text.splitlines()) == 2
    assert receiver.url not in all_log_text(dagster_instance, result.run_id)


def test_a_failed_backup_run_posts_with_no_set(dagster_instance, receiver, monkeypatch, tmp_path):
    not_a_folder = tmp_path / "a_file"
    not_a_folder.write_text("")
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", str(not_a_folder))
    result = run_job(dagster_instance, "backup_vector_tables")
    assert not result.success

    evaluate_failure_sensor(dagster_instance, result)

    (text,) = receiver.texts
    assert text.startswith("backup_vector_tables failed (set none): backup failed: ")
    assert "\n" + UI_URL + "/runs/" + result.run_id in text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_webhook_is_a_warning_that_never_fails_the_run_nor_names_the_url(
    dagster_instance, damaged_set, monkeypatch
):
    secret_url = f"http://127.0.0.1:{free_port()}/hooks/secret-token-123"
    monkeypatch.setenv("VECTOR_ASSETS_ALERT_WEBHOOK", secret_url)

    result = run_job(dagster_instance, "check_vector_backup", partition_key=damaged_set)

    warnings = [
        r.user_message for r in dagster_instance.all_logs(result.run_id) if r.level == 30  # logging.WARNING
    ]
    assert any(w.startswith("alert not delivered (the webhook could not be reached") for w in warnings)
    assert "secret-token-123" not in all_log_text(dagster_instance, result.run_id)
    # the run fails for the damaged set alone, as it would without alerts
    assert "failed verification" in result.failure_data_for_node("verify_backup_set").error.message


def test_a_successful_run_posts_nothing(dagster_instance, receiver):
    assert run_job(dagster_instance, "backup_vector_tables").success
    assert receiver.messages == []


@pytest.fixture
def set_that_drills_wrong(dagster_instance, store_db, backup_root) -> str:
    """A legacy set whose embedding file was edited by hand: it loads, but its rows do not come
    back as written (pgvector drops the added space), so the drill's comparison fails."""
    key = "20250102_000000"
    conn = psycopg2.connect(store_db)
    try:
        write_legacy_set(conn, backup_root / "vector_bak", key)
    finally:
        conn.close()
    path = backup_root / "vector_bak" / csv_file_name(EMBEDDING_TABLE, key)
    path.write_text(path.read_text(encoding="utf-8").replace('"[', '"[ ', 1), encoding="utf-8")
    dagster_instance.add_dynamic_partitions("vector_backups", [key])
    return key


def test_a_failed_drill_posts_one_message_for_its_check_and_one_for_its_run(
    dagster_instance, set_that_drills_wrong, receiver
):
    key = set_that_drills_wrong
    result = run_job(dagster_instance, "drill_vector_backup", partition_key=key)
    assert not result.success
    (check_text,) = receiver.texts  # the restore time was within its target: no restore_rto message
    evaluate_failure_sensor(dagster_instance, result)

    assert len(receiver.texts) == 2
    run_text = receiver.texts[1]
    link = f"{UI_URL}/runs/{result.run_id}"
    assert check_text.startswith(f"check langchain_pg_embedding restore_drill failed in drill_vector_backup (set {key}): ")
    assert "differ from the file" in check_text and check_text.endswith("\n" + link)
    assert len(check_text.splitlines()) == 2
    assert run_text.startswith(f"drill_vector_backup failed (set {key}): restore drill of set {key} failed")
    assert run_text.endswith("\n" + link) and len(run_text.splitlines()) == 2
    assert receiver.url not in all_log_text(dagster_instance, result.run_id)


def freshness_sensor_tick(instance: dg.DagsterInstance) -> dg.SensorResult:
    """One vector_freshness_sensor tick, its evaluations recorded as the daemon records them."""
    result = definitions().resolve_sensor_def("vector_freshness_sensor").evaluate_tick(dg.build_sensor_context(instance=instance, definitions=definitions()))
    for event in result.asset_events:
        instance.report_runless_asset_event(event)
    return result


def assert_one_stale_message_per_asset(texts: list[str], sensor: str, key: str, age: str) -> None:
    """Each message: the check, the sensor that recorded it (there is no run), the set and its age
    in one line, then a link to the asset's checks."""
    assert sorted(text.split(" failed in ")[0] for text in texts) == [
        "check langchain_pg_collection_backup freshness_check", "check langchain_pg_embedding_backup freshness_check",
    ]
    for text in texts:
        line, link = text.split("\n")
        asset = line.split()[1]
        assert line.startswith(f"check {asset} freshness_check failed in {sensor} (set {key}): stale: the newest set {key} is {age}")
        assert "over VECTOR_ASSETS_BACKUP_MAX_AGE" in line and link == f"{UI_URL}/assets/{asset}?view=checks"


def test_a_stale_backup_found_by_the_scan_posts_one_message_per_asset_and_no_more_on_later_ticks(
    dagster_instance, store_db, backup_root, receiver
):
    old = run_backup(BackupRequest(
        dsn=store_db, root=backup_root, timestamp=new_timestamp(datetime.now() - timedelta(hours=30))
    )).timestamp
    ticker = Ticker(dagster_instance)

    ticker.tick()  # vector_bak_sensor registers the set and records both backups stale

    assert_one_stale_message_per_asset(receiver.texts, "vector_bak_sensor", old, "30h")
    for _ in range(2):  # still stale, nothing new: no second message
        ticker.tick()
        freshness_sensor_tick(dagster_instance)
    assert len(receiver.texts) == 2


def test_a_backup_going_stale_posts_one_message_per_asset_from_the_freshness_sensor(
    dagster_instance, store_db, backup_root, receiver, monkeypatch
):
    made = run_backup(BackupRequest(
        dsn=store_db, root=backup_root, timestamp=new_timestamp(datetime.now() - timedelta(hours=20))
    )).timestamp
    Ticker(dagster_instance).tick()
    assert freshness_sensor_tick(dagster_instance).asset_events == [] and receiver.messages == []  # fresh

    monkeypatch.setenv("VECTOR_ASSETS_BACKUP_MAX_AGE", "10h")  # the set is now past the limit
    went_stale = freshness_sensor_tick(dagster_instance)
    freshness_sensor_tick(dagster_instance)

    assert len(went_stale.asset_events) == 2
    assert_one_stale_message_per_asset(receiver.texts, "vector_freshness_sensor", made, "20h")
