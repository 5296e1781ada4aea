"""Every set format through the real commands: backup, restore, the checks, the drill, the
guarded truncate, and the Dagster jobs; large tables in parts; damaged files refused."""

import dagster as dg
import pytest

from vector_assets.core.errors import BackupFileError, ColumnMismatchError
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.drill import DrillRequest, run_drill
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets.core.ops.truncate import TruncateRequest, run_guarded_truncate
from vector_assets.core.ops.verify import VerifyRequest, run_verify
from vector_assets.core.sets.catalog import SetCatalog
from vector_assets.core.sets.formats import FORMATS
from vector_assets.core.sets.writer import PartPolicy
from vector_assets.core.tables import EMBEDDING_TABLE
from vector_assets_tests.support.database import STORE_TABLES
from vector_assets_tests.support.dagster import definitions
from vector_assets_tests.support.database import execute, fill_store, tables_now
from vector_assets_tests.support.files import folder_snapshot
from vector_assets_tests.test_self_contained_sets import RICHER_STORE, table_shape

NEWER_FORMATS = [name for name in FORMATS if name != "csv"]
SMALL_PARTS = PartPolicy(part_bytes=64 * 1024, max_parts=3)


@pytest.fixture(params=["current", "community"])
def rich_store(request, empty_db):
    fill_store(empty_db, layout=request.param, embeddings=600)
    for statement in RICHER_STORE:
        execute(empty_db, statement)
    return empty_db


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_format_round_trips_every_row_into_the_same_and_an_empty_database_on_disk_and_s3(fmt, rich_store, second_db, any_root):
    before = tables_now(rich_store)
    backup = run_backup(BackupRequest(dsn=rich_store, root=any_root.url, format=fmt))
    assert backup.manifest.format == fmt
    assert all(entry.file.endswith("." + fmt) for entry in backup.manifest.tables.values())
    assert run_verify(VerifyRequest(root=any_root.url, key=backup.timestamp)).passed

    execute(rich_store, "DELETE FROM langchain_pg_embedding WHERE document IS NULL")
    run_restore(RestoreRequest(target_dsn=rich_store, root=any_root.url, timestamp=backup.timestamp,
                               truncate_before_restore=True, safety_backup=False))
    assert tables_now(rich_store) == before

    execute(second_db, "DROP EXTENSION vector")
    run_restore(RestoreRequest(target_dsn=second_db, root=any_root.url, timestamp=backup.timestamp))
    assert tables_now(second_db) == before
    assert table_shape(second_db) == table_shape(rich_store)


@pytest.mark.parametrize("fmt", NEWER_FORMATS)
def test_a_large_table_is_backed_up_in_parts_from_one_snapshot_and_restores_checks_and_drills_on_disk_and_s3(fmt, store_db, any_root):
    fill_more = "INSERT INTO langchain_pg_embedding SELECT 'copy-' || id, collection_id, embedding, document, cmetadata FROM langchain_pg_embedding"
    execute(store_db, fill_more)
    before = tables_now(store_db)

    backup = run_backup(BackupRequest(dsn=store_db, root=any_root.url, format=fmt, parts=SMALL_PARTS))

    entry = backup.manifest.tables[EMBEDDING_TABLE]
    assert len(entry.parts) == 3 and sum(part.rows for part in entry.parts) == entry.rows == 600
    assert len({part.sha256 for part in entry.parts}) == 3
    assert all(backup.folder.size(part.file) for part in entry.parts)
    outcomes = run_verify(VerifyRequest(root=any_root.url, key=backup.timestamp)).outcomes
    assert all(outcome.passed for outcome in outcomes), [o.message for o in outcomes if not o.passed]
    drill = run_drill(DrillRequest(dsn=store_db, root=any_root.url, key=backup.timestamp))
    assert drill.passed, [t.message for t in drill.tables]
    execute(store_db, "DELETE FROM langchain_pg_embedding")
    run_restore(RestoreRequest(target_dsn=store_db, root=any_root.url, timestamp=backup.timestamp,
                               truncate_before_restore=True, safety_backup=False))
    assert tables_now(store_db) == before


@pytest.mark.parametrize("fmt", NEWER_FORMATS)
def test_the_drill_passes_on_every_format(fmt, store_db, backup_root):
    backup = run_backup(BackupRequest(dsn=store_db, root=backup_root, format=fmt))
    drill = run_drill(DrillRequest(dsn=store_db, root=backup_root, key=backup.timestamp))
    assert drill.passed and [t.table for t in drill.tables] == list(STORE_TABLES)


@pytest.mark.parametrize("fmt", ["csv.zst", "pgcopy", "pgcopy.zst"])
@pytest.mark.parametrize("damage", ["cut", "flipped byte"])
def test_a_cut_or_damaged_file_of_any_format_is_refused_and_the_tables_stay(fmt, damage, store_db, backup_root):
    backup = run_backup(BackupRequest(dsn=store_db, root=backup_root, format=fmt))
    path = backup.folder.locator(backup.manifest.tables[EMBEDDING_TABLE].file)
    data = bytearray(path.read_bytes())
    if damage == "cut":
        del data[len(data) // 2:]
    else:
        data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    execute(store_db, "DELETE FROM langchain_pg_embedding WHERE document IS NULL")
    before, files = tables_now(store_db), folder_snapshot(backup_root)

    with pytest.raises(BackupFileError):
        run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=backup.timestamp,
                                   truncate_before_restore=True))

    assert tables_now(store_db) == before and folder_snapshot(backup_root) == files
    outcomes = {o.check: o for o in run_verify(VerifyRequest(root=backup_root, key=backup.timestamp)).outcomes
                if o.table == EMBEDDING_TABLE}
    assert not outcomes["sha256_matches_manifest"].passed


def test_a_binary_set_is_refused_by_a_table_whose_column_type_differs_naming_the_column(store_db, backup_root):
    backup = run_backup(BackupRequest(dsn=store_db, root=backup_root, format="pgcopy"))
    execute(store_db, "ALTER TABLE langchain_pg_embedding ALTER COLUMN document TYPE text")
    before = tables_now(store_db)

    with pytest.raises(ColumnMismatchError, match="column document: the set has character varying, the target has text"):
        run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=backup.timestamp,
                                   truncate_before_restore=True))
    assert tables_now(store_db) == before


@pytest.mark.parametrize("fmt", ["pgcopy.zst"])
def test_the_guarded_truncate_verifies_a_set_of_the_chosen_format(fmt, store_db, backup_root):
    result = run_guarded_truncate(TruncateRequest(dsn=store_db, root=backup_root, format=fmt))
    backup_set = SetCatalog(backup_root).newest()
    assert backup_set.manifest.format == fmt and backup_set.manifest.kind == "pre_truncate"
    assert result.backup.manifest.tables[EMBEDDING_TABLE].rows == 300
    assert execute(store_db, "SELECT count(*) FROM langchain_pg_embedding") == [(0,)]


def test_the_backup_job_takes_the_format_from_its_launchpad_dropdown(dagster_instance, backup_root):
    job = definitions().resolve_job_def("backup_vector_tables")
    result = job.execute_in_process(
        instance=dagster_instance, run_config={"ops": {"back_up_tables": {"config": {"format": "pgcopy.zst"}}}}
    )
    assert result.success
    assert SetCatalog(backup_root).newest().manifest.format == "pgcopy.zst"
    with pytest.raises(dg.DagsterInvalidConfigError, match="zip"):
        job.execute_in_process(instance=dagster_instance, run_config={"ops": {"back_up_tables": {"config": {"format": "zip"}}}})


def test_the_truncate_job_writes_its_safety_set_in_the_chosen_format(dagster_instance, backup_root, store_db):
    job = definitions().resolve_job_def("truncate_vector_tables")
    config = {"ops": {"truncate_after_verified_backup": {"config": {"format": "pgcopy", "dry_run": False}}}}

    assert job.execute_in_process(instance=dagster_instance, run_config=config).success

    backup_set = SetCatalog(backup_root).newest()
    assert backup_set.manifest.kind == "pre_truncate" and backup_set.manifest.format == "pgcopy"
    assert execute(store_db, "SELECT count(*) FROM langchain_pg_embedding") == [(0,)]
