"""The same fact reads the same everywhere: a legacy set's rows, and sizes in one unit system."""

import json

from vector_assets.cli import main
from vector_assets.core.sets.inventory import InventoryRequest, build_inventory
from vector_assets_tests.support.database import STORE_TABLES
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.prune import PruneRequest, run_prune
from vector_assets.core.sets.retention import RetentionPolicy
from vector_assets.core.sets.writer import PartPolicy
from vector_assets.core.units import count_of, human_size
from vector_assets_tests.support.chains import build_chain
from vector_assets_tests.support.dagster import INVENTORY_KEY, Ticker, partition_metadata
from vector_assets_tests.support.database import execute
from vector_assets_tests.support.files import psql_legacy_set

LEGACY = "20250101_120500"


def test_a_legacy_sets_rows_agree_in_the_metadata_the_inventory_and_the_cli(
    dagster_instance, store_db, backup_root, capsys
):
    psql_legacy_set(store_db, backup_root / "vector_bak", LEGACY)
    in_database = {table: execute(store_db, f"SELECT count(*) FROM {table}")[0][0] for table in STORE_TABLES}

    Ticker(dagster_instance).tick()

    in_metadata = {table: partition_metadata(dagster_instance, table, LEGACY)["rows"] for table in STORE_TABLES}
    (entry,) = build_inventory(InventoryRequest(root=backup_root)).locations[0].backups
    assert main(["list", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)["backup_locations"][0]["backups"]
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    assert in_metadata == dict(entry.rows) == listed["rows"] == in_database
    assert f"embedding {human_size(entry.sizes['langchain_pg_embedding'])} ({in_database['langchain_pg_embedding']:,} rows)" in text
    assert "not counted yet" not in text


def test_a_legacy_set_changed_after_counting_is_not_given_the_old_count(dagster_instance, store_db, backup_root):
    folder = backup_root / "vector_bak"
    psql_legacy_set(store_db, folder, LEGACY)
    Ticker(dagster_instance).tick()
    embedding = folder / f"langchain_pg_embedding_{LEGACY}.csv"
    embedding.write_bytes(embedding.read_bytes() + b"extra,row,,,\n")

    (entry,) = build_inventory(InventoryRequest(root=backup_root)).locations[0].backups

    assert entry.rows is None


def test_sizes_are_decimal_like_the_rates():
    assert [human_size(n) for n in (999, 1_000, 11_100_000, 2_500_000_000)] == ["999 B", "1.0 kB", "11.1 MB", "2.5 GB"]


def line_of(output: str, key: str) -> str:
    (line,) = [line for line in output.splitlines() if key in line.split()[:2]]
    return line


def test_a_sets_size_reads_the_same_in_list_prune_verify_and_its_partition(dagster_instance, store_db, backup_root, capsys):
    """An increment and its full parent with a row index: every file of the set counts, in one unit."""
    full, increment = build_chain(store_db, backup_root, ["20250101_020000", "20250102_020000"])
    Ticker(dagster_instance).tick()
    sizes = {}
    for result, key in ((full, full.timestamp), (increment, f"{increment.timestamp}__incremental")):
        files = [p for p in (backup_root / "vector_bak").iterdir()
                 if result.timestamp in p.name and p.name != "vector_backup_log.txt"]
        sizes[key] = human_size(sum(p.stat().st_size for p in files))

    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert main(["prune"]) == 0
    pruned = capsys.readouterr().out
    assert main(["verify", increment.timestamp]) == 0
    verified = capsys.readouterr().out

    for key, size in sizes.items():
        assert f"{size} total" in line_of(listed, key)
        assert size in line_of(pruned, key)
        assert partition_metadata(dagster_instance, "langchain_pg_embedding", key)["set_size"] == size
    assert "bytes)" not in verified
    embedding_files = [p for p in (backup_root / "vector_bak").iterdir()
                       if p.name.startswith(f"langchain_pg_embedding_{increment.timestamp}")]
    assert f"present ({human_size(sum(p.stat().st_size for p in embedding_files))})" in verified


def test_a_count_of_one_reads_in_the_singular_everywhere(dagster_instance, store_db, backup_root, capsys):
    assert [count_of(n, "row") for n in (0, 1, 2, 3000)] == ["0 rows", "1 row", "2 rows", "3,000 rows"]
    execute(store_db, "DELETE FROM langchain_pg_collection WHERE name <> 'sql'")  # one collection left
    made = run_backup(BackupRequest(dsn=store_db, root=backup_root))

    assert main(["verify", made.timestamp]) == 0
    verified = capsys.readouterr().out
    assert main(["list"]) == 0
    listed = capsys.readouterr().out

    assert "has the manifest's 1 row" in verified and "1 rows" not in verified
    assert "(1 row)" in listed and "1 rows" not in listed


def test_list_the_inventory_and_prune_count_the_same_files_and_bytes_for_every_kind_of_set(
    dagster_instance, store_db, backup_root, capsys
):
    """A full set, an increment (its row index and deleted keys) and a set in parts: `list
    --json`, the inventory the sensor reports, the prune plan and what prune then deletes all
    count every file the set owns, its manifest included, and nothing else."""
    build_chain(store_db, backup_root, ["20250101_020000", "20250102_020000"])
    in_parts = run_backup(BackupRequest(
        dsn=store_db, root=backup_root, timestamp="20250103_020000", format="pgcopy.zst",
        parts=PartPolicy(part_bytes=64 * 1024, max_parts=3),
    ))
    assert len(in_parts.manifest.tables["langchain_pg_embedding"].parts) > 1
    folder = backup_root / "vector_bak"
    keys = {"20250101_020000": "20250101_020000", "20250102_020000__incremental": "20250102_020000",
            "20250103_020000": "20250103_020000"}
    on_disk = {key: {p.name: p.stat().st_size for p in folder.iterdir() if ts in p.name} for key, ts in keys.items()}

    result = Ticker(dagster_instance).tick()
    (inventory,) = [e for e in result.asset_events if getattr(e, "asset_key", None) == INVENTORY_KEY]
    reported = {record.data["key"]: record.data["total_bytes"] for record in inventory.metadata["backup_sets"].value.records}
    assert main(["list", "--json"]) == 0
    listed = {entry["key"]: entry for entry in json.loads(capsys.readouterr().out)["backup_locations"][0]["backups"]}
    plan = run_prune(PruneRequest(root=backup_root, policy=RetentionPolicy(0, 0, 0))).plan
    planned = {p.key: p for p in plan.sets}

    for key, files in on_disk.items():
        assert listed[key]["total_bytes"] == reported[key] == planned[key].bytes == sum(files.values()), key
        assert listed[key]["file_count"] == len(planned[key].files) == len(files), key
        assert set(planned[key].files) == set(files), key
    pruned = run_prune(PruneRequest(root=backup_root, policy=RetentionPolicy(0, 0, 0), dry_run=False))
    assert sorted(p.key for p in pruned.deleted) == ["20250101_020000", "20250102_020000__incremental"]
    assert pruned.bytes_freed == sum(planned[p.key].bytes for p in pruned.deleted)
    left = {p.name for p in folder.iterdir()}
    assert not left & {name for p in pruned.deleted for name in planned[p.key].files}
    assert set(on_disk["20250103_020000"]) <= left
