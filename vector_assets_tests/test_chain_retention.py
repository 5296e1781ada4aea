"""Retention keeps chains whole: prune never deletes a set that a kept increment restores on top
of, says so in its plan (CLI and Dagster), and deletes every file of a set it does delete (its
parts, row index and deleted keys) and nothing else."""

import pytest

from vector_assets.cli import main
from vector_assets.core.sets.writer import PartPolicy
from vector_assets.core.ops.prune import PruneRequest, run_prune
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets.core.ops.verify import verify_set
from vector_assets.core.sets.catalog import scan_root
from vector_assets.core.sets.naming import LOG_FILE_NAME, manifest_file_name
from vector_assets.core.sets.retention import DELETE, KEEP, RetentionPolicy, plan_retention
from vector_assets.core.tables import EMBEDDING_TABLE
from vector_assets_tests.support.chains import build_chain
from vector_assets_tests.support.dagster import output_metadata, run_job
from vector_assets_tests.support.database import tables_now
from vector_assets_tests.support.files import folder_snapshot

# A chain over two days, then a second chain on the third: full, increment, increment; full, increment.
FIRST_CHAIN = ["20250101_020000", "20250101_030000", "20250102_030000"]
SECOND_CHAIN = ["20250103_020000", "20250103_030000"]
KEEP_VARS = ("VECTOR_ASSETS_KEEP_DAILY", "VECTOR_ASSETS_KEEP_WEEKLY", "VECTOR_ASSETS_KEEP_MONTHLY")


@pytest.fixture
def two_chains(store_db, backup_root):
    build_chain(store_db, backup_root, FIRST_CHAIN)
    build_chain(store_db, backup_root, SECOND_CHAIN)
    return backup_root


def plan_for(root, daily: int):
    return plan_retention(scan_root(root), RetentionPolicy(keep_daily=daily, keep_weekly=0, keep_monthly=0))


def actions(plan) -> dict[str, tuple[str, tuple[str, ...]]]:
    """By timestamp: an increment's key is ``<timestamp>__incremental``."""
    return {planned.timestamp: (planned.action, planned.reasons) for planned in plan.sets}


def test_a_kept_increment_keeps_every_ancestor_and_the_plan_says_whose(two_chains):
    assert actions(plan_for(two_chains, daily=1)) == {
        "20250103_030000": (KEEP, ("daily", "newest")),
        "20250103_020000": (KEEP, ("ancestor of 20250103_030000",)),
        "20250102_030000": (DELETE, ()),
        "20250101_030000": (DELETE, ()),
        "20250101_020000": (DELETE, ()),
    }
    # keeping the second day's increment keeps its whole chain, back to the first day's full set
    assert actions(plan_for(two_chains, daily=2)) == {
        "20250103_030000": (KEEP, ("daily", "newest")),
        "20250103_020000": (KEEP, ("ancestor of 20250103_030000",)),
        "20250102_030000": (KEEP, ("daily",)),
        "20250101_030000": (KEEP, ("ancestor of 20250102_030000",)),
        "20250101_020000": (KEEP, ("ancestor of 20250102_030000",)),
    }


def test_an_ancestor_of_several_kept_increments_names_the_newest(two_chains):
    plan = plan_retention(scan_root(two_chains), RetentionPolicy(keep_daily=0, keep_weekly=0, keep_monthly=0),
                          in_use=["20250101_030000", "20250102_030000"])
    assert actions(plan)["20250101_020000"] == (KEEP, ("ancestor of 20250102_030000 and 1 more",))
    assert actions(plan)["20250101_030000"] == (KEEP, ("in-use", "ancestor of 20250102_030000"))


def test_prune_deletes_what_no_kept_increment_needs_and_the_kept_chain_still_verifies_and_restores(
    two_chains, store_db, second_db
):
    result = run_prune(PruneRequest(root=two_chains, policy=RetentionPolicy(1, 0, 0), dry_run=False))

    assert sorted(planned.timestamp for planned in result.deleted) == FIRST_CHAIN
    remaining = scan_root(two_chains)
    assert [s.timestamp for s in remaining] == SECOND_CHAIN
    increment = remaining[-1]
    assert increment.manifest.parent == SECOND_CHAIN[0]
    assert all(outcome.passed for outcome in verify_set(increment))
    assert not [name for name in folder_snapshot(two_chains) if any(ts in name for ts in FIRST_CHAIN)]
    run_restore(RestoreRequest(target_dsn=second_db, root=two_chains, timestamp=increment.timestamp))
    assert tables_now(second_db) == tables_now(store_db)  # the store as it was at the increment's snapshot


def test_the_cli_and_the_prune_jobs_plan_show_sets_kept_as_ancestors(two_chains, dagster_instance, monkeypatch, capsys):
    for name, value in zip(KEEP_VARS, ("1", "0", "0")):
        monkeypatch.setenv(name, value)

    assert main(["prune"]) == 0
    lines = capsys.readouterr().out.splitlines()
    (kept_line,) = [line for line in lines if "20250103_020000" in line]
    assert kept_line.split()[0] == "keep" and kept_line.endswith("(ancestor of 20250103_030000)")

    result = run_job(dagster_instance, "prune_vector_backups", "prune_backup_sets", {"dry_run": True})
    assert result.success
    metadata = output_metadata(result, "prune_backup_sets")
    records = {record.data["key"]: record.data for record in metadata["plan"].records}
    assert records["20250103_020000"]["action"] == "keep"
    assert records["20250103_020000"]["reasons"] == "ancestor of 20250103_030000"
    assert "| `20250103_020000` | vector_bak | keep | ancestor of 20250103_030000 |" in metadata["summary"].value
    assert len(scan_root(two_chains)) == 5  # a dry run


def test_pruning_a_set_in_parts_and_its_increment_removes_every_one_of_their_files_and_nothing_else(store_db, backup_root):
    old = ["20250101_020000", "20250101_030000"]
    build_chain(store_db, backup_root, old, format="pgcopy.zst", parts=PartPolicy(part_bytes=128 * 1024))
    build_chain(store_db, backup_root, ["20250103_020000"], format="pgcopy.zst")
    folder = backup_root / "vector_bak"
    full, increment, newest = scan_root(backup_root)
    assert len(full.manifest.tables[EMBEDDING_TABLE].parts) > 1
    assert increment.manifest.tables[EMBEDDING_TABLE].deleted_keys.rows == 1
    own_files = {
        name for backup_set in (full, increment)
        for name in [manifest_file_name(backup_set.timestamp), *backup_set.all_stored_files()]
    }
    assert {name for name in own_files if name.endswith((".index.zst", ".deleted.zst"))} == {
        f"{table}_{ts}.index.zst" for table in full.tables for ts in old
    } | {f"{table}_{old[1]}.deleted.zst" for table in full.tables}
    (folder / f"{EMBEDDING_TABLE}_{old[0]}.pgcopy.zst.sig").write_text("an operator's signature")
    before = folder_snapshot(backup_root)
    assert {f"vector_bak/{name}" for name in own_files} < set(before)

    result = run_prune(PruneRequest(root=backup_root, policy=RetentionPolicy(1, 0, 0), dry_run=False))

    assert sorted(planned.timestamp for planned in result.deleted) == old
    after = folder_snapshot(backup_root)
    assert set(before) - set(after) == {f"vector_bak/{name}" for name in own_files}
    assert {name: before[name] for name in after} == after  # what is left is untouched
    assert f"vector_bak/{LOG_FILE_NAME}" in after and f"vector_bak/{EMBEDDING_TABLE}_{old[0]}.pgcopy.zst.sig" in after
    assert result.bytes_freed == sum(len(before[f"vector_bak/{name}"]) for name in own_files)
    assert [s.timestamp for s in scan_root(backup_root)] == [newest.timestamp]
