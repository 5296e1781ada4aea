"""Freshness: a backup asset whose newest set is older than VECTOR_ASSETS_BACKUP_MAX_AGE reads stale."""

import time
from datetime import datetime, timedelta

import dagster as dg
import pytest

from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.sets.naming import new_timestamp
from vector_assets.defs import freshness
from vector_assets.defs.freshness import set_time
from vector_assets_tests.support.dagster import DEFAULT_KEYS, Ticker, backup_asset_key, definitions

EMBEDDINGS = backup_asset_key("langchain_pg_embedding")
CHECK = dg.AssetCheckKey(EMBEDDINGS, "freshness_check")
COLLECTIONS = backup_asset_key("langchain_pg_collection")


def made_ago(store_db, backup_root, age: timedelta) -> str:
    return run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=new_timestamp(datetime.now() - age))).timestamp


def evaluate_freshness(instance: dg.DagsterInstance) -> dg.AssetCheckEvaluation:
    job = dg.define_asset_job("freshness_only", selection=dg.AssetSelection.checks(CHECK))
    resolved = dg.Definitions.merge(definitions(), dg.Definitions(jobs=[job])).resolve_job_def("freshness_only")
    result = resolved.execute_in_process(instance=instance, raise_on_error=False)
    records = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    (evaluation,) = [record.dagster_event.event_specific_data for record in records]
    return evaluation


@pytest.fixture
def ticker(dagster_instance) -> Ticker:
    return Ticker(dagster_instance)


def test_a_set_older_than_the_limit_reads_stale_and_a_new_one_fresh(dagster_instance, store_db, backup_root, ticker):
    old = made_ago(store_db, backup_root, timedelta(hours=30))
    ticker.tick()

    stale = evaluate_freshness(dagster_instance)

    assert not stale.passed and stale.description.startswith(f"stale: the newest set {old} is 30h")
    assert stale.metadata["dagster/overdue_seconds"].value == pytest.approx(4 * 3600, abs=120)
    new = made_ago(store_db, backup_root, timedelta(minutes=5))
    ticker.tick()

    fresh = evaluate_freshness(dagster_instance)

    assert fresh.passed and fresh.description.startswith(f"fresh: the newest set {new} is 5m")
    assert fresh.metadata["newest_set"].value == new


def test_the_limit_is_a_setting(dagster_instance, store_db, backup_root, ticker, monkeypatch):
    made_ago(store_db, backup_root, timedelta(hours=3))
    ticker.tick()
    monkeypatch.setenv("VECTOR_ASSETS_BACKUP_MAX_AGE", "2h")
    assert not evaluate_freshness(dagster_instance).passed
    monkeypatch.setenv("VECTOR_ASSETS_BACKUP_MAX_AGE", "4h")
    assert evaluate_freshness(dagster_instance).passed


def test_no_set_at_all_reads_stale(dagster_instance):
    evaluation = evaluate_freshness(dagster_instance)
    assert not evaluation.passed and evaluation.description.startswith("stale: no backup set yet")


def test_a_malformed_limit_fails_naming_the_variable(dagster_instance, monkeypatch):
    monkeypatch.setenv("VECTOR_ASSETS_BACKUP_MAX_AGE", "a day")
    job = dg.define_asset_job("freshness_only", selection=dg.AssetSelection.checks(CHECK))
    resolved = dg.Definitions.merge(definitions(), dg.Definitions(jobs=[job])).resolve_job_def("freshness_only")
    result = resolved.execute_in_process(instance=dagster_instance, raise_on_error=False)
    message = result.failure_data_for_node("backup_freshness_checks").error.message
    assert "VECTOR_ASSETS_BACKUP_MAX_AGE" in message and "'a day'" in message


def sensor_tick(instance: dg.DagsterInstance):
    context = dg.build_sensor_context(instance=instance, definitions=definitions())
    result = definitions().resolve_sensor_def("vector_freshness_sensor").evaluate_tick(context)
    for event in result.asset_events:  # as the daemon does
        instance.report_runless_asset_event(event)
    return result


def test_the_sensor_records_freshness_without_a_run_and_only_when_the_answer_changes(
    dagster_instance, store_db, backup_root, ticker, monkeypatch
):
    before_the_first_scan = sensor_tick(dagster_instance)
    ticker.tick()  # no set yet: vector_bak_sensor records "stale: no backup set yet"
    again = sensor_tick(dagster_instance)
    made_ago(store_db, backup_root, timedelta(hours=20))
    ticker.tick()
    unchanged = sensor_tick(dagster_instance)
    monkeypatch.setenv("VECTOR_ASSETS_BACKUP_MAX_AGE", "10h")  # the set passes the limit
    aged = sensor_tick(dagster_instance)

    assert before_the_first_scan.asset_events == [] and "waiting for vector_bak_sensor" in before_the_first_scan.skip_message
    assert again.asset_events == [] and unchanged.asset_events == [] and again.run_requests == []
    assert aged.run_requests == [] and {e.asset_key for e in aged.asset_events} == {EMBEDDINGS, COLLECTIONS}
    assert all(not e.passed and e.description.startswith("stale: the newest set") for e in aged.asset_events)


DEFAULT_LIMIT = timedelta(hours=26)
MARGIN = timedelta(seconds=8)  # time for the backup and the first scan before the set reaches the limit


def recorded_freshness(instance: dg.DagsterInstance) -> dict[dg.AssetKey, dg.AssetCheckEvaluation]:
    """The latest recorded freshness evaluation of each backup asset."""
    keys = [dg.AssetCheckKey(asset, "freshness_check") for asset in (COLLECTIONS, EMBEDDINGS)]
    records = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    return {key.asset_key: record.evaluation for key, record in records.items()}


def test_the_sensor_records_a_set_going_stale_when_only_the_clock_moves(dagster_instance, store_db, backup_root, ticker):
    """No new set, no new setting: the newest set passes VECTOR_ASSETS_BACKUP_MAX_AGE (26h) while
    the test waits, and the next tick records it stale, once."""
    key = made_ago(store_db, backup_root, DEFAULT_LIMIT - MARGIN)
    ticker.tick()  # registers the set and records it fresh
    assert [e.passed for e in recorded_freshness(dagster_instance).values()] == [True, True], (
        "the set passed the limit before the first scan: the transition was not tested"
    )
    before_the_limit = sensor_tick(dagster_instance)

    time.sleep(max(0.0, set_time(key) + DEFAULT_LIMIT.total_seconds() - time.time()) + 0.5)
    passed_the_limit = sensor_tick(dagster_instance)
    next_tick = sensor_tick(dagster_instance)

    assert before_the_limit.asset_events == [] and before_the_limit.run_requests == []
    assert {e.asset_key for e in passed_the_limit.asset_events} == {EMBEDDINGS, COLLECTIONS}
    for evaluation in passed_the_limit.asset_events:
        assert not evaluation.passed and evaluation.description.startswith(f"stale: the newest set {key} is 26h00m old")
    assert recorded_freshness(dagster_instance) == {e.asset_key: e for e in passed_the_limit.asset_events}
    assert next_tick.asset_events == [] and next_tick.run_requests == []


@pytest.mark.parametrize("asked_first", [1, 100])
def test_the_newest_set_is_the_newest_registered_one_that_is_materialized(dagster_instance, monkeypatch, asked_first):
    """Storage is asked about the newest partitions first and about every partition only when
    none of those is materialized; either way the answer is the same."""
    monkeypatch.setattr(freshness, "NEWEST_PARTITIONS_ASKED_FIRST", asked_first)
    keys = DEFAULT_KEYS
    registered = ["20250101_020000", "20250102_020000__incremental", "20250103_020000"]
    dagster_instance.add_dynamic_partitions(keys.partitions.name, registered)
    for key in registered[:2]:
        dagster_instance.report_runless_asset_event(dg.AssetMaterialization(EMBEDDINGS, partition=key))
    dagster_instance.report_runless_asset_event(dg.AssetMaterialization(COLLECTIONS, partition=registered[0]))

    assert freshness.newest_sets(dagster_instance, keys) == {COLLECTIONS: registered[0], EMBEDDINGS: registered[1]}
    assert freshness.newest_sets(dagster_instance, keys, removed=[registered[1]])[EMBEDDINGS] == registered[0]
    assert freshness.newest_sets(dagster_instance, keys, reported={COLLECTIONS: [registered[2]]})[COLLECTIONS] == registered[2]
