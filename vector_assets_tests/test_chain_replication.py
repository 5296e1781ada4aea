"""Replication copies a chain with every file of each set (data, row indexes, deleted keys), so
the offsite copy of an increment verifies, and restores, on its own: in a bucket on S3 and in a
container on Azure."""

import shutil

from vector_assets.core.ops.replicate import ReplicateRequest, run_replicate
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets.core.ops.verify import VerifyRequest, run_verify, verify_set
from vector_assets.core.sets.catalog import scan_root
from vector_assets_tests.support.database import STORE_TABLES
from vector_assets_tests.support.chains import build_chain
from vector_assets_tests.support.database import tables_now

CHAIN = ["20250301_020000", "20250301_030000", "20250301_040000"]
BASE, MIDDLE, TIP = CHAIN


def test_replication_copies_a_chain_with_its_row_indexes_and_deleted_keys_and_the_offsite_copy_restores(
    store_db, backup_root, object_root, second_db
):
    build_chain(store_db, backup_root, CHAIN, format="pgcopy.zst")
    local_names = {path.name for path in (backup_root / "vector_bak").iterdir()}

    result = run_replicate(ReplicateRequest(root=backup_root, offsite_root=object_root.url))

    assert [backup_set.timestamp for backup_set in result.copied] == CHAIN and result.refused == {}
    assert object_root.names() == local_names
    assert {name for name in local_names if name.endswith(".deleted.zst")} == {
        f"{table}_{ts}.deleted.zst" for table in STORE_TABLES for ts in CHAIN[1:]
    }
    assert all(outcome.passed for backup_set in scan_root(object_root.url) for outcome in verify_set(backup_set))

    local_deleted_keys = backup_root / "vector_bak" / f"{STORE_TABLES[1]}_{TIP}.deleted.zst"
    local_deleted_keys.unlink()  # the local increment cannot be restored without it: read the offsite copy
    verified = run_verify(VerifyRequest(root=backup_root, key=TIP, offsite_root=object_root.url))
    assert verified.passed and f"{local_deleted_keys.name} is missing" in verified.read_from_offsite

    shutil.rmtree(backup_root / "vector_bak")
    verified = run_verify(VerifyRequest(root=backup_root, key=TIP, offsite_root=object_root.url))
    assert verified.passed and verified.read_from_offsite
    assert f"{BASE} to {MIDDLE}, pass too" in verified.outcomes[-1].message
    run_restore(RestoreRequest(target_dsn=second_db, root=backup_root, timestamp=TIP, offsite_root=object_root.url))
    assert tables_now(second_db) == tables_now(store_db)  # the store as it was at TIP's snapshot
