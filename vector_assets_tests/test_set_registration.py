"""A new set is registered (its partition key found) from its own timestamp's files, not from a
scan that reads every set of the root: a backup job's cost must not grow with the history."""

from __future__ import annotations

from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.sets.catalog import scan_root, set_at
from vector_assets.core.sets.naming import BACKUP_FOLDER_NAME, Location
from vector_assets.core.sets.roots import open_root
from vector_assets_tests.support.files import files_opened_under, write_tiny_set

SHARED = "20250105_000000"  # in the global folder and in a task's: the later one's key carries its task


def test_a_set_is_keyed_as_the_scan_keys_it(store_db, backup_root):
    for day in range(1, 5):
        write_tiny_set(backup_root / BACKUP_FOLDER_NAME, f"2025010{day}_000000", manifest=day % 2 == 0)
    write_tiny_set(backup_root / BACKUP_FOLDER_NAME, SHARED, manifest=True)
    write_tiny_set(backup_root / "task_20250105_000000" / BACKUP_FOLDER_NAME, SHARED, manifest=True)
    run_backup(BackupRequest(dsn=store_db, root=backup_root, task_id="manual_20250106_000000"))
    root = open_root(backup_root)
    scanned = scan_root(root)
    assert {s.key for s in scanned} >= {SHARED, f"{SHARED}__task_20250105_000000"}
    for expected in scanned:
        found = set_at(root, expected.folder, expected.timestamp)
        assert (found.key, found.location, found.manifest) == (expected.key, expected.location, expected.manifest)
    assert set_at(root, Location(None).folder(root), "20250101_000001") is None


def test_registering_a_new_set_reads_none_of_the_other_sets(store_db, backup_root):
    for day in range(1, 29):
        write_tiny_set(backup_root / BACKUP_FOLDER_NAME, f"202501{day:02d}_000000", manifest=True)
    made = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    with files_opened_under(backup_root) as opened:
        found = set_at(open_root(backup_root), made.folder, made.timestamp)
    assert found.key == made.timestamp and found.manifest.to_json() == made.manifest.to_json()
    assert opened == [f"{BACKUP_FOLDER_NAME}/vector_backup_{made.timestamp}.json"]
