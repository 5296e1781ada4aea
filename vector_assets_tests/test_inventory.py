"""The inventory (`vector-assets list`): seed 000's list API shape, order, filters and bad input."""

import json
import os
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from vector_assets.cli import main
from vector_assets.core.errors import InvalidTaskIdError
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.sets.catalog import SetCatalog
from vector_assets.core.sets.manifest import Manifest
from vector_assets.core.sets.roots import open_root
from vector_assets.core.sets.inventory import (
    InventoryRequest,
    build_inventory,
    inventory_table_records,
)
from vector_assets.core.units import human_size
from vector_assets_tests.support.database import execute
from vector_assets_tests.support.files import (
    files_opened_under,
    folder_snapshot,
    write_tiny_legacy_set,
    write_tiny_set,
)

SEED_SCAN_TIME = datetime(2025, 7, 22, 10, 30, 45, tzinfo=timezone(timedelta(hours=8)))
SEED_ENTRY_KEYS = {
    "timestamp", "collection_file", "embedding_file", "collection_size", "embedding_size",
    "backup_date", "has_log", "log_file",
}
OUR_ENTRY_KEYS = {"key", "legacy", "rows", "total_bytes", "file_count", "kind", "parent", "rows_after"}
HUMAN_SIZE = re.compile(r"\d+ B|\d+\.\d (kB|MB|GB)")
LEGACY_TASK = "task_20250721_183935"
LEGACY_TIMESTAMP = "20250721_201447"
HALF_WRITTEN_TIMESTAMP = "20250723_000000"


@pytest.fixture
def populated_root(store_db, backup_root):
    """Two global sets, sets in a task and a manual folder, a legacy task set, a half-written set."""
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp="20250720_080000"))
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp="20250722_010318"))
    run_backup(BackupRequest(dsn=store_db, root=backup_root, task_id="task_20250721_213627", timestamp="20250721_215758"))
    run_backup(BackupRequest(dsn=store_db, root=backup_root, task_id="manual_20250801_090000", timestamp="20250801_090500"))
    write_tiny_legacy_set(backup_root / LEGACY_TASK / "vector_bak", LEGACY_TIMESTAMP)
    global_folder = backup_root / "vector_bak"
    (global_folder / f"langchain_pg_collection_{HALF_WRITTEN_TIMESTAMP}.csv").write_text("uuid,name,cmetadata\n")
    (global_folder / f"langchain_pg_embedding_{HALF_WRITTEN_TIMESTAMP}.csv.tmp").write_text("id\n")
    return backup_root


def listed(inventory) -> list[tuple[str | None, list[str]]]:
    return [(loc.location.task_id, [entry.key for entry in loc.backups]) for loc in inventory.locations]


def test_sets_are_grouped_global_first_then_tasks_newest_first_each_newest_first(populated_root):
    inventory = build_inventory(InventoryRequest(root=populated_root))
    assert listed(inventory) == [
        (None, ["20250722_010318", "20250720_080000"]),
        ("manual_20250801_090000", ["20250801_090500"]),
        ("task_20250721_213627", ["20250721_215758"]),
        (LEGACY_TASK, [LEGACY_TIMESTAMP]),
    ]
    assert HALF_WRITTEN_TIMESTAMP not in {entry.key for loc in inventory.locations for entry in loc.backups}


def test_json_has_the_shape_of_the_seed_list_api(populated_root, store_db):
    inventory = build_inventory(InventoryRequest(root=populated_root), now=SEED_SCAN_TIME)
    body = json.loads(json.dumps(inventory.to_json()))
    assert set(body) == {"response", "backup_locations", "summary", "timestamp"}
    assert body["response"] == "found 5 backup sets in 4 locations"
    assert body["summary"] == {
        "total_locations": 4, "total_backup_sets": 5, "global_backups": 2, "task_backups": 3,
        "scan_time": "2025-07-22T10:30:45+08:00",
    }
    assert body["timestamp"] == "2025-07-22T10:30:45+08:00"
    global_location, manual_location, task_location, legacy_location = body["backup_locations"]
    assert set(global_location) == {"type", "relative_path", "backups"} and global_location["type"] == "global"
    assert set(task_location) == {"type", "task_id", "relative_path", "backups"}
    assert (task_location["type"], task_location["task_id"]) == ("task", "task_20250721_213627")
    assert (manual_location["type"], manual_location["task_id"]) == ("task", "manual_20250801_090000")
    assert task_location["relative_path"] == f"{populated_root}/task_20250721_213627/vector_bak"
    entries = [entry for location in body["backup_locations"] for entry in location["backups"]]
    assert len(entries) == 5
    assert [set(entry) for entry in entries] == [SEED_ENTRY_KEYS | OUR_ENTRY_KEYS] * 5

    (newest_global, _) = global_location["backups"]
    folder = populated_root / "vector_bak"
    collection = folder / "langchain_pg_collection_20250722_010318.csv"
    embedding = folder / "langchain_pg_embedding_20250722_010318.csv"
    manifest = folder / "vector_backup_20250722_010318.json"  # every file of the set counts, as prune frees it
    embedding_rows = execute(store_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0]
    assert newest_global == {
        "timestamp": "20250722_010318",
        "collection_file": collection.name,
        "embedding_file": embedding.name,
        "collection_size": human_size(collection.stat().st_size),
        "embedding_size": human_size(embedding.stat().st_size),
        "backup_date": "2025-07-22 01:03:18",
        "has_log": True,
        "log_file": "vector_backup_log.txt",
        "key": "20250722_010318",
        "legacy": False,
        "rows": {"langchain_pg_collection": 3, "langchain_pg_embedding": embedding_rows},
        "total_bytes": collection.stat().st_size + embedding.stat().st_size + manifest.stat().st_size,
        "file_count": 3,
        "kind": "full",
        "parent": None,
        "rows_after": {"langchain_pg_collection": 3, "langchain_pg_embedding": embedding_rows},
    }
    assert all(HUMAN_SIZE.fullmatch(newest_global[name]) for name in ("collection_size", "embedding_size"))


def test_a_legacy_set_is_listed_from_stat_alone_without_reading_its_csv(backup_root):
    """The embedding file is not even UTF-8: a listing that parsed it would fail."""
    garbage = b"\xff\xfe not csv \x00\x81" * 100
    write_tiny_legacy_set(backup_root / LEGACY_TASK / "vector_bak", LEGACY_TIMESTAMP, embedding_bytes=garbage)
    body = build_inventory(InventoryRequest(root=backup_root)).to_json()
    (entry,) = body["backup_locations"][0]["backups"]
    assert entry["legacy"] is True and entry["rows"] is None
    assert entry["embedding_size"] == human_size(len(garbage)) == "1.3 kB"
    assert (entry["has_log"], entry["log_file"]) == (False, None)


def test_a_set_whose_file_was_deleted_is_still_listed_with_the_file_missing(store_db, backup_root):
    result = run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp="20250722_010318"))
    result.paths["langchain_pg_embedding"].unlink()
    inventory = build_inventory(InventoryRequest(root=backup_root))
    (entry,) = inventory.locations[0].backups
    assert entry.to_json()["embedding_size"] is None
    manifest = result.paths["langchain_pg_collection"].parent / f"vector_backup_{result.timestamp}.json"
    assert entry.total_bytes == result.paths["langchain_pg_collection"].stat().st_size + manifest.stat().st_size
    assert "embedding file missing" in inventory.format_text()


def test_global_only_lists_the_global_folder(populated_root):
    inventory = build_inventory(InventoryRequest(root=populated_root, global_only=True))
    assert listed(inventory) == [(None, ["20250722_010318", "20250720_080000"])]
    assert (inventory.global_backups, inventory.task_backups) == (2, 0)


def test_task_id_lists_one_task_folder_and_wins_over_global_only(populated_root):
    for global_only in (False, True):
        inventory = build_inventory(InventoryRequest(root=populated_root, global_only=global_only, task_id=LEGACY_TASK))
        assert listed(inventory) == [(LEGACY_TASK, [LEGACY_TIMESTAMP])]
        assert inventory.to_json()["summary"]["task_backups"] == 1


def test_a_task_without_sets_gives_an_empty_inventory(populated_root):
    body = build_inventory(InventoryRequest(root=populated_root, task_id="task_20990101_000000")).to_json()
    assert body["backup_locations"] == [] and body["summary"]["total_backup_sets"] == 0
    assert body["response"].startswith("no backup sets found")


def test_a_repeated_timestamp_keeps_the_partition_key_of_the_whole_root(store_db, backup_root):
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp="20250101_000000"))
    run_backup(BackupRequest(dsn=store_db, root=backup_root, task_id="task_20250104_000000", timestamp="20250101_000000"))
    inventory = build_inventory(InventoryRequest(root=backup_root, task_id="task_20250104_000000"))
    assert listed(inventory) == [("task_20250104_000000", ["20250101_000000__task_20250104_000000"])]


def test_relative_path_and_timestamp_find_the_same_set_for_a_restore(populated_root):
    configured = str(populated_root)
    inventory = build_inventory(InventoryRequest(root=populated_root, configured_root=configured))
    catalog = SetCatalog(populated_root, configured)
    listed_keys, found_keys = [], []
    for location in inventory.to_json()["backup_locations"]:
        for entry in location["backups"]:
            listed_keys.append(entry["key"])
            found_keys.append(catalog.locate(entry["timestamp"], location["relative_path"]).key)
    assert found_keys == listed_keys == [
        "20250722_010318", "20250720_080000", "20250801_090500", "20250721_215758", LEGACY_TIMESTAMP,
    ]


@pytest.mark.parametrize("bad", ["../x", "task-1", "task_1/../..", "", "tâche_1"])
def test_invalid_task_id_is_refused_by_name(bad, backup_root):
    with pytest.raises(InvalidTaskIdError, match=f"{bad!r}.*letters, digits and underscores"):
        InventoryRequest(root=backup_root, task_id=bad)


def test_cli_refuses_an_invalid_task_id_with_exit_code_2(populated_root, monkeypatch, capsys):
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", str(populated_root))
    before = folder_snapshot(populated_root)
    assert main(["list", "--task-id", "task-1"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "'task-1'" in err and "letters, digits and underscores" in err and "Traceback" not in err
    assert folder_snapshot(populated_root) == before


def test_cli_json_output_parses_and_matches_the_core(populated_root, monkeypatch, capsys):
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", str(populated_root))
    assert main(["list", "--json", "--global-only"]) == 0
    body = json.loads(capsys.readouterr().out)
    core = build_inventory(InventoryRequest(root=populated_root, global_only=True)).to_json()
    assert body["backup_locations"] == core["backup_locations"]
    assert body["summary"]["total_backup_sets"] == 2


def test_cli_text_output_shows_locations_human_sizes_and_counts(populated_root, monkeypatch, capsys):
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", str(populated_root))
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    size = human_size((populated_root / "vector_bak" / "langchain_pg_embedding_20250722_010318.csv").stat().st_size)
    assert f"embedding {size}" in out and HUMAN_SIZE.fullmatch(size)
    assert out.index("global: ") < out.index("task manual_20250801_090000") < out.index(f"task {LEGACY_TASK}")
    assert out.index("20250722_010318  2025-07-22 01:03:18") < out.index("20250720_080000")
    assert "legacy, rows not counted yet" in out
    assert out.rstrip().endswith("4 locations, 5 backup sets (2 global, 3 task)")


def test_cli_on_an_absent_root_prints_an_empty_inventory(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", str(tmp_path / "nowhere"))
    assert main(["list"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("0 locations, 0 backup sets (0 global, 0 task)")
    assert main(["list", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["backup_locations"] == [] and body["response"].startswith("no backup sets found")
    assert not (tmp_path / "nowhere").exists()


def test_cli_shows_the_default_root_as_the_seed_did(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VECTOR_ASSETS_ROOT", raising=False)
    write_tiny_legacy_set(tmp_path / "data_pipeline" / "training_data" / "vector_bak", "20250722_010318")
    assert main(["list", "--json"]) == 0
    (location,) = json.loads(capsys.readouterr().out)["backup_locations"]
    assert location["relative_path"] == "./data_pipeline/training_data/vector_bak"


def test_table_records_are_one_flat_row_per_set_for_dagster(populated_root, store_db):
    records = inventory_table_records(build_inventory(InventoryRequest(root=populated_root)))
    assert [record["key"] for record in records] == [
        "20250722_010318", "20250720_080000", "20250801_090500", "20250721_215758", LEGACY_TIMESTAMP,
    ]
    first, legacy = records[0], records[-1]
    embedding_rows = execute(store_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0]
    assert (first["location"], first["collection_rows"], first["embedding_rows"]) == ("global", 3, embedding_rows)
    assert first["total_size"] == human_size(first["total_bytes"]) and first["has_log"] is True
    assert (legacy["location"], legacy["legacy"], legacy["embedding_rows"]) == (LEGACY_TASK, True, None)
    assert legacy["has_log"] is False
    table = dg.MetadataValue.table(records=[dg.TableRecord(record) for record in records])
    assert len(table.records) == 5


def test_the_remembered_summaries_are_a_cache_never_the_answer(backup_root):
    """A manifest rewritten in place (as a rekey does), at the same size, is read again; a
    damaged summaries file costs a read of every manifest, never a wrong list."""
    folder = backup_root / "vector_bak"
    for timestamp in ("20250101_020000", "20250102_020000"):
        write_tiny_set(folder, timestamp, manifest=True)

    def rows_listed() -> dict[str, int]:
        (location,) = build_inventory(InventoryRequest(root=backup_root)).locations
        return {entry.key: entry.rows["langchain_pg_embedding"] for entry in location.backups}

    assert rows_listed() == {"20250101_020000": 1, "20250102_020000": 1}
    manifest = folder / "vector_backup_20250102_020000.json"
    before = Manifest.read(open_root(backup_root).folder_at("vector_bak"), manifest.name)
    table = replace(before.tables["langchain_pg_embedding"], rows=7)  # one digit for another
    rewritten = replace(before, tables={**before.tables, "langchain_pg_embedding": table}).to_json().encode()
    assert len(rewritten) == manifest.stat().st_size
    manifest.write_bytes(rewritten)
    os.utime(manifest, ns=(manifest.stat().st_atime_ns, manifest.stat().st_mtime_ns + 1_000_000_000))
    with files_opened_under(backup_root) as opened:
        assert rows_listed() == {"20250101_020000": 1, "20250102_020000": 7}
    assert "vector_bak/vector_backup_20250102_020000.json" in opened
    assert "vector_bak/vector_backup_20250101_020000.json" not in opened

    summaries = backup_root / ".vector_assets" / "set_summaries.json"
    for damaged in ('{"20250102_020000": [1]}', "{not json"):
        summaries.write_text(json.dumps({"version": 2, "locations": {"vector_bak": damaged}}))
        assert rows_listed() == {"20250101_020000": 1, "20250102_020000": 7}
    summaries.write_text('{"version": 1, "sets": {"x": [1]}}')  # an earlier version's file
    assert rows_listed() == {"20250101_020000": 1, "20250102_020000": 7}
