"""Prune never deletes the only copy of rows: a guarded truncate's pre_truncate set.

The counts (daily, weekly, monthly) never delete one, and it never takes a scheduled backup's
place. It goes only when the operator sets VECTOR_ASSETS_KEEP_TRUNCATED_DAYS and that many days
have passed; the plan names each such set and says until when it is kept.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from vector_assets.cli import main
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.prune import PruneRequest, run_prune
from vector_assets.core.ops.truncate import TruncateRequest, run_guarded_truncate
from vector_assets.core.sets.catalog import scan_root
from vector_assets.core.sets.retention import TRUNCATED, RetentionPolicy, plan_retention
from vector_assets_tests.support.files import folder_snapshot

COUNTS_THAT_KEEP_ONE = RetentionPolicy(keep_daily=1, keep_weekly=0, keep_monthly=0)


def truncate_then_back_up_twice(store_db: str, backup_root: Path) -> str:
    """A pre_truncate set, then two newer full backups of the (now empty) embeddings."""
    truncated = run_guarded_truncate(TruncateRequest(dsn=store_db, root=backup_root, timestamp="20250101_020000"))
    assert truncated.backup is not None and truncated.rows_after["langchain_pg_embedding"] == 0
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp="20250102_020000"))
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp="20250103_020000"))
    key = f"{truncated.backup.timestamp}__pre_truncate"  # its partition key says what it is
    assert key in {s.key for s in scan_root(backup_root)}
    return key


def plan_reasons(backup_root: Path, policy: RetentionPolicy, now: datetime) -> dict[str, tuple[str, ...]]:
    return {p.key: p.reasons for p in plan_retention(scan_root(backup_root), policy, now=now).sets}


def test_prune_apply_keeps_a_pre_truncate_set_whatever_the_counts_say(store_db, backup_root):
    truncated = truncate_then_back_up_twice(store_db, backup_root)

    result = run_prune(PruneRequest(root=backup_root, policy=COUNTS_THAT_KEEP_ONE, dry_run=False))

    assert truncated not in {p.key for p in result.deleted}
    assert {p.key for p in result.deleted} == {"20250102_020000"}
    kept = {p.key: p.reasons for p in result.plan.kept}
    assert kept[truncated] == (f"{TRUNCATED} until VECTOR_ASSETS_KEEP_TRUNCATED_DAYS is set",)
    assert truncated in {s.key for s in scan_root(backup_root)}


def test_a_pre_truncate_set_never_takes_a_scheduled_backups_place(store_db, backup_root):
    truncated = truncate_then_back_up_twice(store_db, backup_root)
    reasons = plan_reasons(backup_root, COUNTS_THAT_KEEP_ONE, now=datetime(2025, 1, 3, 3))
    assert reasons["20250103_020000"] == ("daily", "newest")
    assert "daily" not in reasons[truncated] and "newest" not in reasons[truncated]


def test_keep_truncated_days_says_until_when_and_then_lets_it_go(store_db, backup_root):
    truncated = truncate_then_back_up_twice(store_db, backup_root)
    policy = RetentionPolicy(keep_daily=1, keep_weekly=0, keep_monthly=0, keep_truncated_days=30)
    made = datetime.strptime(truncated.split("__")[0], "%Y%m%d_%H%M%S")

    within = plan_reasons(backup_root, policy, now=made + timedelta(days=29))
    assert within[truncated] == (f"{TRUNCATED} until {made + timedelta(days=30):%Y-%m-%d %H:%M}",)
    after = plan_retention(scan_root(backup_root), policy, now=made + timedelta(days=31))
    assert truncated in {p.key for p in after.to_delete}


def test_the_cli_prune_plan_names_the_truncated_rows_and_apply_keeps_them(store_db, backup_root, monkeypatch, capsys):
    truncated = truncate_then_back_up_twice(store_db, backup_root)
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", str(backup_root))
    for name, value in {"VECTOR_ASSETS_KEEP_DAILY": "1", "VECTOR_ASSETS_KEEP_WEEKLY": "0",
                        "VECTOR_ASSETS_KEEP_MONTHLY": "0"}.items():
        monkeypatch.setenv(name, value)

    assert main(["prune", "--apply"]) == 0
    out = capsys.readouterr().out
    plan_line = next(line for line in out.splitlines() if truncated in line)
    assert "keep" in plan_line and "holds truncated rows" in plan_line
    assert truncated in {s.key for s in scan_root(backup_root)}


def test_a_bad_keep_truncated_days_is_refused_naming_the_variable_and_nothing_is_deleted(
    store_db, backup_root, monkeypatch, capsys
):
    truncate_then_back_up_twice(store_db, backup_root)
    before = folder_snapshot(backup_root)
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", str(backup_root))
    monkeypatch.setenv("VECTOR_ASSETS_KEEP_TRUNCATED_DAYS", "a week")

    assert main(["prune", "--apply"]) == 2
    err = capsys.readouterr().err
    assert "VECTOR_ASSETS_KEEP_TRUNCATED_DAYS" in err and err.count("\n") == 1
    assert folder_snapshot(backup_root) == before
