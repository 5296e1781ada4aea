"""A dry run predicts the real run: on the same state, the same outcome, the same message.

Each case runs the dry run first (and shows that the database and the backup root are as they
were), then the real run, and compares: both fail with the same message, or both succeed with
the same counts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vector_assets.core.errors import VectorAssetsError
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.prune import PruneRequest, run_prune
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets.core.ops.truncate import TruncateRequest, run_guarded_truncate
from vector_assets.core.sets.retention import RetentionPolicy
from vector_assets_tests.support.database import execute, tables_now
from vector_assets_tests.support.files import folder_snapshot, write_tiny_set

TS = "20250801_120000"


def outcome(run):
    """('failed', its message) or ('done', what it reports)."""
    try:
        return "done", run()
    except VectorAssetsError as error:
        return "failed", str(error)


def restore_counts(result) -> list[tuple]:
    return [(t.table, t.rows_loaded, t.rows_skipped, t.conflicts, t.rows_truncated) for t in result.tables]


def dry_then_real(run, dsn: str, root: Path, summary):
    """The dry run's outcome (the state unchanged after it), then the real run's."""
    before, files = tables_now(dsn), folder_snapshot(root)
    dry = outcome(lambda: summary(run(True)))
    assert tables_now(dsn) == before, "the dry run changed the database"
    assert folder_snapshot(root) == files, "the dry run changed the backup root"
    real = outcome(lambda: summary(run(False)))
    return dry, real


RESTORES = {
    "append, conflicts, on_conflict error": dict(),
    "append, conflicts, on_conflict skip": dict(on_conflict="skip"),
    "replace": dict(truncate_before_restore=True),
    "one collection, replace": dict(collection="sql", truncate_before_restore=True),
    "one collection, append over itself": dict(collection="sql"),
    "an unknown collection": dict(collection="nope", truncate_before_restore=True),
    "a missing table in the set": dict(tables=("langchain_pg_embedding", "not_a_table")),
}


@pytest.mark.parametrize("options", RESTORES.values(), ids=RESTORES.keys())
def test_a_restore_dry_run_has_the_real_runs_outcome(options, store_db, backup_root):
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS))
    execute(store_db, "DELETE FROM langchain_pg_embedding WHERE id IN (SELECT id FROM langchain_pg_embedding LIMIT 10)")

    def restore(dry_run: bool):
        return run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=TS, dry_run=dry_run, **options))

    dry, real = dry_then_real(restore, store_db, backup_root, restore_counts)
    assert dry == real


def test_the_demo_case_an_append_dry_run_fails_on_the_conflict_like_the_real_one(store_db, backup_root):
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS))

    def restore(dry_run: bool):
        return run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=TS, dry_run=dry_run))

    dry, real = dry_then_real(restore, store_db, backup_root, restore_counts)
    assert dry[0] == real[0] == "failed" and dry == real
    assert "already exist" in dry[1]


def test_a_replace_dry_run_writes_its_safety_set_and_discards_it(store_db, backup_root):
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS))
    files = folder_snapshot(backup_root)
    result = run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=TS, dry_run=True,
                                        truncate_before_restore=True))
    assert result.dry_run and result.safety_set is None
    assert folder_snapshot(backup_root) == files


def truncate_counts(result) -> tuple:
    return result.rows_before, result.rows_after


@pytest.mark.parametrize("task_id", [None, "task_20250721_213627"])
def test_a_truncate_dry_run_has_the_real_runs_outcome(task_id, store_db, backup_root):
    def truncate(dry_run: bool):
        return run_guarded_truncate(TruncateRequest(dsn=store_db, root=backup_root, task_id=task_id, dry_run=dry_run))

    dry, real = dry_then_real(truncate, store_db, backup_root, truncate_counts)
    assert dry == real and dry[0] == "done"
    assert dry[1][1] == {"langchain_pg_embedding": 0}


def test_a_truncate_dry_run_fails_where_the_real_one_fails(store_db, backup_root):
    (backup_root / "task_20250721_213627").write_text("a file where the task folder should be")

    def truncate(dry_run: bool):
        return run_guarded_truncate(TruncateRequest(dsn=store_db, root=backup_root, task_id="task_20250721_213627",
                                                    dry_run=dry_run))

    dry, real = dry_then_real(truncate, store_db, backup_root, truncate_counts)
    assert dry[0] == "failed" and dry == real


def test_a_truncate_dry_run_fails_on_a_table_the_real_one_cannot_back_up(store_db, backup_root):
    execute(store_db, "ALTER TABLE langchain_pg_embedding RENAME TO moved_away")

    def truncate(dry_run: bool):
        return run_guarded_truncate(TruncateRequest(dsn=store_db, root=backup_root, dry_run=dry_run))

    dry = outcome(lambda: truncate(True))
    real = outcome(lambda: truncate(False))
    assert dry[0] == real[0] == "failed" and dry == real


def test_a_prune_dry_run_plans_what_the_real_run_deletes(backup_root):
    for day in range(1, 6):
        write_tiny_set(backup_root / "vector_bak", f"2025010{day}_020000", manifest=True)
    policy = RetentionPolicy(keep_daily=2, keep_weekly=0, keep_monthly=0)
    files = folder_snapshot(backup_root)

    planned = run_prune(PruneRequest(root=backup_root, policy=policy, dry_run=True))
    assert folder_snapshot(backup_root) == files
    done = run_prune(PruneRequest(root=backup_root, policy=policy, dry_run=False))

    assert [p.key for p in planned.plan.to_delete] == [p.key for p in done.deleted]
    assert planned.plan.bytes_to_free == done.bytes_freed > 0


def test_each_destructive_jobs_prefilled_config_is_a_dry_run_that_succeeds_on_the_demo(dagster_instance, store_db,
                                                                                      backup_root):
    from vector_assets_tests.support.dagster import output_metadata, run_job

    key = run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS)).timestamp
    dagster_instance.add_dynamic_partitions("vector_backups", [key])
    before, files = tables_now(store_db), folder_snapshot(backup_root)

    restore = run_job(dagster_instance, "restore_vector_tables", partition_key=key)
    truncate = run_job(dagster_instance, "truncate_vector_tables")
    prune = run_job(dagster_instance, "prune_vector_backups")

    assert restore.success and truncate.success and prune.success
    assert output_metadata(restore, "restore_from_backup_set")["dry_run"].value is True
    assert output_metadata(truncate, "truncate_after_verified_backup")["dry_run"].value is True
    assert output_metadata(prune, "prune_backup_sets")["dry_run"].value is True
    assert tables_now(store_db) == before and folder_snapshot(backup_root) == files
    assert dagster_instance.get_dynamic_partitions("vector_backups") == [key]


def test_a_replicate_dry_run_predicts_the_real_run_and_copies_nothing(s3_root, store_db, backup_root):
    from vector_assets.core.ops.replicate import ReplicateRequest, run_replicate
    from vector_assets.core.sets.catalog import scan_root

    good, damaged = "20250401_020000", "20250402_020000"
    for timestamp in (good, damaged):
        run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=timestamp))
    path = backup_root / "vector_bak" / f"langchain_pg_embedding_{damaged}.csv"
    body = bytearray(path.read_bytes())
    body[-3] = ord("7") if body[-3] != ord("7") else ord("8")
    path.write_bytes(bytes(body))

    dry = run_replicate(ReplicateRequest(root=backup_root, offsite_root=s3_root.url, dry_run=True))
    assert not s3_root.names()
    real = run_replicate(ReplicateRequest(root=backup_root, offsite_root=s3_root.url))

    assert [s.key for s in dry.copied] == [s.key for s in real.copied] == [good]
    assert dry.refused == real.refused and list(dry.refused) == [damaged]
    assert dry.bytes_copied == real.bytes_copied > 0
    assert [s.key for s in scan_root(s3_root.url)] == [good]


def test_a_replicate_dry_run_fails_where_an_offsite_root_refuses_writes(s3_root, store_db, backup_root, monkeypatch):
    from vector_assets.core.ops.replicate import ReplicateRequest, run_replicate

    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp="20250401_020000"))
    key_id, secret = s3_root.s3.user_denied(s3_root.bucket, "rag-backups/vector_bak/*")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)

    def replicate(dry_run: bool):
        return run_replicate(ReplicateRequest(root=backup_root, offsite_root=s3_root.url, dry_run=dry_run))

    dry, real = outcome(lambda: replicate(True)), outcome(lambda: replicate(False))
    assert dry[0] == real[0] == "failed" and dry == real
    assert "AccessDenied" in dry[1]
