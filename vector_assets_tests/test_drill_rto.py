"""The timed drill: the restore's seconds against the target for the set's size (seed 003)."""

import dagster as dg
import pytest

from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.drill import DrillRequest, RecoveryTime, run_drill
from vector_assets.core.rto import DEFAULT_RTO_TARGETS, OVER, OVER_TWICE, WITHIN, parse_rto_targets, target_seconds
from vector_assets_tests.support.dagster import run_job
from vector_assets_tests.support.webhook import webhook_receiver

GB = 10**9


@pytest.fixture
def registered_set(dagster_instance, store_db, backup_root) -> str:
    made = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    dagster_instance.add_dynamic_partitions("vector_backups", [made.timestamp])
    return made.timestamp


def rto_evaluations(instance: dg.DagsterInstance, run_id: str) -> list[dg.AssetCheckEvaluation]:
    records = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    return [r.dagster_event.event_specific_data for r in records if r.dagster_event.event_specific_data.check_name == "restore_rto"]


def test_the_seed_targets_by_size_class():
    assert [target_seconds(DEFAULT_RTO_TARGETS, size) for size in (0, GB - 1, GB, 10 * GB - 1, 10 * GB, 500 * GB)] == [
        300, 300, 1800, 1800, 7200, 7200,
    ]


def test_over_the_target_warns_and_over_twice_is_an_error():
    assert [RecoveryTime(seconds, GB // 2, 300).verdict for seconds in (300, 301, 600, 601)] == [
        WITHIN, OVER, OVER, OVER_TWICE,
    ]


def test_the_drill_times_the_restore_and_sizes_the_set(store_db, backup_root):
    made = run_backup(BackupRequest(dsn=store_db, root=backup_root))

    result = run_drill(DrillRequest(dsn=store_db, root=backup_root))

    recovery = result.recovery_time
    assert recovery.bytes == sum(entry.bytes for entry in made.manifest.tables.values())
    assert 0 < recovery.restore_seconds <= result.duration_seconds
    assert recovery.restore_seconds == result.restore.duration_seconds
    assert (recovery.target_seconds, recovery.verdict) == (300, WITHIN)


def test_the_rto_check_passes_with_the_default_targets(dagster_instance, registered_set):
    result = run_job(dagster_instance, "drill_vector_backup", partition_key=registered_set)

    evaluations = rto_evaluations(dagster_instance, result.run_id)
    assert len(evaluations) == 2 and all(e.passed for e in evaluations)
    metadata = evaluations[0].metadata
    assert metadata["rto_target_seconds"].value == 300 and 0 < metadata["restore_seconds"].value < 300
    assert metadata["bytes"].value > 0


def test_a_tiny_target_fails_the_rto_check_and_alerts_but_not_the_drill(dagster_instance, registered_set, monkeypatch):
    monkeypatch.setenv("VECTOR_ASSETS_RTO_TARGETS", "*=0.001s")
    with webhook_receiver() as receiver:
        monkeypatch.setenv("VECTOR_ASSETS_ALERT_WEBHOOK", receiver.url)
        result = run_job(dagster_instance, "drill_vector_backup", partition_key=registered_set)

    assert result.success  # every row came back; only the time is over
    evaluations = rto_evaluations(dagster_instance, result.run_id)
    assert evaluations and not any(e.passed for e in evaluations)
    for evaluation in evaluations:
        seconds = evaluation.metadata["restore_seconds"].value
        expected = dg.AssetCheckSeverity.WARN if seconds <= 0.002 else dg.AssetCheckSeverity.ERROR
        assert evaluation.severity == expected and "over" in evaluation.description
    (alert,) = receiver.texts
    assert alert.startswith(f"check restore_rto failed in drill_vector_backup (set {registered_set}): restored ")


def test_a_malformed_rto_setting_fails_the_drill_naming_the_variable(dagster_instance, registered_set, monkeypatch):
    monkeypatch.setenv("VECTOR_ASSETS_RTO_TARGETS", "fast")
    result = run_job(dagster_instance, "drill_vector_backup", partition_key=registered_set)
    message = result.failure_data_for_node("drill_restore_of_backup_set").error.message
    assert "VECTOR_ASSETS_RTO_TARGETS" in message and "'fast'" in message


def test_targets_can_be_overridden():
    assert parse_rto_targets("500MB=1m, 2GB=10m, *=1h", "X") == parse_rto_targets("0.5GB=60,2gb=600s,*=3600", "X")
