"""The source tables and the partitioned backup assets that depend on them.

Backups are made by jobs (which pick their own timestamp) and found by the sensor, so the
backup assets are declared as specs and their materializations are reported by those.
"""

from __future__ import annotations

import dagster as dg

from vector_assets.core.backup_log import human_size
from vector_assets.core.backup_set import BackupSet, LegacyFileStats
from vector_assets.core.inventory import Inventory, inventory_table_records
from vector_assets.core.tables import MANAGED_TABLES
from vector_assets.defs.partitions import vector_backups_partitions

SOURCE_GROUP = "pgvector"
BACKUP_GROUP = "vector_backups"

source_table_specs = [
    dg.AssetSpec(
        table,
        group_name=SOURCE_GROUP,
        description=f"The LangChain PGVector table {table} in the pgvector database.",
        kinds={"postgres"},
    )
    for table in MANAGED_TABLES
]


def backup_asset_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(f"{table}_backup")


backup_specs = [
    dg.AssetSpec(
        backup_asset_key(table),
        deps=[dg.AssetKey(table)],
        partitions_def=vector_backups_partitions,
        group_name=BACKUP_GROUP,
        description=f"CSV backups of {table}, one partition per backup set (key = timestamp).",
        kinds={"csv"},
    )
    for table in MANAGED_TABLES
]


def table_metadata(
    backup_set: BackupSet, table: str, legacy: LegacyFileStats | None = None
) -> dict[str, dg.RawMetadataValue]:
    """Metadata for one table of a set; ``legacy`` stats are given for legacy sets, read by the caller."""
    path = backup_set.csv_path(table)
    entry = backup_set.manifest.tables[table] if backup_set.manifest else None
    size = entry.bytes if entry else path.stat().st_size
    metadata: dict[str, dg.RawMetadataValue] = {
        "path": dg.MetadataValue.path(str(path)),
        "file": path.name,
        "bytes": dg.MetadataValue.int(size),
        "size": human_size(size),
        "location": backup_set.location.label,
        "task_id": backup_set.location.task_id or "global",
        "timestamp": backup_set.timestamp,
        "legacy": backup_set.is_legacy,
        "has_log": backup_set.log_path.is_file(),
    }
    known = entry or legacy
    if known is not None:
        metadata["rows"] = dg.MetadataValue.int(known.rows)
        metadata["sha256"] = known.sha256
    if entry:
        metadata["columns"] = dg.MetadataValue.table_schema(
            dg.TableSchema(columns=[dg.TableColumn(c.name, c.type) for c in entry.columns])
        )
    return metadata


def set_metadata(backup_set: BackupSet) -> dict[str, dg.RawMetadataValue]:
    """What the whole set shares: snapshot, timing, source (never a password)."""
    manifest = backup_set.manifest
    if manifest is None:
        return {"consistent_snapshot": False}
    total = sum(entry.bytes for entry in manifest.tables.values())
    seconds = max(manifest.duration_seconds, 1e-6)
    return {
        "consistent_snapshot": manifest.consistent_snapshot,
        "duration_seconds": dg.MetadataValue.float(round(manifest.duration_seconds, 3)),
        "throughput_mb_per_s": dg.MetadataValue.float(round(total / 1_000_000 / seconds, 1)),
        "source": f"{manifest.source.get('database')} on {manifest.source.get('host')}:{manifest.source.get('port')}",
        "postgres_version": manifest.server_version,
        "pgvector_version": manifest.pgvector_version or "missing",
    }


def set_materializations(
    backup_set: BackupSet, legacy_stats: dict[str, LegacyFileStats] | None = None
) -> list[dg.AssetMaterialization]:
    shared = set_metadata(backup_set)
    return [
        dg.AssetMaterialization(
            asset_key=backup_asset_key(table),
            partition=backup_set.key,
            metadata={**table_metadata(backup_set, table, (legacy_stats or {}).get(table)), **shared},
        )
        for table in backup_set.tables
    ]


INVENTORY_KEY = dg.AssetKey("vector_backup_inventory")

inventory_spec = dg.AssetSpec(
    INVENTORY_KEY,
    deps=[spec.key for spec in backup_specs],
    group_name=BACKUP_GROUP,
    description="Every backup set under the root, by location, newest first (what `vector-assets list` prints). "
    "Reported by vector_bak_sensor whenever the sets on disk change.",
    kinds={"csv"},
)

INVENTORY_COLUMNS = [
    ("key", "string"), ("location", "string"), ("timestamp", "string"), ("backup_date", "string"),
    ("legacy", "bool"), ("collection_rows", "int"), ("embedding_rows", "int"), ("total_size", "string"),
    ("total_bytes", "int"), ("has_log", "bool"),
]


def inventory_materialization(inventory: Inventory) -> dg.AssetMaterialization:
    records = [dg.TableRecord(record) for record in inventory_table_records(inventory)]
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in INVENTORY_COLUMNS])
    return dg.AssetMaterialization(
        asset_key=INVENTORY_KEY,
        description=inventory.response,
        metadata={
            "backup_sets": dg.MetadataValue.table(records, schema=schema),
            "total_backup_sets": dg.MetadataValue.int(inventory.total_backup_sets),
            "global_backups": dg.MetadataValue.int(inventory.global_backups),
            "task_backups": dg.MetadataValue.int(inventory.task_backups),
            "total_locations": dg.MetadataValue.int(len(inventory.locations)),
            "total_size": human_size(sum(entry.total_bytes for loc in inventory.locations for entry in loc.backups)),
            "root": inventory.root,
        },
    )
