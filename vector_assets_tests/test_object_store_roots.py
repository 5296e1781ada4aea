"""Every operation behaves the same on a local folder, in a bucket on a real S3 server and in a
container on a real Azure server.

Each test here runs three times, ``[disk]``, ``[s3]`` and ``[azure]``: the jobs, the CLI, the
sensor, prune and the drill, through VECTOR_ASSETS_ROOT exactly as an operator configures them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from urllib.parse import unquote

import dagster as dg

from vector_assets.cli import main
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.prune import PruneRequest, run_prune
from vector_assets.core.ops.verify import verify_set
from vector_assets.core.sets.catalog import scan_root
from vector_assets.core.sets.naming import new_timestamp
from vector_assets.core.sets.retention import RetentionPolicy
from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE
from vector_assets_tests.support.dagster import INVENTORY_KEY, Ticker, added_keys, definitions, run_job
from vector_assets_tests.support.database import execute, tables_now
from vector_assets_tests.support.files import files_opened_under, tiny_set_files
from vector_assets_tests.support.object_store import RootFiles

TASK_ID = "task_20250721_213627"
LEGACY_TS = "20250721_213627"


def set_file_names(timestamp: str) -> set[str]:
    return {
        f"{COLLECTION_TABLE}_{timestamp}.csv", f"{EMBEDDING_TABLE}_{timestamp}.csv",
        f"vector_backup_{timestamp}.json", "vector_backup_log.txt",
    }


def test_backup_job_writes_the_disk_layout_and_restore_job_brings_every_row_back(any_root_instance, any_root, store_db):
    before = tables_now(store_db)
    backup = run_job(any_root_instance, "backup_vector_tables", "back_up_tables", {})
    assert backup.success
    (backup_set,) = scan_root(any_root.url)
    assert any_root.names("vector_bak") == set_file_names(backup_set.timestamp)
    manifest = json.loads(any_root.read("vector_bak", f"vector_backup_{backup_set.timestamp}.json"))
    assert manifest["tables"][EMBEDDING_TABLE]["rows"] == sum(before[EMBEDDING_TABLE].values())
    assert any_root.multipart_uploads() == []

    execute(store_db, "DELETE FROM langchain_pg_embedding")
    restore = run_job(any_root_instance, "restore_vector_tables", "restore_from_backup_set",
                      {"truncate_before_restore": True, "dry_run": False}, partition_key=backup_set.key)
    assert restore.success
    assert tables_now(store_db) == before


def test_guarded_truncate_job_truncates_only_after_its_set_is_stored_and_verified(any_root_instance, any_root, store_db):
    rows = execute(store_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0]
    result = run_job(any_root_instance, "truncate_vector_tables", "truncate_after_verified_backup", {"dry_run": False})
    assert result.success
    (backup_set,) = scan_root(any_root.url)
    assert backup_set.manifest.kind == "pre_truncate"
    assert backup_set.manifest.tables[EMBEDDING_TABLE].rows == rows > 0
    assert all(outcome.passed for outcome in verify_set(backup_set))
    assert execute(store_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0] == 0
    assert "TRUNCATED" in any_root.read("vector_bak", "vector_backup_log.txt").decode()


def test_drill_restores_the_set_into_a_scratch_database_and_passes(any_root_instance, any_root, store_db):
    made = run_backup(BackupRequest(dsn=store_db, root=any_root.url))
    any_root_instance.add_dynamic_partitions("vector_backups", [made.timestamp])
    result = definitions().resolve_job_def("drill_vector_backup").execute_in_process(
        instance=any_root_instance, partition_key=made.timestamp
    )
    assert result.success
    metadata = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT").event_specific_data.metadata
    assert metadata["passed"].value is True and metadata["scratch_dropped"].value is True


def test_prune_deletes_old_sets_manifest_first_and_keeps_the_newest(any_root, store_db):
    stamps = ["20250101_020000", "20250102_020000", "20250103_020000"]
    for stamp in stamps:
        run_backup(BackupRequest(dsn=store_db, root=any_root.url, timestamp=stamp))
    policy = RetentionPolicy(keep_daily=1, keep_weekly=0, keep_monthly=0)

    planned = run_prune(PruneRequest(root=any_root.url, policy=policy, dry_run=True))
    assert sorted(s.key for s in planned.plan.to_delete) == stamps[:2]
    assert len(scan_root(any_root.url)) == 3

    result = run_prune(PruneRequest(root=any_root.url, policy=policy, dry_run=False))
    assert sorted(result.removed_keys) == stamps[:2] and result.bytes_freed > 0
    assert [s.key for s in scan_root(any_root.url)] == [stamps[2]]
    assert any_root.names("vector_bak") == set_file_names(stamps[2])


def test_sensor_finds_a_set_copied_in_by_another_tool_and_an_unchanged_root_costs_no_read(
    any_root_instance, any_root, store_db, caplog
):
    """The seed tooling's ``psql \\copy`` CSVs, copied into task_*/vector_bak/ (``aws s3 cp``).

    What the ticks read is seen from outside the product: in a bucket or a container, the
    server's request log; on disk, the kernel's inotify. The first tick's reads show that each
    would see one."""
    label = f"{TASK_ID}/vector_bak"
    made = run_backup(BackupRequest(dsn=store_db, root=any_root.url))
    for table in (COLLECTION_TABLE, EMBEDDING_TABLE):
        any_root.write(label, f"{table}_{LEGACY_TS}.csv", any_root.read("vector_bak", f"{table}_{made.timestamp}.csv"))
    ticker = Ticker(any_root_instance)
    caplog.set_level(logging.INFO, logger="werkzeug")  # the S3 server logs one line per request
    with reads_of(any_root, caplog) as first_reads:
        first = ticker.tick()
    assert sorted(any_root_instance.get_dynamic_partitions("vector_backups")) == sorted([made.timestamp, LEGACY_TS])
    checked = {e.partition for e in first.asset_events if isinstance(e, dg.AssetCheckEvaluation) and e.partition}
    assert checked == {made.timestamp, LEGACY_TS} and first.run_requests == []  # the sensor checked both itself
    assert f"vector_bak/vector_backup_{made.timestamp}.json" in first_reads

    with reads_of(any_root, caplog) as second_reads:
        second = ticker.tick()
    assert second.run_requests == [] and second.asset_events == []
    assert json.loads(ticker.cursor)["folders"] == json.loads(first.cursor)["folders"]
    assert second_reads == []
    if any_root.kind != "disk":  # the root's listing, then one per location
        requests = [target for _, target in any_root.requests(caplog)]
        assert len(requests) == 3 and all(any_root.listing_marker in request for request in requests), requests


SETS_PER_TASK_FOLDER = 10


def write_small_sets(root: RootFiles, first: int, last: int) -> list[str]:
    """Tiny sets with manifests, numbered ``first`` to ``last - 1``, one a day, ten to a task
    folder as a task pipeline leaves them; their timestamps."""
    start = datetime(2024, 1, 1, 2)
    timestamps = []
    for number in range(first, last):
        timestamp = new_timestamp(start + timedelta(days=number))
        task = f"task_{new_timestamp(start + timedelta(days=number - number % SETS_PER_TASK_FOLDER))}"
        for name, body in tiny_set_files(timestamp, task, manifest=True).items():
            root.write(f"{task}/vector_bak", name, body)
        timestamps.append(timestamp)
    return timestamps


def test_a_tick_that_finds_one_new_set_reads_that_set_and_no_other(any_root_instance, any_root, caplog):
    """The sensor's tick grows with the sets that changed, not with the history: among 10 sets
    or among many, it reads the new set's files and the root's remembered set summaries, and no
    other set's manifest or data (on disk, files opened; in a bucket or container, GETs: the
    listings give every old set's size, time and ETag). The inventory still lists every set."""
    many = 200 if any_root.kind == "disk" else 40
    caplog.set_level(logging.INFO, logger="werkzeug")
    ticker = Ticker(any_root_instance)
    written = 0
    reads_by_size = {}
    for size in (10, many):
        write_small_sets(any_root, written, size)
        ticker.tick()
        (new,) = write_small_sets(any_root, size, size + 1)
        written = size + 1
        with reads_of(any_root, caplog) as reads:
            result = ticker.tick()
        assert new in added_keys(result)
        (inventory,) = [e for e in result.asset_events if getattr(e, "asset_key", None) == INVENTORY_KEY]
        assert inventory.metadata["total_backup_sets"].value == written
        assert all(new in read or read.startswith(".vector_assets/") for read in reads), reads
        reads_by_size[size] = reads

    assert len(reads_by_size[many]) == len(reads_by_size[10]), reads_by_size
    assert len(set(reads_by_size[many])) <= 10, reads_by_size


@contextmanager
def reads_of(root: RootFiles, caplog) -> Iterator[list[str]]:
    """The set files read while the block runs, as ``folder/name``: objects fetched from the
    bucket or container (GET and HEAD requests in the server's log), or files opened on disk."""
    if root.disk is not None:
        with files_opened_under(root.disk) as opened:
            yield opened
        return
    root.forget_requests(caplog)
    reads: list[str] = []
    yield reads
    prefix = root.request_prefix
    for method, target in root.requests(caplog):
        if method in ("GET", "HEAD") and target.startswith(prefix):
            reads.append(unquote(target[len(prefix):].split("?")[0]))


def test_cli_backup_and_list_show_the_set_under_the_root(any_root, store_db, monkeypatch, capsys):
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", any_root.url)
    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", store_db)
    assert main(["backup"]) == 0
    (made,) = scan_root(any_root.url)
    assert str(made.csv_path(EMBEDDING_TABLE)) in capsys.readouterr().out
    assert main(["list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    (location,) = listing["backup_locations"]
    assert location["relative_path"] == f"{any_root.url}/vector_bak"
    assert [entry["key"] for entry in location["backups"]] == [made.timestamp]
    assert location["backups"][0]["rows"][EMBEDDING_TABLE] > 0


def test_backup_op_reports_the_set_with_its_path_or_url(any_root_instance, any_root):
    result = run_job(any_root_instance, "backup_vector_tables", "back_up_tables", {})
    assert result.success
    (backup_set,) = scan_root(any_root.url)
    materializations = [e for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
    paths = {e.event_specific_data.materialization.metadata["path"].value for e in materializations}
    assert paths == {str(backup_set.csv_path(table)) for table in (COLLECTION_TABLE, EMBEDDING_TABLE)}
    assert all(path.startswith(any_root.url) for path in paths)
