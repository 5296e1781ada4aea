"""The partition picker says which set is which: a safety set's or an increment's key carries its
kind (``<timestamp>__pre_restore``, ``__pre_truncate``, ``__incremental``), a full backup's key
stays its timestamp, and a key registered before keys carried kinds still finds its set."""

from __future__ import annotations

import json

from vector_assets.cli import main
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets.core.ops.truncate import TruncateRequest, run_guarded_truncate
from vector_assets.core.sets.discovery import CURSOR_VERSION, DiscoveryCursor, FolderState, discover
from vector_assets.core.sets.manifest import INCREMENTAL
from vector_assets_tests.support.dagster import PARTITIONS, Ticker, output_metadata, run_job
from vector_assets_tests.support.database import tables_now


def one_of_each_kind(store_db: str, backup_root) -> dict[str, str]:
    """A full set, a pre_restore set, an increment and a pre_truncate set: kind -> timestamp."""
    full = run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp="20250101_020000", row_index=True))
    safety = run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=full.timestamp,
                                        truncate_before_restore=True)).safety_set
    increment = run_backup(BackupRequest(dsn=store_db, root=backup_root, kind=INCREMENTAL))
    truncated = run_guarded_truncate(TruncateRequest(dsn=store_db, root=backup_root)).backup
    return {"full": full.timestamp, "pre_restore": safety.timestamp, "incremental": increment.timestamp,
            "pre_truncate": truncated.timestamp}


def test_the_picker_shows_each_sets_kind_in_its_key(dagster_instance, store_db, backup_root, monkeypatch, capsys):
    made = one_of_each_kind(store_db, backup_root)

    Ticker(dagster_instance).tick()

    expected = {made["full"]} | {f"{made[kind]}__{kind}" for kind in ("pre_restore", "incremental", "pre_truncate")}
    assert set(dagster_instance.get_dynamic_partitions(PARTITIONS)) == expected
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", str(backup_root))
    assert main(["list", "--json"]) == 0
    listed = {entry["key"] for entry in json.loads(capsys.readouterr().out)["backup_locations"][0]["backups"]}
    assert listed == expected


def test_a_key_registered_before_keys_carried_kinds_still_restores_its_set(dagster_instance, store_db, backup_root):
    made = one_of_each_kind(store_db, backup_root)
    old_key = made["pre_restore"]  # as an earlier version registered it: the bare timestamp
    dagster_instance.add_dynamic_partitions(PARTITIONS, [old_key])
    before = tables_now(store_db)

    result = run_job(dagster_instance, "restore_vector_tables", partition_key=old_key)  # a dry run

    assert result.success
    metadata = output_metadata(result, "restore_from_backup_set")
    assert metadata["backup_partition"].value == f"{old_key}__pre_restore"
    assert tables_now(store_db) == before


def test_a_cursor_of_the_earlier_version_keeps_what_was_reported_and_re_keys_once(dagster_instance, store_db,
                                                                                  backup_root):
    """As the earlier version left things: every set registered under its bare timestamp, and a
    version 1 cursor (folders without key labels) that reported them so."""
    made = one_of_each_kind(store_db, backup_root)
    found = discover(backup_root, DiscoveryCursor()).sets
    bare = {f.identity: f.timestamp for f in found}
    dagster_instance.add_dynamic_partitions(PARTITIONS, sorted(bare.values()))
    old = {"version": 1, "folders": {"vector_bak": [None, sorted(bare.values())]}, "reported": bare}
    assert DiscoveryCursor.from_json(json.dumps(old)).reported == bare
    ticker = Ticker(dagster_instance)
    ticker.cursor = json.dumps(old)

    ticker.tick()

    relabelled = {f"{made[kind]}__{kind}" for kind in ("pre_restore", "incremental", "pre_truncate")}
    assert set(dagster_instance.get_dynamic_partitions(PARTITIONS)) == {made["full"]} | relabelled
    assert json.loads(ticker.cursor)["version"] == CURSOR_VERSION
    again = ticker.tick()
    assert not again.dynamic_partitions_requests


def test_only_a_real_duplicate_timestamp_is_logged_and_only_when_first_reported(dagster_instance, store_db,
                                                                               backup_root, capfd):
    one_of_each_kind(store_db, backup_root)
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp="20250101_020000",
                             task_id="manual_20250101_000000"))
    ticker = Ticker(dagster_instance)
    capfd.readouterr()

    ticker.tick()
    first = [line for line in capfd.readouterr().err.splitlines() if "more than one location" in line]
    ticker.tick()
    second = [line for line in capfd.readouterr().err.splitlines() if "more than one location" in line]

    assert len(first) == 1 and "20250101_020000__manual_20250101_000000" in first[0]
    assert second == []


def test_the_cursor_names_only_the_sets_not_reported_under_their_folders_key_and_reads_back_whole():
    folders = {
        "vector_bak": FolderState("1:2:9", ["20250101_020000", "20250102_020000", "20250103_020000"],
                                  {"20250102_020000": "incremental"}),
        "task_20250101_000000/vector_bak": FolderState("3:2:4", ["20250101_020000", "20250104_020000"], {}),
    }
    reported = {
        "vector_bak/20250101_020000": "20250101_020000",
        "vector_bak/20250102_020000": "20250102_020000__incremental",
        "task_20250101_000000/vector_bak/20250101_020000": "20250101_020000__task_20250101_000000",
        "task_20250101_000000/vector_bak/20250104_020000": "20250104_020000",
    }  # vector_bak/20250103_020000 not reported yet
    text = DiscoveryCursor(folders, reported).to_json()

    assert json.loads(text)["not_reported"] == ["vector_bak/20250103_020000"]
    assert json.loads(text)["reported_otherwise"] == {
        "task_20250101_000000/vector_bak/20250101_020000": "20250101_020000__task_20250101_000000",
    }
    assert DiscoveryCursor.from_json(text) == DiscoveryCursor(folders, reported)
