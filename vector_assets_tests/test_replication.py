"""A second root (VECTOR_ASSETS_OFFSITE_ROOT): replicate_vector_backups copies intact sets to
a bucket on the local S3 server, refuses damaged ones, and after the local root is lost the
restore and the drill read the offsite copies."""

from __future__ import annotations

import json
import shutil

import dagster as dg
import pytest

from vector_assets import settings
from vector_assets.cli import EXIT_FAILED, main
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.sets.catalog import scan_root
from vector_assets.core.tables import EMBEDDING_TABLE
from vector_assets_tests.support.dagster import definitions, run_job
from vector_assets_tests.support.database import execute, tables_now

GOOD, DAMAGED = "20250401_020000", "20250402_020000"


@pytest.fixture
def offsite(s3_root, dagster_instance, monkeypatch):
    monkeypatch.setenv("VECTOR_ASSETS_OFFSITE_ROOT", s3_root.url)
    return s3_root


def damage(backup_root, timestamp: str) -> None:
    """One byte changed, the size kept: only the sha256 can tell."""
    path = backup_root / "vector_bak" / f"{EMBEDDING_TABLE}_{timestamp}.csv"
    body = bytearray(path.read_bytes())
    body[-3] = ord("7") if body[-3] != ord("7") else ord("8")
    path.write_bytes(bytes(body))


def test_replication_copies_intact_sets_refuses_damaged_ones_and_restores_after_the_local_root_is_lost(
    offsite, dagster_instance, store_db, backup_root, capsys
):
    for timestamp in (GOOD, DAMAGED):
        run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=timestamp))
    dagster_instance.add_dynamic_partitions("vector_backups", [GOOD, DAMAGED])
    damage(backup_root, DAMAGED)

    result = run_job(dagster_instance, "replicate_vector_backups")
    assert not result.success
    message = result.failure_data_for_node("replicate_sets").error.message
    assert DAMAGED in message and "sha256" in message and GOOD not in message.split("damaged:")[1]
    assert [s.key for s in scan_root(offsite.url)] == [GOOD]
    assert not any(DAMAGED in name for name in offsite.names())
    assert offsite.multipart_uploads() == []
    observation = dagster_instance.fetch_observations(
        dg.AssetKey(f"{EMBEDDING_TABLE}_backup"), limit=1).records[0].asset_observation
    assert observation.partition == GOOD and observation.metadata["copies"].value == "local, offsite"

    assert main(["list", "--json"]) == 0
    backups = json.loads(capsys.readouterr().out)["backup_locations"][0]["backups"]
    assert {b["key"]: b["copies"] for b in backups} == {GOOD: ["local", "offsite"], DAMAGED: ["local"]}

    again = run_job(dagster_instance, "replicate_vector_backups")
    assert not again.success and [s.key for s in scan_root(offsite.url)] == [GOOD]  # nothing copied twice

    before = tables_now(store_db)
    cut_short = backup_root / "vector_bak" / f"{EMBEDDING_TABLE}_{GOOD}.csv"
    cut_short.write_bytes(cut_short.read_bytes()[:-100])
    execute(store_db, "DELETE FROM langchain_pg_embedding")
    assert main(["restore", GOOD, "--replace", "--no-safety-backup", "--apply"]) == 0
    assert f"reading the offsite copy in {offsite.url}/vector_bak" in capsys.readouterr().err
    assert tables_now(store_db) == before

    shutil.rmtree(backup_root)
    execute(store_db, "DELETE FROM langchain_pg_embedding")
    restore = run_job(dagster_instance, "restore_vector_tables", "restore_from_backup_set",
                      {"truncate_before_restore": True, "safety_backup": False, "dry_run": False}, partition_key=GOOD)
    assert restore.success
    assert tables_now(store_db) == before
    restored = next(e for e in restore.all_events if e.event_type_value == "STEP_OUTPUT").event_specific_data.metadata
    assert offsite.url in restored["read_from_offsite"].value

    drill = definitions().resolve_job_def("drill_vector_backup").execute_in_process(
        instance=dagster_instance, partition_key=GOOD
    )
    assert drill.success


def test_replicate_without_an_offsite_root_says_which_variable_to_set(backup_root, monkeypatch, capsys):
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", str(backup_root))
    monkeypatch.delenv("VECTOR_ASSETS_OFFSITE_ROOT", raising=False)
    assert main(["replicate"]) == EXIT_FAILED
    assert "VECTOR_ASSETS_OFFSITE_ROOT is not set" in capsys.readouterr().err


def test_without_an_offsite_root_the_job_says_it_is_not_set_up_and_a_run_stops_at_once(
    dagster_instance, backup_root, monkeypatch
):
    from vector_assets.defs.replicate import replicate_description

    monkeypatch.delenv("VECTOR_ASSETS_OFFSITE_ROOT", raising=False)
    assert replicate_description(settings.default_store()).startswith("NOT SET UP: VECTOR_ASSETS_OFFSITE_ROOT is not set")
    monkeypatch.setenv("VECTOR_ASSETS_OFFSITE_ROOT", str(backup_root / "offsite"))
    assert not replicate_description(settings.default_store()).startswith("NOT SET UP")
    monkeypatch.delenv("VECTOR_ASSETS_OFFSITE_ROOT")

    result = run_job(dagster_instance, "replicate_vector_backups")

    assert not result.success
    message = result.failure_data_for_node("replicate_sets").error.message
    assert "VECTOR_ASSETS_OFFSITE_ROOT is not set" in message and message.strip().count("\n") == 0
    assert len([e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]) == 1  # no retries
