"""Key rotation: ``rekey`` re-encrypts a root's encrypted sets to new recipients, each set's
new files written and checked before its manifest is swapped, so a rekey killed part-way leaves
every set restorable, with the old identity or the new one; a dry run reads and writes nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from vector_assets.core.errors import IdentityError
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.rekey import RekeyRequest, key_tag, run_rekey
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets.core.ops.verify import VerifyRequest, run_verify
from vector_assets.core.sets.catalog import scan_root
from vector_assets.core.sets.encryption import EncryptionKeys, IdentityFile, Recipients
from vector_assets.core.tables import EMBEDDING_TABLE
from vector_assets_tests.support.age import AgeKey, make_key
from vector_assets_tests.support.dagster import run_job
from vector_assets_tests.support.database import execute, fill_store, tables_now
from vector_assets_tests.support.files import folder_snapshot
from vector_assets_tests.support.http_proxy import CuttingProxy
from vector_assets_tests.support.object_store import RootFiles
from vector_assets_tests.test_cli import CLI, cli_environment

IDENTITY_VARIABLE = "VECTOR_ASSETS_IDENTITY_FILE"


def keys(key: AgeKey) -> EncryptionKeys:
    return EncryptionKeys(Recipients.parse(key.recipient, "VECTOR_ASSETS_ENCRYPT_TO"), IdentityFile(key.identity_file, IDENTITY_VARIABLE))


def identity(key: AgeKey) -> IdentityFile:
    return IdentityFile(key.identity_file, IDENTITY_VARIABLE)


def restores_exactly(dsn: str, target: str, root, key: str, with_key: AgeKey) -> bool:
    run_restore(RestoreRequest(target_dsn=target, root=root, timestamp=key, truncate_before_restore=True,
                               safety_backup=False, encryption=EncryptionKeys(None, identity(with_key))))
    return tables_now(target) == tables_now(dsn)


@pytest.fixture
def old_and_new(tmp_path) -> tuple[AgeKey, AgeKey]:
    return make_key(tmp_path / "keys", "old"), make_key(tmp_path / "keys", "new")


def test_rekey_moves_every_encrypted_set_to_the_new_key_and_leaves_plaintext_sets_alone(
    store_db, second_db, backup_root, old_and_new
):
    old, new = old_and_new
    full = run_backup(BackupRequest(dsn=store_db, root=backup_root, format="pgcopy.zst", encryption=keys(old), row_index=True))
    execute(store_db, f"DELETE FROM {EMBEDDING_TABLE} WHERE id IN (SELECT id FROM {EMBEDDING_TABLE} LIMIT 9)")
    increment = run_backup(BackupRequest(dsn=store_db, root=backup_root, encryption=keys(old), kind="incremental"))
    plain = run_backup(BackupRequest(dsn=store_db, root=backup_root, task_id="manual_20261206_120000",
                                     encryption=EncryptionKeys(allow_plaintext=True)))
    before = folder_snapshot(backup_root)
    to = Recipients.parse(new.recipient, "--to")

    rehearsal = run_rekey(RekeyRequest(root=backup_root, to=to, identity_file=identity(old)))
    assert rehearsal.dry_run and sorted(rehearsal.rekeyed) == sorted([full.timestamp, f"{increment.timestamp}__incremental"])
    assert rehearsal.plaintext == [plain.timestamp] and folder_snapshot(backup_root) == before

    result = run_rekey(RekeyRequest(root=backup_root, to=to, identity_file=identity(old), dry_run=False))

    assert sorted(result.rekeyed) == sorted(rehearsal.rekeyed)
    sets = {backup_set.timestamp: backup_set for backup_set in scan_root(backup_root)}
    for timestamp in (full.timestamp, increment.timestamp):
        manifest = sets[timestamp].manifest
        assert manifest.recipients == (new.recipient,)
        assert all(f".k{key_tag(to)}." in name for name in sets[timestamp].all_stored_files())
    names = set(os.listdir(backup_root / "vector_bak"))
    assert names == {name for ts in (full.timestamp, increment.timestamp) for name in sets[ts].all_stored_files()} | {
        f"vector_backup_{full.timestamp}.json", f"vector_backup_{increment.timestamp}.json", "vector_backup_log.txt"}
    assert {name: body for name, body in folder_snapshot(backup_root).items() if name.startswith("manual_")} == {
        name: body for name, body in before.items() if name.startswith("manual_")
    }
    assert run_verify(VerifyRequest(root=backup_root, key=f"{increment.timestamp}__incremental", identity_file=identity(new))).passed
    assert restores_exactly(store_db, second_db, backup_root, f"{increment.timestamp}__incremental", new)
    with pytest.raises(IdentityError):
        restores_exactly(store_db, second_db, backup_root, full.timestamp, old)

    again = run_rekey(RekeyRequest(root=backup_root, to=to, identity_file=identity(new), dry_run=False))
    assert again.rekeyed == [] and len(again.already) == 2
    # The next increment builds on the rekeyed chain.
    following = run_backup(BackupRequest(dsn=store_db, root=backup_root, encryption=keys(new), kind="incremental"))
    assert following.manifest.is_increment and following.manifest.parent == increment.timestamp


def test_a_rekey_killed_part_way_leaves_every_set_restorable_and_the_next_one_finishes(
    empty_db, second_db, backup_root, old_and_new
):
    old, new = old_and_new
    fill_store(empty_db, embeddings=3000)
    timestamps = [
        run_backup(BackupRequest(dsn=empty_db, root=backup_root, format=fmt, encryption=keys(old))).timestamp
        for fmt in ("csv", "pgcopy", "csv.zst", "pgcopy.zst")
    ]
    environment = cli_environment(empty_db, backup_root, VECTOR_ASSETS_IDENTITY_FILE=str(old.identity_file))
    process = subprocess.Popen([CLI, "rekey", "--to", new.recipient, "--apply"], env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first = process.stderr.readline()
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert first.startswith("rekeyed set ")

    by_timestamp = {backup_set.timestamp: backup_set for backup_set in scan_root(backup_root)}
    assert sorted(by_timestamp) == sorted(timestamps)
    moved = [ts for ts in timestamps if by_timestamp[ts].manifest.recipients == (new.recipient,)]
    assert 1 <= len(moved) < len(timestamps)
    for timestamp in timestamps:
        assert restores_exactly(empty_db, second_db, backup_root, timestamp, new if timestamp in moved else old)

    finished = subprocess.run([CLI, "rekey", "--to", new.recipient, "--apply"], env=environment, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    sets = scan_root(backup_root)
    assert all(backup_set.manifest.recipients == (new.recipient,) for backup_set in sets)
    referenced = {name for backup_set in sets for name in backup_set.all_stored_files()}
    manifests = {f"vector_backup_{ts}.json" for ts in timestamps}
    assert set(os.listdir(backup_root / "vector_bak")) == referenced | manifests | {"vector_backup_log.txt"}


def test_rekey_without_the_identity_or_with_a_bad_recipient_stops_in_one_line(store_db, backup_root, old_and_new):
    old, _ = old_and_new
    run_backup(BackupRequest(dsn=store_db, root=backup_root, encryption=keys(old)))
    before = folder_snapshot(backup_root)

    no_identity = subprocess.run([CLI, "rekey", "--to", old.recipient, "--apply"], capture_output=True, text=True,
                                 env=cli_environment(store_db, backup_root))
    bad_recipient = subprocess.run([CLI, "rekey", "--to", "age1broken", "--apply"], capture_output=True, text=True,
                                   env=cli_environment(store_db, backup_root, VECTOR_ASSETS_IDENTITY_FILE=str(old.identity_file)))

    assert no_identity.returncode == 2 and no_identity.stderr.strip().splitlines() == [
        "vector-assets: rekeying reads every encrypted set: set VECTOR_ASSETS_IDENTITY_FILE to its identity file"
    ]
    assert bad_recipient.returncode == 2 and len(bad_recipient.stderr.strip().splitlines()) == 1
    assert "--to: recipient 1 (age1broken) is not a valid age X25519 recipient" in bad_recipient.stderr
    assert folder_snapshot(backup_root) == before


def test_the_rekey_job_rekeys_with_the_identity_from_the_environment(dagster_instance, store_db, backup_root, old_and_new, monkeypatch):
    old, new = old_and_new
    backup = run_backup(BackupRequest(dsn=store_db, root=backup_root, encryption=keys(old)))
    monkeypatch.setenv(IDENTITY_VARIABLE, str(old.identity_file))

    result = run_job(dagster_instance, "rekey_vector_backups", "rekey_sets", {"to": new.recipient, "dry_run": False})

    assert result.success
    (rekeyed,) = scan_root(backup_root)
    assert rekeyed.timestamp == backup.timestamp and rekeyed.manifest.recipients == (new.recipient,)


# The real CLI in a child process that the interpreter's own audit hook kills (SIGKILL) at one
# moment of a set's manifest swap: as it renames the new manifest into place (its bytes written
# and fsynced, the rename not done), or as it deletes the first old file (the swap done).
KILLED_IN_THE_SWAP = """
import os, signal, sys
from vector_assets.cli import main
moment = sys.argv.pop(1)
def kill_at(event, args):
    if moment == "before the swap" and event == "os.rename":
        target = os.path.basename(os.fsdecode(args[1]))
        if target.startswith("vector_backup_") and target.endswith(".json"):
            os.kill(os.getpid(), signal.SIGKILL)
    if moment == "after the swap" and event == "os.remove" and os.fsdecode(args[0]).endswith(".age"):
        os.kill(os.getpid(), signal.SIGKILL)
sys.addaudithook(kill_at)
sys.exit(main(sys.argv[1:]))
"""
MOMENTS = ["before the swap", "after the swap"]


def survives_and_a_rerun_finishes(root: RootFiles, dsn: str, target: str, timestamp: str, holds: AgeKey,
                                  new: AgeKey, environment: dict[str, str]) -> None:
    """The set is listed, encrypted to the key it holds, verifies and restores with it; the next
    rekey leaves it on the new key with no file but its own, its manifest and the log."""
    (backup_set,) = scan_root(root.url)
    assert backup_set.timestamp == timestamp and backup_set.manifest.recipients == (holds.recipient,)
    assert run_verify(VerifyRequest(root=root.url, key=timestamp, identity_file=identity(holds))).passed
    assert restores_exactly(dsn, target, root.url, timestamp, holds)

    rerun = subprocess.run([CLI, "rekey", "--to", new.recipient, "--apply"], env=environment, capture_output=True, text=True)

    assert rerun.returncode == 0, rerun.stderr
    (backup_set,) = scan_root(root.url)
    assert backup_set.manifest.recipients == (new.recipient,)
    assert root.names() == set(backup_set.all_stored_files()) | {f"vector_backup_{timestamp}.json", "vector_backup_log.txt"}
    assert restores_exactly(dsn, target, root.url, timestamp, new)


@pytest.mark.parametrize("moment", MOMENTS)
def test_a_rekey_killed_in_its_manifest_swap_on_disk_leaves_the_set_listed_verified_and_restorable(
    moment, store_db, second_db, backup_root, old_and_new
):
    old, new = old_and_new
    made = run_backup(BackupRequest(dsn=store_db, root=backup_root, format="csv.zst", encryption=keys(old)))
    root = RootFiles(str(backup_root), disk=backup_root)
    old_files = set(made.manifest.file_records())
    environment = cli_environment(store_db, backup_root, VECTOR_ASSETS_IDENTITY_FILE=str(old.identity_file))

    killed = subprocess.run([sys.executable, "-c", KILLED_IN_THE_SWAP, moment, "rekey", "--to", new.recipient, "--apply"],
                            env=environment, capture_output=True, text=True)

    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert [backup_set.timestamp for backup_set in scan_root(backup_root)] == [made.timestamp]
    left = root.names()
    if moment == "before the swap":
        assert f"vector_backup_{made.timestamp}.json.swap" in left and old_files <= left
    else:
        assert not any(name.endswith((".swap", ".tmp")) for name in left) and old_files <= left
    holds = old if moment == "before the swap" else new
    survives_and_a_rerun_finishes(root, store_db, second_db, made.timestamp, holds, new, environment)


@pytest.fixture
def trapping_proxy(s3_server):
    """The S3 server behind a proxy that can stop one request: the product reaches it through
    AWS_ENDPOINT_URL as it would any S3-compatible endpoint."""
    proxy = CuttingProxy(s3_server.endpoint).start()
    yield proxy
    proxy.stop()


@pytest.mark.parametrize("moment", MOMENTS)
def test_a_rekey_killed_in_its_manifest_swap_on_s3_leaves_the_set_listed_verified_and_restorable(
    moment, store_db, second_db, s3_root, trapping_proxy, old_and_new
):
    old, new = old_and_new
    made = run_backup(BackupRequest(dsn=store_db, root=s3_root.url, format="pgcopy.zst", encryption=keys(old)))
    old_files = set(made.manifest.file_records())
    environment = {**cli_environment(store_db, s3_root.url, VECTOR_ASSETS_IDENTITY_FILE=str(old.identity_file)),
                   **s3_root.s3.environment(), "AWS_ENDPOINT_URL": trapping_proxy.endpoint}
    process = subprocess.Popen([CLI, "rekey", "--to", new.recipient, "--apply"], env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    trap = trapping_proxy.trap_put(f"vector_backup_{made.timestamp}.json", forward=moment == "after the swap",
                                   spring=lambda: os.kill(process.pid, signal.SIGKILL))

    process.communicate(timeout=120)

    assert process.returncode == -signal.SIGKILL and trap.sprung == 1
    left = s3_root.names()
    assert old_files <= left and any(f".k{key_tag(Recipients.parse(new.recipient, 'to'))}." in name for name in left)
    holds = old if moment == "before the swap" else new
    survives_and_a_rerun_finishes(s3_root, store_db, second_db, made.timestamp, holds, new, environment)


def test_a_rekeyed_set_is_pruned_whole(store_db, backup_root, old_and_new):
    from vector_assets.core.ops.prune import delete_set

    old, new = old_and_new
    run_backup(BackupRequest(dsn=store_db, root=backup_root, format="pgcopy.zst", encryption=keys(old), row_index=True))
    run_rekey(RekeyRequest(root=backup_root, to=Recipients.parse(new.recipient, "--to"), identity_file=identity(old),
                           dry_run=False))
    (rekeyed,) = scan_root(backup_root)

    delete_set(rekeyed, backup_root)

    assert os.listdir(backup_root / "vector_bak") == ["vector_backup_log.txt"]


# What a crash in a rekey leaves beside a set's published manifest: the replacement manifest cut
# short, as the manifest swap writes it now (.swap) or as an earlier version wrote it (.tmp), or
# a new data file cut short before the swap.
LEFTOVERS = {
    "a manifest swap": lambda timestamp, tag: f"vector_backup_{timestamp}.json.swap",
    "an earlier version's manifest tmp": lambda timestamp, tag: f"vector_backup_{timestamp}.json.tmp",
    "a new data file's tmp": lambda timestamp, tag: f"{EMBEDDING_TABLE}_{timestamp}.k{tag}.csv.zst.age.tmp",
}


@pytest.mark.parametrize("leftover", LEFTOVERS)
def test_what_a_crashed_rekey_leaves_beside_a_manifest_hides_the_set_from_nothing(
    leftover, dagster_instance, store_db, second_db, backup_root, old_and_new, capsys
):
    from vector_assets.cli import main
    from vector_assets.core.ops.prune import PruneRequest, run_prune
    from vector_assets.core.sets.retention import RetentionPolicy
    from vector_assets_tests.support.dagster import Ticker

    old, new = old_and_new
    older, newer = (run_backup(BackupRequest(dsn=store_db, root=backup_root, format="csv.zst", encryption=keys(old),
                                             timestamp=timestamp)) for timestamp in ("20261201_010000", "20261202_010000"))
    folder = backup_root / "vector_bak"
    manifest = (folder / f"vector_backup_{older.timestamp}.json").read_bytes()
    left = folder / LEFTOVERS[leftover](older.timestamp, key_tag(Recipients.parse(new.recipient, "--to")))
    left.write_bytes(manifest[: len(manifest) // 2])

    assert [backup_set.timestamp for backup_set in scan_root(backup_root)] == [older.timestamp, newer.timestamp]
    assert main(["list", "--json"]) == 0 and older.timestamp in capsys.readouterr().out
    ticker = Ticker(dagster_instance)
    ticker.tick()
    assert ticker.partitions == [older.timestamp, newer.timestamp]
    assert restores_exactly(store_db, second_db, backup_root, older.timestamp, old)

    pruned = run_prune(PruneRequest(root=backup_root, policy=RetentionPolicy(1, 0, 0), dry_run=False))

    assert list(pruned.removed_keys) == [older.timestamp]
    (kept,) = scan_root(backup_root)
    assert set(os.listdir(folder)) == set(kept.all_stored_files()) | {f"vector_backup_{newer.timestamp}.json", "vector_backup_log.txt"}
