"""Retention: the grandfather-father-son plan, the sets it never deletes, and the prune job."""

import os
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from unittest import mock

import dagster as dg
import pytest

from vector_assets import settings
from vector_assets.core.errors import ConfigError, PathOutsideRootError, PruneError
from vector_assets.core.ops.prune import PruneRequest, delete_set, run_prune
from vector_assets.core.ops.verify import verify_set
from vector_assets.core.sets.catalog import BackupSet, scan_root
from vector_assets.core.sets.naming import (
    LOG_FILE_NAME,
    Location,
    csv_file_name,
    manifest_file_name,
)
from vector_assets.core.sets.retention import (
    DELETE,
    KEEP,
    RetentionPolicy,
    plan_retention,
)
from vector_assets.core.tables import EMBEDDING_TABLE
from vector_assets.defs.resources import BackupRootResource
from vector_assets_tests.support.dagster import definitions
from vector_assets_tests.support.files import folder_snapshot, write_tiny_set

PARTITIONS = "vector_backups"
KEEP_VARS = ("VECTOR_ASSETS_KEEP_DAILY", "VECTOR_ASSETS_KEEP_WEEKLY", "VECTOR_ASSETS_KEEP_MONTHLY")


@pytest.fixture(autouse=True)
def default_policy_env(monkeypatch):
    for name in KEEP_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


def daily_timestamps(first: date, days: int, time: str = "020000") -> list[str]:
    return [(first + timedelta(days=n)).strftime("%Y%m%d") + "_" + time for n in range(days)]


def in_memory_set(timestamp: str, location: Location = Location()) -> BackupSet:
    return BackupSet(timestamp, timestamp, location, Path("/nowhere") / location.label, None)


def kept(plan) -> dict[str, tuple[str, ...]]:
    return {planned.key: planned.reasons for planned in plan.kept}


def run_job(instance, root: Path, dry_run: bool | None = None):
    run_config = {} if dry_run is None else {"ops": {"prune_backup_sets": {"config": {"dry_run": dry_run}}}}
    with mock.patch.dict(os.environ, {"VECTOR_ASSETS_ROOT": str(root)}):
        return definitions().resolve_job_def("prune_vector_backups").execute_in_process(
            run_config=run_config, instance=instance, raise_on_error=False,
            resources={"backup_root": BackupRootResource()},
        )


def output_metadata(result) -> dict:
    (event,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return event.event_specific_data.metadata


def add_run(instance, job_name: str, status: dg.DagsterRunStatus, *, run_config=None, tags=None) -> None:
    """A run as Dagster stores one of that job: the job's own tags first, then the run's."""
    job_tags = dict(definitions().resolve_job_def(job_name).tags)
    instance.add_run(dg.DagsterRun(
        job_name=job_name, run_id=str(uuid.uuid4()), status=status, run_config=run_config or {},
        tags={**job_tags, **(tags or {})},
    ))


def test_a_year_of_daily_sets_keeps_7_days_4_iso_weeks_and_12_month_ends():
    sets = [in_memory_set(ts) for ts in daily_timestamps(date(2025, 1, 1), 365)]
    plan = plan_retention(sets, RetentionPolicy())
    days = [f"202512{d}_020000" for d in range(25, 32)]
    # 2025-12-31 is a Wednesday in ISO week 2026-W01; the weeks before end on Sundays 28, 21, 14 Dec.
    weeks = ["20251231_020000", "20251228_020000", "20251221_020000", "20251214_020000"]
    month_ends = [f"2025{m:02d}{d}_020000" for m, d in zip(range(1, 13), (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31))]
    assert set(kept(plan)) == set(days) | set(weeks) | set(month_ends)
    assert len(plan.kept) == 20 and len(plan.to_delete) == 345
    for key in kept(plan):
        moment = datetime.strptime(key, "%Y%m%d_%H%M%S")
        is_month_end = (moment + timedelta(days=1)).month != moment.month
        is_recent_sunday = moment.isoweekday() == 7 and moment >= datetime(2025, 12, 14)
        assert moment >= datetime(2025, 12, 25) or is_month_end or is_recent_sunday
    assert kept(plan)["20251231_020000"] == ("daily", "weekly", "monthly", "newest")
    assert kept(plan)["20251228_020000"] == ("daily", "weekly")
    assert kept(plan)["20251214_020000"] == ("weekly",)
    assert kept(plan)["20250131_020000"] == ("monthly",)


def test_the_newest_set_of_a_day_week_or_month_is_the_one_kept():
    sets = [in_memory_set(ts) for ts in ("20250301_010000", "20250301_230000", "20250302_120000", "20250303_080000")]
    plan = plan_retention(sets, RetentionPolicy(keep_daily=2, keep_weekly=2, keep_monthly=0))
    # 1-2 March are ISO week 9 (ending Sunday 2 March), 3 March starts week 10.
    assert kept(plan) == {"20250303_080000": ("daily", "weekly", "newest"), "20250302_120000": ("daily", "weekly")}


def test_counts_apply_to_each_location_separately(backup_root):
    write_tiny_set(backup_root / "vector_bak", "20250105_020000", manifest=True)
    for ts in daily_timestamps(date(2025, 1, 1), 4):
        write_tiny_set(backup_root / "task_20250101_000000" / "vector_bak", ts)
    for ts in daily_timestamps(date(2025, 2, 1), 3, "120000"):
        write_tiny_set(backup_root / "manual_20250201_000000" / "vector_bak", ts, manifest=True)
    plan = plan_retention(scan_root(backup_root), RetentionPolicy(keep_daily=2, keep_weekly=0, keep_monthly=0))
    by_location = {}
    for planned in plan.kept:
        by_location.setdefault(planned.location, []).append(planned.timestamp)
    assert by_location == {
        "vector_bak": ["20250105_020000"],
        "manual_20250201_000000/vector_bak": ["20250203_120000", "20250202_120000"],
        "task_20250101_000000/vector_bak": ["20250104_020000", "20250103_020000"],
    }
    assert sorted(p.timestamp for p in plan.to_delete) == ["20250101_020000", "20250102_020000", "20250201_120000"]


def test_the_newest_set_of_every_location_is_kept_even_with_all_counts_zero():
    sets = [in_memory_set(ts) for ts in daily_timestamps(date(2025, 1, 1), 5)]
    task = Location("task_20250101_000000")
    sets += [in_memory_set(ts, task) for ts in daily_timestamps(date(2024, 6, 1), 3, "030000")]
    plan = plan_retention(sets, RetentionPolicy(keep_daily=0, keep_weekly=0, keep_monthly=0))
    assert kept(plan) == {"20250105_020000": ("newest",), "20240603_030000": ("newest",)}
    assert len(plan.to_delete) == 6


def test_the_newest_intact_set_is_kept_when_the_newest_has_lost_a_file(backup_root):
    folder = backup_root / "vector_bak"
    for ts in ("20250101_020000", "20250102_020000", "20250103_020000"):
        write_tiny_set(folder, ts, manifest=True)
    (folder / csv_file_name(EMBEDDING_TABLE, "20250103_020000")).unlink()
    policy = RetentionPolicy(keep_daily=0, keep_weekly=0, keep_monthly=0)
    plan = run_prune(PruneRequest(root=backup_root, policy=policy)).plan
    assert kept(plan) == {"20250102_020000": ("newest",)}
    assert {p.key for p in plan.to_delete} == {"20250101_020000", "20250103_020000"}


def test_a_set_mentioned_by_a_running_restore_is_kept():
    sets = [in_memory_set(ts) for ts in daily_timestamps(date(2025, 1, 1), 5)]
    in_use = {"20250102_020000", "task_20250101_000000/vector_bak"}
    plan = plan_retention(sets, RetentionPolicy(keep_daily=1, keep_weekly=0, keep_monthly=0), in_use)
    assert kept(plan) == {"20250105_020000": ("daily", "newest"), "20250102_020000": ("in-use",)}


def test_dry_run_is_the_default_and_shows_the_plan_without_touching_files_or_partitions(instance, backup_root, monkeypatch):
    monkeypatch.setenv("VECTOR_ASSETS_KEEP_DAILY", "2")
    monkeypatch.setenv("VECTOR_ASSETS_KEEP_WEEKLY", "0")
    monkeypatch.setenv("VECTOR_ASSETS_KEEP_MONTHLY", "0")
    for n, ts in enumerate(daily_timestamps(date(2025, 1, 1), 5)):
        write_tiny_set(backup_root / "vector_bak", ts, manifest=n % 2 == 0)
    keys = [s.key for s in scan_root(backup_root)]
    instance.add_dynamic_partitions(PARTITIONS, keys)
    before = folder_snapshot(backup_root)
    result = run_job(instance, backup_root)
    assert result.success
    assert folder_snapshot(backup_root) == before
    assert sorted(instance.get_dynamic_partitions(PARTITIONS)) == sorted(keys)
    metadata = output_metadata(result)
    assert metadata["dry_run"].value is True
    assert (metadata["sets_kept"].value, metadata["sets_to_delete"].value, metadata["sets_deleted"].value) == (2, 3, 0)
    assert metadata["bytes_freed"].value == 0 and metadata["bytes_to_free"].value > 0
    summary = metadata["summary"].value
    assert summary.startswith("**Dry run") and "| `20250101_020000` | vector_bak | delete |" in summary
    observed = instance.fetch_observations(dg.AssetKey("vector_backup_inventory"), limit=1).records[0]
    assert observed.asset_observation.metadata["summary"].value == summary
    rows = {record.data["key"]: record.data for record in metadata["plan"].value.records}
    assert {key: row["action"] for key, row in rows.items()} == {
        "20250105_020000": KEEP, "20250104_020000": KEEP,
        "20250103_020000": DELETE, "20250102_020000": DELETE, "20250101_020000": DELETE,
    }
    assert rows["20250105_020000"]["reasons"] == "daily, newest"
    assert rows["20250105_020000"]["location"] == "vector_bak"
    assert rows["20250101_020000"]["bytes"] == sum(
        p.stat().st_size for p in (backup_root / "vector_bak").glob("*20250101_020000*")
    )


def test_real_run_deletes_old_sets_and_their_partitions_and_keeps_the_rest_complete(instance, backup_root, monkeypatch):
    monkeypatch.setenv("VECTOR_ASSETS_KEEP_DAILY", "2")
    monkeypatch.setenv("VECTOR_ASSETS_KEEP_WEEKLY", "0")
    monkeypatch.setenv("VECTOR_ASSETS_KEEP_MONTHLY", "2")
    global_folder, task_folder = backup_root / "vector_bak", backup_root / "task_20250101_000000" / "vector_bak"
    for n, ts in enumerate(daily_timestamps(date(2025, 1, 30), 4)):
        write_tiny_set(global_folder, ts, manifest=n % 2 == 1)
    write_tiny_set(task_folder, "20240101_020000")
    instance.add_dynamic_partitions(PARTITIONS, [s.key for s in scan_root(backup_root)])
    log_before = (global_folder / LOG_FILE_NAME).read_bytes()
    doomed_bytes = sum(p.stat().st_size for p in global_folder.glob("*20250130_020000*"))

    result = run_job(instance, backup_root, dry_run=False)

    assert result.success
    metadata = output_metadata(result)
    assert metadata["sets_deleted"].value == 1 and metadata["bytes_freed"].value == doomed_bytes
    remaining = scan_root(backup_root)
    # 2 and 1 Feb are the two newest days, 31 Jan is January's newest (monthly); 30 Jan goes.
    assert [s.key for s in remaining] == ["20240101_020000", "20250131_020000", "20250201_020000", "20250202_020000"]
    assert not list(global_folder.glob("*20250130_020000*"))
    assert sorted(instance.get_dynamic_partitions(PARTITIONS)) == [s.key for s in remaining]
    assert metadata["partitions_removed"].value == ["20250130_020000"]
    for backup_set in remaining:
        assert all(outcome.passed for outcome in verify_set(backup_set)), backup_set.key
    assert (global_folder / LOG_FILE_NAME).read_bytes() == log_before
    assert not list(backup_root.rglob("*.tmp"))


def test_unfinished_restore_and_drill_runs_protect_their_sets_finished_runs_do_not(instance, backup_root, monkeypatch):
    for name in KEEP_VARS:
        monkeypatch.setenv(name, "0")
    for ts in daily_timestamps(date(2025, 3, 1), 5):
        write_tiny_set(backup_root / "vector_bak", ts, manifest=True)
    instance.add_dynamic_partitions(PARTITIONS, [s.key for s in scan_root(backup_root)])
    restore_config = {"ops": {"restore_from_backup_set": {"config": {"timestamp": "20250301_020000"}}}}
    add_run(instance, "restore_vector_tables", dg.DagsterRunStatus.STARTED, run_config=restore_config)
    add_run(instance, "drill_vector_backup", dg.DagsterRunStatus.NOT_STARTED, tags={"dagster/partition": "20250302_020000"})
    done_config = {"ops": {"restore_from_backup_set": {"config": {"timestamp": "20250303_020000"}}}}
    add_run(instance, "restore_vector_tables", dg.DagsterRunStatus.SUCCESS, run_config=done_config)
    add_run(instance, "backup_vector_tables", dg.DagsterRunStatus.STARTED, tags={"note": "20250304_020000"})
    result = run_job(instance, backup_root, dry_run=False)
    assert result.success
    rows = {r.data["key"]: r.data for r in output_metadata(result)["plan"].value.records}
    assert rows["20250301_020000"]["reasons"] == "in-use" and rows["20250302_020000"]["reasons"] == "in-use"
    assert [s.key for s in scan_root(backup_root)] == ["20250301_020000", "20250302_020000", "20250305_020000"]
    assert sorted(instance.get_dynamic_partitions(PARTITIONS)) == ["20250301_020000", "20250302_020000", "20250305_020000"]


@pytest.mark.parametrize(
    "name, value", [("VECTOR_ASSETS_KEEP_DAILY", "-1"), ("VECTOR_ASSETS_KEEP_WEEKLY", "four"), ("VECTOR_ASSETS_KEEP_MONTHLY", "1.5")]
)
def test_a_bad_retention_setting_is_refused_by_name_and_nothing_is_deleted(instance, backup_root, monkeypatch, name, value):
    with pytest.raises(ConfigError, match=name):
        settings.retention_policy({name: value})
    for ts in daily_timestamps(date(2025, 1, 1), 3):
        write_tiny_set(backup_root / "vector_bak", ts)
    instance.add_dynamic_partitions(PARTITIONS, [s.key for s in scan_root(backup_root)])
    before = folder_snapshot(backup_root)
    monkeypatch.setenv(name, value)
    result = run_job(instance, backup_root, dry_run=False)
    assert not result.success
    assert name in result.failure_data_for_node("prune_backup_sets").error.message
    assert folder_snapshot(backup_root) == before
    assert len(instance.get_dynamic_partitions(PARTITIONS)) == 3


def test_policy_counts_default_to_seed_003_and_must_be_whole_numbers():
    assert settings.retention_policy({}) == RetentionPolicy(keep_daily=7, keep_weekly=4, keep_monthly=12)
    assert settings.retention_policy({"VECTOR_ASSETS_KEEP_WEEKLY": " 0 "}).keep_weekly == 0
    with pytest.raises(ConfigError, match="keep_daily"):
        RetentionPolicy(keep_daily=-3)


def test_a_failed_delete_leaves_the_set_hidden_not_damaged_and_unregisters_what_went(instance, backup_root, monkeypatch):
    for name in KEEP_VARS:
        monkeypatch.setenv(name, "0")
    folder = backup_root / "vector_bak"
    for ts in daily_timestamps(date(2025, 1, 1), 3):
        write_tiny_set(folder, ts, manifest=True)
    stuck = make_undeletable(folder, "20250101_020000")
    instance.add_dynamic_partitions(PARTITIONS, [s.key for s in scan_root(backup_root)])

    result = run_job(instance, backup_root, dry_run=False)

    assert not result.success
    message = result.failure_data_for_node("prune_backup_sets").error.message
    assert stuck.name in message and "20250101_020000" in message
    assert [s.key for s in scan_root(backup_root)] == ["20250103_020000"]
    assert (folder / (manifest_file_name("20250101_020000") + ".tmp")).exists()
    assert instance.get_dynamic_partitions(PARTITIONS) == ["20250103_020000"]


def make_undeletable(folder: Path, timestamp: str) -> Path:
    """Put a non-empty folder where the set's embedding CSV was: unlink fails on it, even as root."""
    stuck = folder / csv_file_name(EMBEDDING_TABLE, timestamp)
    stuck.unlink()
    stuck.mkdir()
    (stuck / "keep").write_text("a folder where a CSV should be cannot be unlinked")
    return stuck


def test_a_failed_delete_stops_the_prune_and_reports_the_sets_already_deleted(backup_root):
    folder = backup_root / "vector_bak"
    for ts in daily_timestamps(date(2025, 1, 1), 4):
        write_tiny_set(folder, ts, manifest=True)
    make_undeletable(folder, "20250102_020000")
    policy = RetentionPolicy(keep_daily=0, keep_weekly=0, keep_monthly=0)
    with pytest.raises(PruneError, match="langchain_pg_embedding_20250102_020000.csv") as caught:
        run_prune(PruneRequest(root=backup_root, policy=policy, dry_run=False))
    partial = caught.value.partial_result
    assert [p.key for p in partial.deleted] == ["20250103_020000"]
    assert sorted(partial.removed_keys) == ["20250102_020000", "20250103_020000"]
    assert [s.key for s in scan_root(backup_root)] == ["20250101_020000", "20250104_020000"]


def test_a_location_that_escapes_the_root_is_skipped_and_reported_and_the_rest_is_pruned(backup_root, tmp_path):
    outside = tmp_path / "elsewhere"
    for ts in daily_timestamps(date(2025, 1, 1), 3):
        write_tiny_set(outside, ts)
    for ts in daily_timestamps(date(2025, 1, 1), 2):
        write_tiny_set(backup_root / "vector_bak", ts)
    (backup_root / "task_20250101_000000").mkdir()
    (backup_root / "task_20250101_000000" / "vector_bak").symlink_to(outside)
    outside_before = folder_snapshot(outside)
    policy = RetentionPolicy(keep_daily=0, keep_weekly=0, keep_monthly=0)

    result = run_prune(PruneRequest(root=backup_root, policy=policy, dry_run=False))

    assert [p.key for p in result.deleted] == ["20250101_020000"]
    assert [s.key for s in scan_root(backup_root)] == ["20250102_020000"]
    (skipped,) = result.plan.skipped_locations
    assert skipped.startswith("task_20250101_000000/vector_bak was not read") and "outside the root" in skipped
    assert folder_snapshot(outside) == outside_before


def test_delete_set_refuses_a_set_whose_folder_is_not_its_location_under_the_root(backup_root, tmp_path):
    outside = tmp_path / "elsewhere" / "vector_bak"
    write_tiny_set(outside, "20250101_020000")
    stray = BackupSet("20250101_020000", "20250101_020000", Location(), outside, None)
    before = folder_snapshot(outside)
    with pytest.raises(PathOutsideRootError, match="20250101_020000"):
        delete_set(stray, backup_root)
    assert folder_snapshot(outside) == before


def test_deleting_a_shared_timestamp_moves_the_bare_key_to_the_surviving_set(instance, backup_root, monkeypatch):
    monkeypatch.setenv("VECTOR_ASSETS_KEEP_DAILY", "1")
    for name in KEEP_VARS[1:]:
        monkeypatch.setenv(name, "0")
    write_tiny_set(backup_root / "vector_bak", "20250101_020000")
    write_tiny_set(backup_root / "vector_bak", "20250102_020000")
    write_tiny_set(backup_root / "task_20250101_000000" / "vector_bak", "20250101_020000")
    keys = [s.key for s in scan_root(backup_root)]
    assert "20250101_020000__task_20250101_000000" in keys
    instance.add_dynamic_partitions(PARTITIONS, keys)
    result = run_job(instance, backup_root, dry_run=False)
    assert result.success
    (task_set,) = [s for s in scan_root(backup_root) if s.location.task_id]
    assert task_set.key == "20250101_020000"
    assert sorted(instance.get_dynamic_partitions(PARTITIONS)) == ["20250101_020000", "20250102_020000"]


def test_prune_schedule_is_off_by_default_and_really_deletes_when_turned_on(instance):
    vector_prune_schedule = definitions().resolve_schedule_def("vector_prune_schedule")
    assert vector_prune_schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert vector_prune_schedule.cron_schedule == "30 3 * * *"
    assert vector_prune_schedule.job_name == "prune_vector_backups"
    assert "dry_run: false" in vector_prune_schedule.description
    (request,) = vector_prune_schedule.evaluate_tick(dg.build_schedule_context(instance=instance)).run_requests
    assert request.run_config == {"ops": {"prune_backup_sets": {"config": {"dry_run": False}}}}


def test_prune_deletes_exactly_the_set_files_and_never_an_operators_file_beside_them(backup_root):
    folder = backup_root / "vector_bak"
    for ts in ("20250101_020000", "20250102_020000"):
        write_tiny_set(folder, ts, manifest=True)
    old = "20250101_020000"
    own_files = [
        f"langchain_pg_embedding_{old}.csv.sig", f"langchain_pg_embedding_{old}.csv.zst",
        f"langchain_pg_collection_{old}.csv.bak", f"vector_backup_{old}.json.note", f"vector_backup_{old}.jsonl",
    ]
    for name in own_files:
        (folder / name).write_text("the operator's own file")
    policy = RetentionPolicy(keep_daily=0, keep_weekly=0, keep_monthly=0)

    result = run_prune(PruneRequest(root=backup_root, policy=policy, dry_run=False))

    assert [p.key for p in result.deleted] == [old]
    assert [s.key for s in scan_root(backup_root)] == ["20250102_020000"]
    for name in own_files:
        assert (folder / name).read_text() == "the operator's own file"
    assert not (folder / csv_file_name(EMBEDDING_TABLE, old)).exists()
    assert not (folder / manifest_file_name(old)).exists()
    assert result.bytes_freed == result.plan.to_delete[0].bytes


def test_the_newest_restorable_set_is_kept_when_the_newest_fails_its_checksum(backup_root):
    folder = backup_root / "vector_bak"
    for ts in ("20250101_020000", "20250102_020000", "20250103_020000"):
        write_tiny_set(folder, ts, manifest=True)
    damaged = folder / csv_file_name(EMBEDDING_TABLE, "20250103_020000")
    damaged.write_text(damaged.read_text().replace("a, b", "a, c"))  # same size, other bytes
    policy = RetentionPolicy(keep_daily=0, keep_weekly=0, keep_monthly=0)

    result = run_prune(PruneRequest(root=backup_root, policy=policy, dry_run=False))

    assert [s.key for s in scan_root(backup_root)] == ["20250102_020000"]
    kept_set = next(p for p in result.plan.sets if p.key == "20250102_020000")
    assert kept_set.reasons == ("newest",)
    assert "newest intact" in kept_set.note and "20250103_020000" in kept_set.note
    damaged_set = next(p for p in result.plan.sets if p.key == "20250103_020000")
    assert "damaged" in damaged_set.note and "sha256" in damaged_set.note


def test_a_task_id_or_timestamp_with_a_trailing_newline_is_refused_and_makes_no_folder(backup_root):
    from vector_assets.core.errors import InvalidTaskIdError, InvalidTimestampError
    from vector_assets.core.ops.backup import BackupRequest
    from vector_assets.core.sets.naming import validate_timestamp

    with pytest.raises(InvalidTaskIdError, match="task_20250101_000000"):
        BackupRequest(dsn="postgresql:///none", root=backup_root, task_id="task_20250101_000000\n")
    with pytest.raises(InvalidTimestampError):
        validate_timestamp("20250101_000000\n")
    with pytest.raises(InvalidTimestampError):
        BackupRequest(dsn="postgresql:///none", root=backup_root, timestamp="20250101_000000\n")
    assert list(backup_root.iterdir()) == []  # the refused requests made no folder
    # A folder with such a name, made by someone else, holds no set a scan would offer.
    write_tiny_set(backup_root / "task_20250101_000000\n" / "vector_bak", "20250101_000000")
    write_tiny_set(backup_root / "vector_bak", "20250101_000000\n")
    assert [s.key for s in scan_root(backup_root)] == []


def test_every_job_that_reads_sets_declares_it_and_prune_spares_an_unfinished_replication(
    instance, backup_root, monkeypatch
):
    readers = {job.name for job in definitions().resolve_all_job_defs() if job.tags.get("vector_assets/reads_sets")}
    assert readers == {"restore_vector_tables", "drill_vector_backup", "check_vector_backup", "replicate_vector_backups",
                       "rekey_vector_backups", "diff_vector_backup"}
    for name in KEEP_VARS:
        monkeypatch.setenv(name, "0")
    for ts in daily_timestamps(date(2025, 3, 1), 3):
        write_tiny_set(backup_root / "vector_bak", ts, manifest=True)
    add_run(instance, "replicate_vector_backups", dg.DagsterRunStatus.STARTED, tags={"note": "20250301_020000"})

    result = run_job(instance, backup_root, dry_run=False)

    assert result.success
    assert [s.key for s in scan_root(backup_root)] == ["20250301_020000", "20250303_020000"]
