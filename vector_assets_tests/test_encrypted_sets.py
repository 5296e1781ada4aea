"""Encrypted sets through the real commands: every file that holds table data is an age file
(no table text in any stored byte, on disk and on S3), the rows come back exactly with the
identity, the reference ``age`` tool decrypts a set without us, and a missing, wrong or damaged
key or file fails in one line with the tables unchanged. A location that holds encrypted sets
never gets a plaintext one by accident; verify and the list work without the identity."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from vector_assets import settings
from vector_assets.core.errors import (
    BackupFileError,
    ConfigError,
    IdentityError,
)
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.drill import DrillRequest, run_drill
from vector_assets.core.ops.replicate import ReplicateRequest, run_replicate
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets.core.ops.truncate import TruncateRequest, run_guarded_truncate
from vector_assets.core.ops.verify import ROW_COUNT_MATCHES, VerifyRequest, run_verify
from vector_assets.core.sets.encryption import EncryptionKeys, IdentityFile, Recipients
from vector_assets.core.sets.catalog import scan_root
from vector_assets.core.sets.formats import FORMATS
from vector_assets.core.sets.inventory import InventoryRequest, build_inventory
from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE
from vector_assets_tests.support.age import AgeKey, age_decrypt, make_key
from vector_assets_tests.support.dagster import Ticker, added_keys, partition_metadata, run_job
from vector_assets_tests.support.database import execute, tables_now
from vector_assets_tests.support.files import folder_snapshot, psql_legacy_set
from vector_assets_tests.test_sensor import check_evaluations

MARKER = "MARKER-ca7f0e"
IDENTITY_VARIABLE = settings.IDENTITY_FILE.name


def keys_for(key: AgeKey, *, identity: AgeKey | None = None, allow_plaintext: bool = False) -> EncryptionKeys:
    """What settings.encryption_keys() builds from VECTOR_ASSETS_ENCRYPT_TO and _IDENTITY_FILE."""
    return EncryptionKeys(
        Recipients.parse(key.recipient, settings.ENCRYPT_TO.name),
        IdentityFile((identity or key).identity_file, IDENTITY_VARIABLE), allow_plaintext,
    )


def reader_keys(identity_file: Path | None) -> EncryptionKeys:
    """A reader's: an identity (or none), no recipients."""
    return EncryptionKeys(None, IdentityFile(identity_file, IDENTITY_VARIABLE))


def add_marked_row(dsn: str, row_id: str) -> None:
    execute(
        dsn,
        f"INSERT INTO {EMBEDDING_TABLE} (id, collection_id, embedding, document, cmetadata) "
        f"SELECT %s, collection_id, embedding, %s, %s FROM {EMBEDDING_TABLE} LIMIT 1",
        (row_id, f"{MARKER} a confidential contract", json.dumps({"tag": MARKER})),
    )


@pytest.fixture
def key(tmp_path) -> AgeKey:
    return make_key(tmp_path / "keys", "backup")


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_format_full_and_incremental_stores_no_table_text_and_restores_exactly(fmt, store_db, second_db, any_root, key):
    add_marked_row(store_db, "marker-row-1")
    full = run_backup(BackupRequest(dsn=store_db, root=any_root.url, format=fmt, encryption=keys_for(key), row_index=True))
    add_marked_row(store_db, "marker-row-2")
    execute(store_db, f"DELETE FROM {EMBEDDING_TABLE} WHERE id IN (SELECT id FROM {EMBEDDING_TABLE} WHERE id <> 'marker-row-1' LIMIT 7)")
    increment = run_backup(BackupRequest(dsn=store_db, root=any_root.url, format=fmt, encryption=keys_for(key), kind="incremental"))
    assert increment.manifest.is_increment and increment.manifest.fallback is None

    stored = any_root.all_bytes()
    assert MARKER.encode() not in stored and b"marker-row-" not in stored and b"confidential" not in stored
    names = any_root.names()
    data_files = [name for name in names if name.startswith(("langchain_pg_collection_", "langchain_pg_embedding_"))]
    assert len(data_files) == 10  # per table: data + index (full); changes + index + deleted keys (increment)
    assert all(name.endswith(".age") for name in data_files)
    for result in (full, increment):
        manifest = result.manifest
        assert manifest.format_version == 4 and manifest.recipients == (key.recipient,)
        for entry in manifest.tables.values():
            assert all(record.recipients == (key.recipient,) for record in entry.encrypted_files)

    run_restore(RestoreRequest(target_dsn=second_db, root=any_root.url, timestamp=increment.timestamp,
                               encryption=reader_keys(key.identity_file)))
    assert tables_now(second_db) == tables_now(store_db)
    identity = IdentityFile(key.identity_file, IDENTITY_VARIABLE)
    assert run_verify(VerifyRequest(root=any_root.url, key=increment.timestamp, identity_file=identity)).passed


def test_a_csv_sets_file_decrypts_with_age_into_exactly_what_psql_copy_writes(store_db, backup_root, key, tmp_path):
    result = run_backup(BackupRequest(dsn=store_db, root=backup_root, format="csv", encryption=keys_for(key)))
    psql_legacy_set(store_db, tmp_path / "psql", "20250101_000000")

    for table in (COLLECTION_TABLE, EMBEDDING_TABLE):
        stored = backup_root / "vector_bak" / result.manifest.tables[table].file
        assert stored.name.endswith(".csv.age")
        age_decrypt(stored, key, tmp_path / f"{table}.csv")
        assert (tmp_path / f"{table}.csv").read_bytes() == (tmp_path / "psql" / f"{table}_20250101_000000.csv").read_bytes()


@pytest.mark.parametrize("fault", ["no identity", "a wrong identity", "a flipped byte", "a cut file"])
def test_a_restore_fails_in_one_line_with_the_tables_unchanged(fault, store_db, backup_root, key, tmp_path):
    result = run_backup(BackupRequest(dsn=store_db, root=backup_root, format="csv.zst", encryption=keys_for(key)))
    execute(store_db, f"DELETE FROM {EMBEDDING_TABLE} WHERE id IN (SELECT id FROM {EMBEDDING_TABLE} LIMIT 40)")
    before, files_before = tables_now(store_db), None
    identity = key.identity_file
    stored = backup_root / "vector_bak" / result.manifest.tables[EMBEDDING_TABLE].file
    if fault == "no identity":
        identity = None
    elif fault == "a wrong identity":
        identity = make_key(tmp_path / "keys", "other").identity_file
    elif fault == "a flipped byte":
        data = bytearray(stored.read_bytes())
        data[len(data) // 2] ^= 0x01
        stored.write_bytes(bytes(data))
    else:
        stored.write_bytes(stored.read_bytes()[: stored.stat().st_size // 2])
    files_before = folder_snapshot(backup_root)

    with pytest.raises((IdentityError, BackupFileError)) as raised:
        run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=result.timestamp,
                                   truncate_before_restore=True, encryption=reader_keys(identity)))

    message = str(raised.value)
    assert "\n" not in message and key.secret() not in message and str(key.identity_file) not in message
    expected = {
        "no identity": f"this set is encrypted: set {IDENTITY_VARIABLE} to the path of its age identity file",
        "a wrong identity": f"is not encrypted to the identity in the file named by {IDENTITY_VARIABLE}",
        "a flipped byte": f"{stored.name} is damaged or cut short",
        "a cut file": f"{stored.name} is damaged or cut short",
    }[fault]
    assert expected in message
    assert tables_now(store_db) == before
    assert folder_snapshot(backup_root) == files_before  # no safety set left behind either


def test_a_set_whose_manifest_says_other_bytes_is_refused_after_decrypting(store_db, backup_root, key):
    result = run_backup(BackupRequest(dsn=store_db, root=backup_root, format="pgcopy", encryption=keys_for(key)))
    folder = backup_root / "vector_bak"
    collection_file = result.manifest.tables[COLLECTION_TABLE].file
    # The file is replaced by another, whole and decryptable, age file of the same table.
    other = run_backup(BackupRequest(dsn=store_db, root=backup_root, format="pgcopy", encryption=keys_for(key)))
    (folder / collection_file).write_bytes((folder / other.manifest.tables[COLLECTION_TABLE].file).read_bytes())
    before = tables_now(store_db)

    with pytest.raises(BackupFileError, match=f"^{collection_file} sha256 does not match the manifest"):
        run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=result.timestamp,
                                   truncate_before_restore=True, encryption=reader_keys(key.identity_file)))
    assert tables_now(store_db) == before


def test_a_location_holding_encrypted_sets_refuses_a_plaintext_one_unless_allowed(store_db, backup_root, key):
    run_backup(BackupRequest(dsn=store_db, root=backup_root, encryption=keys_for(key)))
    files_before = folder_snapshot(backup_root)

    with pytest.raises(ConfigError) as raised:
        run_backup(BackupRequest(dsn=store_db, root=backup_root, encryption=reader_keys(None)))
    assert str(raised.value) == (
        f"{backup_root / 'vector_bak'} holds encrypted sets, and this set has no recipients, so it would be plaintext; "
        "set VECTOR_ASSETS_ENCRYPT_TO, or allow_plaintext to write it unencrypted"
    )
    assert folder_snapshot(backup_root) == files_before
    with pytest.raises(ConfigError, match="holds encrypted sets"):
        run_guarded_truncate(TruncateRequest(dsn=store_db, root=backup_root, encryption=reader_keys(None)))
    assert folder_snapshot(backup_root) == files_before

    allowed = run_backup(BackupRequest(dsn=store_db, root=backup_root, encryption=EncryptionKeys(allow_plaintext=True)))
    assert not allowed.manifest.encrypted and allowed.manifest.tables[EMBEDDING_TABLE].file.endswith(".csv")


def test_a_bad_recipient_stops_the_cli_backup_before_anything_is_stored(store_db, backup_root):
    from vector_assets_tests.test_cli import CLI, cli_environment

    environment = cli_environment(store_db, backup_root, VECTOR_ASSETS_ENCRYPT_TO="age1notakey")
    result = subprocess.run([CLI, "backup"], env=environment, capture_output=True, text=True)

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "vector-assets: VECTOR_ASSETS_ENCRYPT_TO: recipient 1 (age1notakey) is not a valid age X25519 recipient: invalid Bech32 encoding"
    ]
    assert folder_snapshot(backup_root) == {}


def test_verify_and_the_list_work_without_the_identity_and_name_the_key_a_set_needs(store_db, backup_root, key, tmp_path):
    retired = make_key(tmp_path / "keys", "retired")
    old = run_backup(BackupRequest(dsn=store_db, root=backup_root, encryption=keys_for(retired)))
    new = run_backup(BackupRequest(dsn=store_db, root=backup_root, format="pgcopy.zst", encryption=keys_for(key)))

    verified = run_verify(VerifyRequest(root=backup_root, key=new.timestamp))
    assert verified.passed
    counts = [outcome for outcome in verified.outcomes if outcome.check == ROW_COUNT_MATCHES]
    assert all(outcome.warning and "is encrypted" in outcome.message for outcome in counts)
    with_identity = run_verify(VerifyRequest(root=backup_root, key=new.timestamp,
                                             identity_file=IdentityFile(key.identity_file, IDENTITY_VARIABLE)))
    assert with_identity.passed and not any(outcome.warning for outcome in with_identity.outcomes)

    inventory = build_inventory(InventoryRequest(root=backup_root, current_recipients=(key.recipient,)))
    listed = {entry.timestamp: entry for location in inventory.locations for entry in location.backups}
    assert listed[old.timestamp].encrypted_to == (retired.recipient,) and listed[old.timestamp].needs_retired_key
    assert listed[new.timestamp].encrypted_to == (key.recipient,) and not listed[new.timestamp].needs_retired_key
    line = listed[old.timestamp].format_line()
    assert f"encrypted to {retired.recipient[:10]}…{retired.recipient[-6:]}" in line and "needs a retired key" in line
    assert listed[old.timestamp].to_json()["needs_retired_key"] is True
    assert listed[new.timestamp].rows == {table: entry.rows for table, entry in new.manifest.tables.items()}


def test_an_increment_on_an_encrypted_parent_without_the_identity_is_a_full_set_that_says_why(store_db, backup_root, key):
    run_backup(BackupRequest(dsn=store_db, root=backup_root, encryption=keys_for(key), row_index=True))
    backup_only = EncryptionKeys(Recipients.parse(key.recipient, "VECTOR_ASSETS_ENCRYPT_TO"))

    result = run_backup(BackupRequest(dsn=store_db, root=backup_root, encryption=backup_only, kind="incremental"))

    assert result.manifest.kind == "full" and result.manifest.encrypted
    assert result.manifest.fallback.endswith(
        f"is encrypted, and reading its row index needs the identity ({IDENTITY_VARIABLE} is not set)"
    )


def test_the_drill_of_an_encrypted_set_passes_with_the_identity_and_fails_in_one_line_without(store_db, backup_root, key):
    result = run_backup(BackupRequest(dsn=store_db, root=backup_root, format="csv.zst", encryption=keys_for(key)))

    drilled = run_drill(DrillRequest(dsn=store_db, root=backup_root, key=result.timestamp,
                                     encryption=reader_keys(key.identity_file)))
    assert drilled.passed and drilled.scratch_dropped

    with pytest.raises(IdentityError, match=f"set {IDENTITY_VARIABLE} to the path"):
        run_drill(DrillRequest(dsn=store_db, root=backup_root, key=result.timestamp, encryption=reader_keys(None)))


def test_safety_sets_are_encrypted_and_restore_what_they_hold(store_db, backup_root, key):
    before = tables_now(store_db)
    truncate = run_guarded_truncate(TruncateRequest(dsn=store_db, root=backup_root, encryption=keys_for(key)))
    assert truncate.backup.manifest.kind == "pre_truncate" and truncate.backup.manifest.recipients == (key.recipient,)
    assert tables_now(store_db)[EMBEDDING_TABLE] != before[EMBEDDING_TABLE]

    # A restore with the identity only: its own safety set goes to the recipients of the set it restores.
    restored = run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=truncate.backup.timestamp,
                                          truncate_before_restore=True, encryption=reader_keys(key.identity_file)))
    assert tables_now(store_db) == before
    assert restored.safety_set.manifest.kind == "pre_restore" and restored.safety_set.manifest.recipients == (key.recipient,)
    assert all(name.endswith((".age", ".json", ".txt")) for name in folder_snapshot(backup_root / "vector_bak"))


def test_replication_copies_the_encrypted_bytes_as_they_are(store_db, backup_root, key, s3_root):
    result = run_backup(BackupRequest(dsn=store_db, root=backup_root, format="pgcopy.zst", encryption=keys_for(key)))

    replicated = run_replicate(ReplicateRequest(root=backup_root, offsite_root=s3_root.url))

    assert replicated.copied
    for entry in result.manifest.tables.values():
        assert s3_root.read("vector_bak", entry.file) == (backup_root / "vector_bak" / entry.file).read_bytes()
    assert MARKER.encode() not in s3_root.all_bytes()


def test_the_identity_appears_in_no_file_and_no_manifest(store_db, backup_root, key):
    add_marked_row(store_db, "marker-row-1")
    run_backup(BackupRequest(dsn=store_db, root=backup_root, encryption=keys_for(key), row_index=True))
    run_backup(BackupRequest(dsn=store_db, root=backup_root, encryption=keys_for(key), kind="incremental"))

    stored = b"".join(folder_snapshot(backup_root).values())
    assert key.secret().encode() not in stored and key.secret()[16:40].encode() not in stored
    assert str(key.identity_file).encode() not in stored


def test_the_manifest_records_each_files_recipients_and_both_hashes_and_a_version_older_readers_refuse(
    store_db, backup_root, key
):
    result = run_backup(BackupRequest(dsn=store_db, root=backup_root, encryption=keys_for(key)))

    manifest = json.loads((backup_root / "vector_bak" / f"vector_backup_{result.timestamp}.json").read_text())
    assert manifest["format_version"] == 4  # readers of versions 1 to 3 refuse it, rather than misread .age files
    for table in (COLLECTION_TABLE, EMBEDDING_TABLE):
        entry = manifest["tables"][table]
        stored = (backup_root / "vector_bak" / entry["file"]).read_bytes()
        assert entry["encrypted_to"] == [key.recipient] and entry["bytes"] == len(stored)
        assert entry["sha256"] == hashlib.sha256(stored).hexdigest()
        plain = subprocess.run(["age", "-d", "-i", str(key.identity_file)], input=stored, capture_output=True, check=True).stdout
        assert entry["plaintext_sha256"] == hashlib.sha256(plain).hexdigest() and entry["plaintext_bytes"] == len(plain)


def test_a_collection_restores_from_an_encrypted_set_with_the_identity_only(store_db, backup_root, key):
    result = run_backup(BackupRequest(dsn=store_db, root=backup_root, format="pgcopy.zst", encryption=keys_for(key)))
    before = tables_now(store_db)
    execute(store_db, f"DELETE FROM {EMBEDDING_TABLE} WHERE collection_id = "
                      f"(SELECT uuid FROM {COLLECTION_TABLE} WHERE name = 'sql')")
    changed = tables_now(store_db)

    with pytest.raises(IdentityError):
        run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=result.timestamp, collection="sql",
                                   truncate_before_restore=True, encryption=reader_keys(None)))
    assert tables_now(store_db) == changed

    restored = run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=result.timestamp,
                                          collection="sql", truncate_before_restore=True,
                                          encryption=reader_keys(key.identity_file)))
    assert tables_now(store_db) == before and restored.collection.name == "sql"


def test_the_jobs_encrypt_and_decrypt_with_keys_from_the_environment_never_from_run_config(
    dagster_instance, store_db, backup_root, key, monkeypatch
):
    monkeypatch.setenv("VECTOR_ASSETS_ENCRYPT_TO", key.recipient)
    backup = run_job(dagster_instance, "backup_vector_tables", "back_up_tables", {"format": "csv.zst"})
    assert backup.success
    (backup_set,) = scan_root(backup_root)
    assert backup_set.manifest.recipients == (key.recipient,)
    before = tables_now(store_db)
    execute(store_db, f"DELETE FROM {EMBEDDING_TABLE} WHERE id IN (SELECT id FROM {EMBEDDING_TABLE} LIMIT 30)")
    config = {"truncate_before_restore": True, "dry_run": False}

    refused = run_job(dagster_instance, "restore_vector_tables", "restore_from_backup_set", config,
                      partition_key=backup_set.key)
    assert not refused.success
    monkeypatch.setenv(IDENTITY_VARIABLE, str(key.identity_file))
    restored = run_job(dagster_instance, "restore_vector_tables", "restore_from_backup_set", config,
                       partition_key=backup_set.key)

    assert restored.success
    assert tables_now(store_db) == before
    for run in dagster_instance.get_runs():
        assert key.secret() not in str(run.run_config) and str(key.identity_file) not in str(run.run_config)


def test_a_store_carries_its_own_recipients_and_identity_file(dagster_instance, store_db, tmp_path, key, monkeypatch):
    from vector_assets.core.stores import langchain_store
    from vector_assets.defs.location import code_location_definitions

    docs_root = tmp_path / "docs_root"
    docs = langchain_store(name="docs", dsn_variable="DOCS_PG_DSN", settings={
        "VECTOR_ASSETS_ROOT": str(docs_root), "VECTOR_ASSETS_ENCRYPT_TO": key.recipient,
        IDENTITY_VARIABLE: str(key.identity_file),
    })
    monkeypatch.setenv("DOCS_PG_DSN", store_db)
    both = code_location_definitions([settings.default_store(), docs])
    before = tables_now(store_db)

    backup = both.resolve_job_def("docs_backup_vector_tables").execute_in_process(instance=dagster_instance)
    (docs_set,) = scan_root(docs_root)
    execute(store_db, f"DELETE FROM {EMBEDDING_TABLE} WHERE id IN (SELECT id FROM {EMBEDDING_TABLE} LIMIT 30)")
    restore = both.resolve_job_def("docs_restore_vector_tables").execute_in_process(
        instance=dagster_instance, partition_key=docs_set.key,
        run_config={"ops": {"docs_restore_from_backup_set": {"config": {"truncate_before_restore": True, "dry_run": False}}}},
    )

    assert backup.success and restore.success
    assert docs_set.manifest.recipients == (key.recipient,) and tables_now(store_db) == before
    default_backup = run_backup(BackupRequest(dsn=store_db, root=tmp_path / "default_root"))
    assert not default_backup.manifest.encrypted  # the environment itself asks for no encryption


def test_the_sensor_registers_and_checks_an_encrypted_set_without_the_identity(dagster_instance, store_db, backup_root, key):
    made = run_backup(BackupRequest(dsn=store_db, root=backup_root, encryption=keys_for(key)))

    result = Ticker(dagster_instance).tick()

    assert added_keys(result) == [made.timestamp]
    assert partition_metadata(dagster_instance, EMBEDDING_TABLE, made.timestamp)["rows"] == made.manifest.tables[EMBEDDING_TABLE].rows
    checks = {(table, check): e for (table, check, partition), e in check_evaluations(result).items()
              if partition == made.timestamp}
    for table in ("langchain_pg_collection_backup", "langchain_pg_embedding_backup"):
        assert checks[table, "file_present"].passed and checks[table, "sha256_matches_manifest"].passed
        counted = checks[table, "row_count_matches_manifest"]
        assert counted.severity == dg.AssetCheckSeverity.WARN and "counting them again needs the identity" in counted.description
    assert result.run_requests == []


def stored_file(root: Path, backup_set, table: str) -> Path:
    return root / "vector_bak" / backup_set.manifest.tables[table].file


def test_two_declared_stores_with_keys_of_their_own_write_sets_only_their_own_key_opens(
    tmp_path, store_db, second_db, backup_root, monkeypatch
):
    from vector_assets.definitions import defs as load_definitions
    from vector_assets_tests.support.database import fill_store
    from vector_assets_tests.test_declared_stores import declare

    docs_key, shop_key = make_key(tmp_path / "keys", "docs"), make_key(tmp_path / "keys", "shop")
    fill_store(second_db, embeddings=90)
    stores = tmp_path / "stores"
    declare(stores, "docs", dsn_env="DOCS_PG_DSN", layout="langchain", format="csv",
            encrypt_to=f"[{docs_key.recipient}]", identity_file_env="DOCS_AGE_IDENTITY")
    declare(stores, "shop", dsn_env="SHOP_PG_DSN", layout="langchain", format="pgcopy.zst",
            encrypt_to=shop_key.recipient, identity_file_env="SHOP_AGE_IDENTITY")
    for variable, value in {"VECTOR_ASSETS_STORES_DIR": str(stores), "VECTOR_ASSETS_ROOT": str(backup_root),
                            "DOCS_PG_DSN": store_db, "SHOP_PG_DSN": second_db,
                            "DOCS_AGE_IDENTITY": str(docs_key.identity_file),
                            "SHOP_AGE_IDENTITY": str(shop_key.identity_file)}.items():
        monkeypatch.setenv(variable, value)
    for variable in ("VECTOR_ASSETS_PG_DSN", "VECTOR_ASSETS_ENCRYPT_TO", IDENTITY_VARIABLE):
        monkeypatch.delenv(variable, raising=False)
    defs = load_definitions()
    before = {"docs": tables_now(store_db), "shop": tables_now(second_db)}
    databases = {"docs": store_db, "shop": second_db}
    own = {"docs": docs_key, "shop": shop_key}

    with dg.instance_for_test() as instance:
        sets = {}
        for store in ("docs", "shop"):
            assert defs.resolve_job_def(f"{store}_backup_vector_tables").execute_in_process(instance=instance).success
            (sets[store],) = scan_root(backup_root / store)
        for store, other in (("docs", "shop"), ("shop", "docs")):
            backup_set = sets[store]
            assert backup_set.manifest.recipients == (own[store].recipient,)
            stored = stored_file(backup_root / store, backup_set, EMBEDDING_TABLE)
            plain = tmp_path / f"{store}.plain"
            age_decrypt(stored, own[store], plain)  # Debian's age, with the store's own key
            record = backup_set.manifest.file_records()[stored.name]
            assert hashlib.sha256(plain.read_bytes()).hexdigest() == record.plain_sha256
            with pytest.raises(subprocess.CalledProcessError):
                age_decrypt(stored, own[other], tmp_path / f"{store}.by-{other}")

        execute(store_db, f"DELETE FROM {EMBEDDING_TABLE}")
        execute(second_db, f"DELETE FROM {EMBEDDING_TABLE}")
        emptied = tables_now(store_db)

        def restore(store: str):
            return defs.resolve_job_def(f"{store}_restore_vector_tables").execute_in_process(
                instance=instance, partition_key=sets[store].key, raise_on_error=False,
                run_config={"ops": {f"{store}_restore_from_backup_set": {
                    "config": {"truncate_before_restore": True, "dry_run": False}}}},
            )

        monkeypatch.setenv("DOCS_AGE_IDENTITY", str(shop_key.identity_file))
        refused = restore("docs")
        assert not refused.success and tables_now(store_db) == emptied
        message = refused.failure_data_for_node("docs_restore_from_backup_set").error.message
        assert "DOCS_AGE_IDENTITY" in message and shop_key.secret() not in message
        monkeypatch.setenv("DOCS_AGE_IDENTITY", str(docs_key.identity_file))
        for store in ("docs", "shop"):
            assert restore(store).success
            assert tables_now(databases[store]) == before[store]


def test_a_stores_allow_plaintext_lets_a_plaintext_set_join_its_encrypted_ones(store_db, backup_root, key, monkeypatch):
    from vector_assets.store_files import store_from_attributes

    monkeypatch.delenv("VECTOR_ASSETS_ENCRYPT_TO", raising=False)
    monkeypatch.delenv("VECTOR_ASSETS_ALLOW_PLAINTEXT", raising=False)
    run_backup(BackupRequest(dsn=store_db, root=backup_root, encryption=keys_for(key)))
    attributes = {"name": "docs", "dsn_env": "DOCS_PG_DSN", "layout": "langchain", "root": str(backup_root)}

    def keys_of(**more) -> EncryptionKeys:
        store = store_from_attributes({**attributes, **more}, "stores/docs/defs.yaml").store
        return settings.store_encryption_keys(store)

    with pytest.raises(ConfigError, match="no recipients, so it would be plaintext; set encrypt_to in stores/docs/defs.yaml,"):
        run_backup(BackupRequest(dsn=store_db, root=backup_root, encryption=keys_of(allow_plaintext=False)))
    plain = run_backup(BackupRequest(dsn=store_db, root=backup_root, encryption=keys_of(allow_plaintext=True)))
    assert not plain.manifest.encrypted and len(scan_root(backup_root)) == 2


def test_a_declared_stores_key_messages_name_what_to_change_for_that_store(
    tmp_path, store_db, backup_root, monkeypatch, capsys
):
    """A store with keys of its own: a missing identity names the variable its identity_file_env
    names, a plaintext set refused beside encrypted ones names encrypt_to in its defs.yaml; never
    the environment's variables (which do not apply to it), never a key; nothing changed."""
    from vector_assets.cli import main
    from vector_assets.store_files import shown_path
    from vector_assets_tests.test_declared_stores import declare

    key, new = make_key(tmp_path / "keys", "docs"), make_key(tmp_path / "keys", "new")
    stores = tmp_path / "stores"
    attributes = dict(dsn_env="DOCS_PG_DSN", layout="langchain", format="pgcopy.zst", identity_file_env="DOCS_AGE_IDENTITY")
    defs_yaml = declare(stores, "docs", encrypt_to=key.recipient, **attributes)
    for variable, value in {"VECTOR_ASSETS_STORES_DIR": str(stores), "VECTOR_ASSETS_ROOT": str(backup_root),
                            "DOCS_PG_DSN": store_db}.items():
        monkeypatch.setenv(variable, value)
    for variable in ("VECTOR_ASSETS_PG_DSN", "VECTOR_ASSETS_ENCRYPT_TO", IDENTITY_VARIABLE, "DOCS_AGE_IDENTITY"):
        monkeypatch.delenv(variable, raising=False)
    assert main(["backup", "--store", "docs"]) == 0
    files, tables = folder_snapshot(backup_root), tables_now(store_db)
    capsys.readouterr()

    def refused(*command: str) -> str:
        assert main([*command, "--store", "docs"]) == 2
        message = capsys.readouterr().err.strip()
        assert folder_snapshot(backup_root) == files and tables_now(store_db) == tables
        return message

    without_identity = [refused("restore", "latest", "--apply"), refused("rekey", "--to", new.recipient, "--apply")]
    declare(stores, "docs", **attributes)  # encrypt_to taken out of the store's file
    without_recipients = [refused("backup"), refused("truncate", "--apply")]
    assert main(["backup", "--store", "docs", "--incremental", "--allow-plaintext"]) == 0  # a full set, saying why
    fallback = capsys.readouterr()

    assert without_identity == [
        "vector-assets: this set is encrypted: set DOCS_AGE_IDENTITY to the path of its age identity file",
        "vector-assets: rekeying reads every encrypted set: set DOCS_AGE_IDENTITY to its identity file",
    ]
    assert "(DOCS_AGE_IDENTITY is not set)" in fallback.out + fallback.err
    refusal = (f"vector-assets: {backup_root / 'docs' / 'vector_bak'} holds encrypted sets, and this set has no recipients, so it "
               f"would be plaintext; set encrypt_to in {shown_path(defs_yaml)}, or allow_plaintext to write it unencrypted")
    assert without_recipients == [refusal, refusal]
    for text in (*without_identity, *without_recipients, fallback.out + fallback.err):
        assert "VECTOR_ASSETS_" not in text and key.secret() not in text
