"""No restore can lose data: what it replaces goes into a pre_restore set first, in the same
transaction, and restoring that set undoes the restore exactly."""

import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from vector_assets.core.errors import SafetyBackupError
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets.core.sets.catalog import SetCatalog, scan_root
from vector_assets.core.sets.retention import SAFETY, RetentionPolicy, plan_retention
from vector_assets_tests.support.database import execute, fill_store, tables_now
from vector_assets_tests.support.files import folder_snapshot

SMALL_DISK_BYTES = 256 * 1024


def change(dsn: str) -> None:
    execute(dsn, "DELETE FROM langchain_pg_embedding WHERE ctid IN (SELECT ctid FROM langchain_pg_embedding LIMIT 25)")
    execute(dsn, "UPDATE langchain_pg_embedding SET document = 'edited after the backup' "
                 "WHERE ctid IN (SELECT ctid FROM langchain_pg_embedding LIMIT 5)")


@pytest.mark.parametrize("layout, fmt", [("current", "csv"), ("community", "csv"), ("current", "pgcopy.zst")])
def test_a_replace_restore_keeps_what_it_replaced_and_restoring_that_set_undoes_it(empty_db, backup_root, layout, fmt):
    fill_store(empty_db, layout=layout)
    key = run_backup(BackupRequest(dsn=empty_db, root=backup_root, timestamp="20250101_020000", format=fmt)).timestamp
    change(empty_db)
    current = tables_now(empty_db)

    result = run_restore(RestoreRequest(target_dsn=empty_db, root=backup_root, timestamp=key, truncate_before_restore=True))

    safety = result.safety_set
    assert safety is not None and safety.manifest.kind == "pre_restore"
    # binary COPY, compressed as the restored set is: the fastest to write and to load back
    assert safety.manifest.format == {"csv": "pgcopy", "pgcopy.zst": "pgcopy.zst"}[fmt]
    assert safety.manifest.tables["langchain_pg_embedding"].rows == 275
    assert tables_now(empty_db) != current
    assert SetCatalog(backup_root).get(safety.timestamp).manifest.kind == "pre_restore"
    undo = run_restore(RestoreRequest(
        target_dsn=empty_db, root=backup_root, timestamp=safety.timestamp, truncate_before_restore=True,
        safety_backup=False,
    ))
    assert undo.safety_set is None
    assert tables_now(empty_db) == current


def test_an_append_restore_also_keeps_what_was_there(store_db, backup_root):
    key = run_backup(BackupRequest(dsn=store_db, root=backup_root)).timestamp
    execute(store_db, "DELETE FROM langchain_pg_embedding WHERE ctid IN (SELECT ctid FROM langchain_pg_embedding LIMIT 40)")
    result = run_restore(RestoreRequest(
        target_dsn=store_db, root=backup_root, timestamp=key, tables=("langchain_pg_embedding",), on_conflict="skip",
    ))
    assert result.safety_set.manifest.tables["langchain_pg_embedding"].rows == 260
    assert list(result.safety_set.manifest.tables) == ["langchain_pg_embedding"]


def test_a_restore_into_an_empty_target_or_with_safety_backup_false_makes_no_safety_set(
    store_db, backup_root, second_db
):
    key = run_backup(BackupRequest(dsn=store_db, root=backup_root)).timestamp
    fill_store(second_db, embeddings=0)
    execute(second_db, "DELETE FROM langchain_pg_collection")
    assert run_restore(RestoreRequest(target_dsn=second_db, root=backup_root, timestamp=key)).safety_set is None
    off = run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=key, truncate_before_restore=True,
                                     safety_backup=False))
    assert off.safety_set is None and not off.safety_backup
    assert len(scan_root(backup_root)) == 1


@pytest.fixture
def small_disk(tmp_path: Path):
    mount_point = tmp_path / "small_disk"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK_BYTES}", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


@pytest.mark.faults
def test_a_safety_backup_that_fills_the_disk_restores_nothing_and_leaves_the_root_as_it_was(
    empty_db, second_db, small_disk
):
    fill_store(empty_db, embeddings=20)  # the set fits the small disk; a backup of the target does not
    root = small_disk / "training_data"
    key = run_backup(BackupRequest(dsn=empty_db, root=root)).timestamp
    fill_store(second_db, embeddings=300)
    before, files_before = tables_now(second_db), folder_snapshot(root)

    with pytest.raises(SafetyBackupError, match="nothing was restored.*disk full"):
        run_restore(RestoreRequest(target_dsn=second_db, root=root, timestamp=key, truncate_before_restore=True))

    assert tables_now(second_db) == before
    assert folder_snapshot(root) == files_before


def test_a_restore_that_rolls_back_discards_its_safety_set(store_db, backup_root):
    key = run_backup(BackupRequest(dsn=store_db, root=backup_root)).timestamp
    files_before = folder_snapshot(backup_root)
    execute(store_db, "INSERT INTO langchain_pg_collection (uuid, name) VALUES (gen_random_uuid(), 'only here')")
    with pytest.raises(Exception, match="conflict"):
        run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=key))  # append: keys exist
    assert folder_snapshot(backup_root) == files_before


def test_retention_keeps_a_safety_set_seven_days_and_never_gives_it_a_backups_place(store_db, backup_root):
    key = run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp="20250101_020000")).timestamp
    safety = run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=key,
                                        truncate_before_restore=True)).safety_set
    sets = scan_root(backup_root)
    made = datetime.strptime(safety.timestamp, "%Y%m%d_%H%M%S")
    policy = RetentionPolicy(keep_daily=1, keep_weekly=0, keep_monthly=0)

    safety_key = f"{safety.timestamp}__pre_restore"  # its partition key says what it is
    fresh = {p.key: p.reasons for p in plan_retention(sets, policy, now=made + timedelta(days=6)).sets}
    assert fresh[safety_key] == (SAFETY,)
    assert fresh[key] == ("daily", "newest")
    old = {p.key: p for p in plan_retention(sets, policy, now=made + timedelta(days=8)).sets}
    assert old[safety_key].action == "delete" and old[key].action == "keep"


def test_a_safety_sets_partition_metadata_says_what_kind_of_set_it_is(store_db, backup_root):
    from vector_assets.defs.backup import set_metadata

    key = run_backup(BackupRequest(dsn=store_db, root=backup_root)).timestamp
    safety = run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=key,
                                        truncate_before_restore=True)).safety_set
    catalog = SetCatalog(backup_root)
    assert set_metadata(catalog.get(key))["kind"] == "full"
    assert set_metadata(catalog.get(safety.timestamp))["kind"] == "pre_restore"
