"""vector_bak_sensor, evaluated tick by tick against a real Dagster test instance and real files."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from vector_assets.cli import main
from vector_assets.core.errors import BackupSetNotFoundError
from vector_assets.core.hashing import sha256_of_file
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets.core.sets.inventory import InventoryRequest, build_inventory
from vector_assets.core.sets.inventory_state import NEWEST_SETS_SHOWN, InventorySummary
from vector_assets.core.sets.naming import csv_file_name, manifest_file_name, new_timestamp
from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE
from vector_assets_tests.support.dagster import INVENTORY_KEY
from vector_assets_tests.support.dagster import (
    PARTITIONS,
    Ticker,
    added_keys,
    deleted_keys,
    partition_metadata,
)
from vector_assets_tests.support.files import (
    files_opened_under,
    folders_opened_under,
    psql_legacy_set,
    write_tiny_legacy_set,
    write_tiny_set,
)


@pytest.fixture
def ticker(dagster_instance) -> Ticker:
    return Ticker(dagster_instance)





def check_evaluations(result) -> dict[tuple[str, str, str], dg.AssetCheckEvaluation]:
    """The check evaluations a tick recorded itself, by (asset, check, partition)."""
    return {
        (e.asset_key.to_user_string(), e.check_name, e.partition): e
        for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation)
    }


def test_new_sets_are_registered_materialized_and_checked_without_a_run(ticker, store_db, backup_root):
    made = run_backup(BackupRequest(dsn=store_db, root=backup_root, task_id="task_20250721_213627"))

    result = ticker.tick()

    assert added_keys(result) == [made.timestamp]
    assert ticker.partitions == [made.timestamp]
    metadata = partition_metadata(ticker.instance, EMBEDDING_TABLE, made.timestamp)
    entry = made.manifest.tables[EMBEDDING_TABLE]
    assert metadata["rows"] == entry.rows == 300
    assert metadata["sha256"] == entry.sha256
    assert metadata["location"] == "task_20250721_213627/vector_bak"
    assert metadata["task_id"] == "task_20250721_213627"
    assert metadata["legacy"] is False and metadata["has_log"] is True
    assert result.run_requests == []
    evaluations = check_evaluations(result)
    file_checks = {key: e for key, e in evaluations.items() if key[2] == made.timestamp}
    quality = file_checks.pop(("langchain_pg_embedding_backup", "vector_data_quality", made.timestamp))
    assert len(file_checks) == 6 and all(e.passed for e in file_checks.values())
    assert quality.severity == dg.AssetCheckSeverity.WARN and quality.description.endswith("2 empty documents")
    fresh = evaluations[("langchain_pg_embedding_backup", "freshness_check", None)]
    assert fresh.passed and fresh.description.startswith(f"fresh: the newest set {made.timestamp}")


def test_a_legacy_sets_sha256_check_is_a_warning_that_says_nothing_could_be_compared(ticker, store_db, backup_root):
    psql_legacy_set(store_db, backup_root / "vector_bak", "20250101_120500")

    result = ticker.tick()

    evaluations = check_evaluations(result)
    sha256 = evaluations[("langchain_pg_embedding_backup", "sha256_matches_manifest", "20250101_120500")]
    assert sha256.severity == dg.AssetCheckSeverity.WARN and not sha256.passed
    assert sha256.description.startswith("no checksum recorded: counted rows only")
    others = [e for (_, check, _), e in evaluations.items() if check in ("file_present", "row_count_matches_manifest")]
    assert len(others) == 4 and all(e.passed for e in others)
    assert result.run_requests == []


def test_the_newest_sets_checks_are_recorded_last_so_the_ui_shows_them(ticker, store_db, backup_root):
    psql_legacy_set(store_db, backup_root / "vector_bak", "20250101_120500")
    made = run_backup(BackupRequest(dsn=store_db, root=backup_root))

    result = ticker.tick()

    partitions = [e.partition for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation) and e.partition]
    assert partitions == sorted(partitions) and partitions[-1] == made.timestamp
    check = dg.AssetCheckKey(dg.AssetKey("langchain_pg_embedding_backup"), "sha256_matches_manifest")
    latest = ticker.instance.event_log_storage.get_latest_asset_check_execution_by_key([check])[check]
    assert latest.partition == made.timestamp and latest.evaluation.passed


def test_a_damaged_set_fails_its_checks_without_a_run(ticker, store_db, backup_root):
    made = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    path = made.paths[EMBEDDING_TABLE]
    path.write_bytes(path.read_bytes().replace(b"question", b"Question", 1))

    result = ticker.tick()

    sha256 = check_evaluations(result)[("langchain_pg_embedding_backup", "sha256_matches_manifest", made.timestamp)]
    assert not sha256.passed and sha256.severity == dg.AssetCheckSeverity.ERROR
    assert "does not match the manifest" in sha256.description and result.run_requests == []


def test_a_set_too_large_to_read_in_a_tick_gets_one_check_run(ticker, store_db, backup_root, monkeypatch):
    monkeypatch.setattr("vector_assets.defs.discovery.SENSOR_VERIFY_MAX_BYTES", 1000)
    made = run_backup(BackupRequest(dsn=store_db, root=backup_root))

    result = ticker.tick()

    assert [(r.job_name, r.partition_key) for r in result.run_requests] == [("check_vector_backup", made.timestamp)]
    recorded = [e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation) and e.partition]
    # no file was read; only the counts the manifest holds are recorded with the new partition
    assert [e.check_name for e in recorded] == ["vector_data_quality"]


def test_legacy_set_written_by_psql_copy_gets_rows_and_sha256(ticker, store_db, backup_root):
    folder = backup_root / "manual_20250101_120000" / "vector_bak"
    psql_legacy_set(store_db, folder, "20250101_120500")

    result = ticker.tick()

    assert added_keys(result) == ["20250101_120500"]
    for table, rows in ((COLLECTION_TABLE, 3), (EMBEDDING_TABLE, 300)):
        metadata = partition_metadata(ticker.instance, table, "20250101_120500")
        assert metadata["legacy"] is True
        assert metadata["rows"] == rows
        assert metadata["sha256"] == sha256_of_file(folder / csv_file_name(table, "20250101_120500"))
        assert metadata["has_log"] is False


def test_half_written_folders_wait_for_a_later_tick(ticker, store_db, backup_root):
    folder = backup_root / "vector_bak"
    psql_legacy_set(store_db, folder, "20250102_000000")
    (folder / csv_file_name(EMBEDDING_TABLE, "20250102_000000")).rename(
        folder / (csv_file_name(EMBEDDING_TABLE, "20250102_000000") + ".tmp")
    )
    psql_legacy_set(store_db, folder, "20250103_000000")
    (folder / csv_file_name(COLLECTION_TABLE, "20250103_000000")).unlink()  # partner file missing

    first = ticker.tick()
    assert added_keys(first) == [] and first.run_requests == [] and ticker.partitions == []

    (folder / (csv_file_name(EMBEDDING_TABLE, "20250102_000000") + ".tmp")).rename(
        folder / csv_file_name(EMBEDDING_TABLE, "20250102_000000")
    )
    second = ticker.tick()
    assert added_keys(second) == ["20250102_000000"]
    assert ticker.partitions == ["20250102_000000"]


def test_duplicate_timestamp_gets_a_key_naming_its_location(ticker, store_db, backup_root, capfd):
    psql_legacy_set(store_db, backup_root / "vector_bak", "20250104_000000")
    psql_legacy_set(store_db, backup_root / "task_20250104_000000" / "vector_bak", "20250104_000000")

    result = ticker.tick()

    assert added_keys(result) == ["20250104_000000", "20250104_000000__task_20250104_000000"]
    assert "registered as 20250104_000000__task_20250104_000000" in capfd.readouterr().err
    metadata = partition_metadata(ticker.instance, EMBEDDING_TABLE, "20250104_000000__task_20250104_000000")
    assert metadata["location"] == "task_20250104_000000/vector_bak"


def test_deleted_set_loses_its_partition(ticker, store_db, backup_root):
    kept = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    doomed_folder = backup_root / "task_20250105_000000" / "vector_bak"
    psql_legacy_set(store_db, doomed_folder, "20250105_000000")
    ticker.tick()
    assert ticker.partitions == sorted([kept.timestamp, "20250105_000000"])

    for path in doomed_folder.iterdir():
        path.unlink()
    result = ticker.tick()

    assert deleted_keys(result) == ["20250105_000000"]
    assert added_keys(result) == [] and result.run_requests == []
    assert ticker.partitions == [kept.timestamp]


def test_set_registered_by_the_backup_job_is_checked_but_not_reported_twice(ticker, store_db, backup_root):
    made = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    ticker.instance.add_dynamic_partitions(PARTITIONS, [made.timestamp])  # what the job's op does

    result = ticker.tick()

    assert added_keys(result) == []
    assert not any(isinstance(event, dg.AssetMaterialization) and event.asset_key != INVENTORY_KEY
                   for event in result.asset_events)  # no second report of the set
    assert len([key for key in check_evaluations(result) if key[2] == made.timestamp]) == 6
    assert result.run_requests == []


def test_second_tick_over_an_unchanged_root_reads_no_set_file(ticker, store_db, backup_root):
    run_backup(BackupRequest(dsn=store_db, root=backup_root))
    psql_legacy_set(store_db, backup_root / "task_20250106_000000" / "vector_bak", "20250106_000000")
    ticker.tick()

    opened: list[str] = []
    recording = [True]

    def audit(event: str, args: tuple) -> None:
        if recording[0] and event == "open" and isinstance(args[0], (str, Path)):
            opened.append(str(args[0]))

    sys.addaudithook(audit)  # audit hooks cannot be removed; the flag turns this one off
    try:
        result = ticker.tick()
        read_under_root = [path for path in opened if path.startswith(str(backup_root))]
        psql_legacy_set(store_db, backup_root / "task_20250107_000000" / "vector_bak", "20250107_000000")
        opened.clear()
        changed = ticker.tick()
    finally:
        recording[0] = False

    assert added_keys(result) == [] and deleted_keys(result) == []
    assert result.run_requests == [] and result.asset_events == []
    assert read_under_root == [], f"an unchanged tick opened {read_under_root}"
    assert added_keys(changed) == ["20250107_000000"]
    assert any(path.endswith("20250107_000000.csv") for path in opened), "the hook saw the new set being read"
    assert not any("20250106_000000" in path for path in opened), "the unchanged task folder was re-read"


SETS_PER_TASK_FOLDER = 10


def write_sets_in_task_folders(root: Path, first: int, last: int) -> None:
    """Tiny sets numbered ``first`` to ``last - 1``, one a day, ten to a task folder (every
    fifth without a manifest), as a task pipeline leaves them."""
    start = datetime(2024, 1, 1, 2)
    for number in range(first, last):
        timestamp = new_timestamp(start + timedelta(days=number))
        task = f"task_{new_timestamp(start + timedelta(days=number - number % SETS_PER_TASK_FOLDER))}"
        write_tiny_set(root / task / "vector_bak", timestamp, manifest=number % 5 != 0)


def files_a_tick_opens_for_one_new_set(ticker: Ticker, root: Path, task: str, timestamp: str, manifest: bool) -> list[str]:
    """The files under the root a tick opens that finds one new set in ``task``'s folder, its
    timestamp written as <new> and the folder as <task>."""
    write_tiny_set(root / task / "vector_bak", timestamp, manifest=manifest)
    with files_opened_under(root) as opened:
        result = ticker.tick()
    assert added_keys(result) == [timestamp]
    return sorted(name.replace(task, "<task>").replace(timestamp, "<new>") for name in opened)


def test_a_tick_with_one_new_set_among_2000_opens_no_more_files_than_among_20(ticker, backup_root):
    """What a tick opens grows with the sets that changed, not with the history: the new set's
    manifest and data files once each, the remembered set summaries, inventory lines and legacy
    row counts, and no file of any other set (the inventory is the remembered lines of the other
    locations and the new set's folder listed again)."""
    write_tiny_set(backup_root / "vector_bak", "20230101_020000", manifest=True)
    new_sets = {20: ("20230201_020000", "20230202_020000"), 2000: ("20230301_020000", "20230302_020000")}
    opened: dict[int, dict[bool, list[str]]] = {}
    written = 0
    for among, (with_manifest, legacy) in new_sets.items():
        write_sets_in_task_folders(backup_root, written, among - 1)
        written = among - 1
        while ticker.tick(store_events=False).dynamic_partitions_requests:
            pass  # the first ticks over many sets share them out within the sensor's time budget
        assert len(ticker.partitions) == among + (2 if among == 2000 else 0)  # and the new sets among 20
        task = f"task_{with_manifest}"  # both new sets in a folder of their own, at either size
        opened[among] = {
            True: files_a_tick_opens_for_one_new_set(ticker, backup_root, task, with_manifest, manifest=True),
            False: files_a_tick_opens_for_one_new_set(ticker, backup_root, task, legacy, manifest=False),
        }

    assert opened[2000] == opened[20], opened
    for files in opened[2000].values():
        assert len(files) <= 10, files
        assert all("<new>" in name or name.startswith(".vector_assets/") for name in files), files
    assert "<task>/vector_bak/vector_backup_<new>.json" in opened[2000][True]
    assert opened[2000][True].count("<task>/vector_bak/vector_backup_<new>.json") == 1, "the manifest is read once"


def test_a_tick_with_one_new_set_among_2000_lists_only_its_folder_again_and_totals_as_a_full_rebuild(
    ticker, backup_root
):
    """The inventory is not rebuilt from every set: each other folder is opened once, for the
    fingerprint discovery takes of it every tick (a full rebuild lists each once more), and the
    totals and the table of the newest sets are those of `build_inventory` over every set."""
    write_sets_in_task_folders(backup_root, 0, 2000)
    while ticker.tick(store_events=False).dynamic_partitions_requests:
        pass
    task = "task_20300101_000000"
    write_tiny_set(backup_root / task / "vector_bak", "20300101_020000", manifest=True)

    with folders_opened_under(backup_root) as opened:
        result = ticker.tick()

    assert added_keys(result) == ["20300101_020000"]
    other_folders = {folder: count for folder, count in opened.items() if folder.endswith("/vector_bak")
                     and not folder.startswith(task)}
    assert len(other_folders) == 200 and set(other_folders.values()) == {1}, other_folders
    (inventory,) = [e for e in result.asset_events if getattr(e, "asset_key", None) == INVENTORY_KEY]
    full = InventorySummary.of(build_inventory(InventoryRequest(root=backup_root)))
    metadata = {name: value.value for name, value in inventory.metadata.items()}
    assert (metadata["total_backup_sets"], metadata["global_backups"], metadata["task_backups"]) == (
        full.total_backup_sets, full.global_backups, full.task_backups
    ) == (2001, 0, 2001)
    assert (metadata["total_locations"], metadata["total_bytes"]) == (full.total_locations, full.total_bytes)
    shown = [record.data for record in metadata["backup_sets"].records]
    assert len(shown) == NEWEST_SETS_SHOWN < 2001
    assert shown == [{name: record[name] for name in shown[0]} for record in full.newest]
    assert shown[0]["key"] == "20300101_020000"


def test_unreadable_manifest_is_skipped_until_fixed(ticker, store_db, backup_root):
    made = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    manifest = made.folder.path / manifest_file_name(made.timestamp)
    good = manifest.read_bytes()
    manifest.write_text("{not json")

    assert added_keys(ticker.tick()) == []

    manifest.write_bytes(good)
    assert added_keys(ticker.tick()) == [made.timestamp]


def test_missing_root_removes_nothing(ticker, store_db, backup_root, monkeypatch):
    made = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    ticker.tick()
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", str(backup_root / "not-mounted"))

    result = ticker.tick()

    assert "does not exist" in str(result.skip_message)
    assert ticker.partitions == [made.timestamp]


def test_inventory_table_is_reported_when_the_sets_change(ticker, store_db, backup_root):
    made = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    psql_legacy_set(store_db, backup_root / "task_20250108_000000" / "vector_bak", "20250108_000000")
    ticker.tick()

    table = inventory_rows(ticker.instance)
    assert [(row["key"], row["location"], row["legacy"]) for row in table] == [
        (made.timestamp, "global", False), ("20250108_000000", "task_20250108_000000", True)
    ]
    assert table[0]["embedding_rows"] == 300 and table[0]["has_log"] is True

    unchanged = ticker.tick()
    assert unchanged.asset_events == []

    for path in (backup_root / "task_20250108_000000" / "vector_bak").iterdir():
        path.unlink()
    ticker.tick()
    assert [row["key"] for row in inventory_rows(ticker.instance)] == [made.timestamp]


def inventory_rows(instance: dg.DagsterInstance) -> list[dict]:
    event = instance.get_latest_materialization_event(INVENTORY_KEY)
    assert event is not None, "no inventory was reported"
    table = event.asset_materialization.metadata["backup_sets"]
    return [record.data for record in table.records]


def link_a_task_folder_outside_the_root(backup_root: Path, outside: Path) -> None:
    write_tiny_set(outside, "20250101_020000")
    (backup_root / "task_20250101_000000").mkdir()
    (backup_root / "task_20250101_000000" / "vector_bak").symlink_to(outside)


def test_a_location_symlinked_outside_the_root_is_skipped_and_reported_and_blocks_nothing(
    ticker, store_db, backup_root, tmp_path, monkeypatch, capsys
):
    link_a_task_folder_outside_the_root(backup_root, tmp_path / "elsewhere")
    made = run_backup(BackupRequest(dsn=store_db, root=backup_root))

    result = ticker.tick()
    assert added_keys(result) == [made.timestamp]
    inventory = ticker.instance.get_latest_materialization_event(INVENTORY_KEY).asset_materialization
    (warning,) = inventory.metadata["warnings"].value
    assert warning.startswith("task_20250101_000000/vector_bak was not read") and "outside the root" in warning

    restored = run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=made.timestamp,
                                          truncate_before_restore=True))
    assert restored.tables[1].rows_loaded == 300
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", str(backup_root))
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert made.timestamp in out and "warning: task_20250101_000000/vector_bak was not read" in out
    with pytest.raises(BackupSetNotFoundError):
        run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp="20250101_020000"))


def test_a_legacy_set_that_is_not_utf8_is_registered_as_unreadable_and_the_others_go_on(ticker, store_db, backup_root):
    folder = backup_root / "task_20250101_000000" / "vector_bak"
    write_tiny_legacy_set(folder, "20250101_020000", embedding_bytes=b"id,document\n1,caf\xe9 \xff\n")
    made = run_backup(BackupRequest(dsn=store_db, root=backup_root))

    result = ticker.tick()

    assert added_keys(result) == sorted(["20250101_020000", made.timestamp])
    bad = partition_metadata(ticker.instance, EMBEDDING_TABLE, "20250101_020000")
    assert bad["readable"] is False and "langchain_pg_embedding_20250101_020000.csv is not valid UTF-8" in bad["error"]
    assert partition_metadata(ticker.instance, EMBEDDING_TABLE, made.timestamp)["rows"] == 300
    again = ticker.tick()
    assert added_keys(again) == [] and again.asset_events == []
    newer = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    assert added_keys(ticker.tick()) == [newer.timestamp]


def test_the_inventory_table_puts_what_matters_first(ticker, store_db, backup_root):
    """The UI cuts a wide table off on the right: the set, its kind, its rows and its size come first."""
    run_backup(BackupRequest(dsn=store_db, root=backup_root))

    result = ticker.tick()

    (inventory,) = [e for e in result.asset_events if getattr(e, "asset_key", None) == INVENTORY_KEY]
    table = inventory.metadata["backup_sets"]
    assert [column.name for column in table.schema.columns][:5] == [
        "key", "kind", "collection_rows", "embedding_rows", "total_size",
    ]
    assert list(table.records[0].data)[:5] == ["key", "kind", "collection_rows", "embedding_rows", "total_size"]


def test_a_lost_or_reset_cursor_reports_the_sets_again_without_failing_on_their_recorded_checks(
    dagster_instance, store_db, backup_root
):
    from vector_assets.core.ops.backup import BackupRequest, run_backup

    key = run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp="20250101_020000")).timestamp
    Ticker(dagster_instance).tick()
    recorded = dagster_instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("langchain_pg_embedding_backup"), "sha256_matches_manifest"), limit=10)

    again = Ticker(dagster_instance).tick()  # a new ticker: no cursor, as after a reset

    assert [record.partition for record in recorded] == [key]
    assert not [event for event in again.asset_events if isinstance(event, dg.AssetCheckEvaluation)]
    assert key in dagster_instance.get_dynamic_partitions("vector_backups")
