"""Encrypted sets through the real commands (placeholder while wiring)."""
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets.core.sets.encryption import EncryptionKeys, IdentityFile, Recipients
from vector_assets_tests.support.age import make_key
from vector_assets_tests.support.database import tables_now, execute


def test_smoke(store_db, second_db, backup_root, tmp_path):
    key = make_key(tmp_path / "keys")
    keys = EncryptionKeys(Recipients.parse(key.recipient, "X"), IdentityFile(key.identity_file, "VECTOR_ASSETS_IDENTITY_FILE"))
    before = tables_now(store_db)
    for fmt in ("csv", "pgcopy.zst"):
        result = run_backup(BackupRequest(dsn=store_db, root=backup_root, format=fmt, encryption=keys, row_index=True))
        run_restore(RestoreRequest(target_dsn=second_db, root=backup_root, timestamp=result.timestamp, encryption=keys, truncate_before_restore=True))
        assert tables_now(second_db) == before
    execute(store_db, "DELETE FROM langchain_pg_embedding WHERE ctid IN (SELECT ctid FROM langchain_pg_embedding LIMIT 5)")
    inc = run_backup(BackupRequest(dsn=store_db, root=backup_root, format="csv.zst", encryption=keys, kind="incremental"))
    assert inc.manifest.kind == "incremental"
    r = run_restore(RestoreRequest(target_dsn=second_db, root=backup_root, timestamp=inc.timestamp, encryption=keys, truncate_before_restore=True))
    assert tables_now(second_db) == tables_now(store_db)
    print(r.safety_set.manifest.recipients if r.safety_set else None)
