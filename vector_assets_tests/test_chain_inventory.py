"""The inventory (CLI list, its JSON, the inventory asset's table) and the partitions the sensor
registers show each set's kind and parent, and an increment's rows before and after."""

import json

from vector_assets.cli import main
from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE
from vector_assets_tests.support.database import STORE_TABLES
from vector_assets_tests.support.chains import build_chain
from vector_assets_tests.support.dagster import INVENTORY_KEY, Ticker, partition_metadata

CHAIN = ["20250301_020000", "20250301_030000", "20250301_040000"]
BASE, MIDDLE, TIP = CHAIN
# An increment's partition key says what it is; its parent is named by timestamp.
MIDDLE_KEY, TIP_KEY = f"{MIDDLE}__incremental", f"{TIP}__incremental"


def test_the_inventory_and_the_sensors_partitions_show_kind_parent_and_rows_after(
    store_db, backup_root, dagster_instance, capsys
):
    results = build_chain(store_db, backup_root, CHAIN, format="csv.zst")
    tip = results[-1].manifest.tables[EMBEDDING_TABLE]

    Ticker(dagster_instance).tick()

    assert partition_metadata(dagster_instance, EMBEDDING_TABLE, BASE)["kind"] == "full"
    assert set(dagster_instance.get_dynamic_partitions("vector_backups")) == {BASE, MIDDLE_KEY, TIP_KEY}
    for key, parent in ((MIDDLE_KEY, BASE), (TIP_KEY, MIDDLE)):
        for table in STORE_TABLES:
            metadata = partition_metadata(dagster_instance, table, key)
            assert (metadata["kind"], metadata["parent"]) == ("incremental", parent)
    tip_metadata = partition_metadata(dagster_instance, EMBEDDING_TABLE, TIP_KEY)
    assert (tip_metadata["rows_changed_or_added"], tip_metadata["keys_deleted"], tip_metadata["rows_after"]) == (
        5, 1, tip.rows_after
    )
    event = dagster_instance.get_latest_materialization_event(INVENTORY_KEY)
    records = {record.data["key"]: record.data for record in event.asset_materialization.metadata["backup_sets"].records}
    assert {key: (row["kind"], row["parent"]) for key, row in records.items()} == {
        BASE: ("full", None), MIDDLE_KEY: ("incremental", BASE), TIP_KEY: ("incremental", MIDDLE),
    }

    assert main(["list", "--json"]) == 0
    (location,) = json.loads(capsys.readouterr().out)["backup_locations"]
    entries = {entry["key"]: entry for entry in location["backups"]}
    assert (entries[BASE]["kind"], entries[BASE]["parent"]) == ("full", None)
    assert (entries[TIP_KEY]["kind"], entries[TIP_KEY]["parent"]) == ("incremental", MIDDLE)
    assert entries[TIP_KEY]["rows"] == {COLLECTION_TABLE: 0, EMBEDDING_TABLE: 5}
    assert entries[TIP_KEY]["rows_after"][EMBEDDING_TABLE] == tip.rows_after == entries[BASE]["rows"][EMBEDDING_TABLE] + 2

    assert main(["list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    assert f"incremental on {MIDDLE}" in lines[TIP_KEY]
    assert f"(5 rows, {tip.rows_after:,} after)" in lines[TIP_KEY]
    assert "incremental" not in lines[BASE]
