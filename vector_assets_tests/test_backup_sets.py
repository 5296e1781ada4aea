"""Naming, validation and scanning of sets on disk, including legacy and half-written folders."""

import shutil
import subprocess

import pytest

from vector_assets.core.errors import (
    BackupSetExistsError,
    InvalidTaskIdError,
    InvalidTimestampError,
    PathOutsideRootError,
    UnknownTableError,
)
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.verify import verify_set
from vector_assets.core.sets.catalog import SetCatalog, scan_root
from vector_assets.core.sets.formats import rows_in
from vector_assets.core.sets.naming import (
    Location,
    resolve_inside_root,
    validate_timestamp,
)
from vector_assets.dev.demo import LEGACY_TASK_ID, LEGACY_TIMESTAMP, ensure_demo_store
from vector_assets.dev.embedded import bundled_client
from vector_assets_tests.support.database import execute
from vector_assets_tests.support.files import folder_snapshot


@pytest.mark.parametrize("bad", ["2025-07-21", "20250721213627", "20251341_000000", "20250721_246000", ""])
def test_malformed_timestamps_are_refused_by_name(bad):
    with pytest.raises(InvalidTimestampError, match=repr(bad).replace("(", r"\(")):
        validate_timestamp(bad)


@pytest.mark.parametrize("bad", ["task_2025", "../task_20250721_213627", "other_20250721_213627", "task_20250721_213627/x"])
def test_malformed_task_ids_are_refused_by_name(bad):
    with pytest.raises(InvalidTaskIdError, match="task id"):
        Location(bad)


def test_paths_must_stay_inside_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "inside").mkdir(parents=True)
    (root / "escape").symlink_to(tmp_path)
    assert resolve_inside_root(root, "inside") == (root / "inside").resolve()
    for bad, reason in [("../x", "'..'"), ("/etc", "absolute"), ("escape/x", "outside the root")]:
        with pytest.raises(PathOutsideRootError, match=reason):
            resolve_inside_root(root, bad)


def test_unknown_table_is_refused_before_anything_is_written(store_db, backup_root):
    with pytest.raises(UnknownTableError, match="'pg_shadow'"):
        run_backup(BackupRequest(dsn=store_db, root=backup_root, tables=("langchain_pg_embedding", "pg_shadow")))
    assert folder_snapshot(backup_root) == {}


def test_an_existing_set_is_never_overwritten(store_db, backup_root):
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp="20250101_000000"))
    before = folder_snapshot(backup_root)
    with pytest.raises(BackupSetExistsError, match="20250101_000000"):
        run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp="20250101_000000"))
    assert folder_snapshot(backup_root) == before


def test_scan_finds_global_task_and_manual_sets_and_skips_half_written_ones(store_db, backup_root):
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp="20250101_000000"))
    run_backup(BackupRequest(dsn=store_db, root=backup_root, task_id="manual_20250102_000000", timestamp="20250102_000000"))
    good = run_backup(BackupRequest(dsn=store_db, root=backup_root, task_id="task_20250103_000000", timestamp="20250103_000000"))
    # Same timestamp in a second location gets a key naming its location.
    run_backup(BackupRequest(dsn=store_db, root=backup_root, task_id="task_20250104_000000", timestamp="20250101_000000"))
    folder = good.folder.path
    # A set still being written: tmp files present.
    (folder / "langchain_pg_collection_20250105_000000.csv").write_text("uuid,name,cmetadata\n")
    (folder / "langchain_pg_embedding_20250105_000000.csv.tmp").write_text("id\n")
    # A legacy set missing its partner file.
    (folder / "langchain_pg_collection_20250106_000000.csv").write_text("uuid,name,cmetadata\n")
    (backup_root / "not_a_task" / "vector_bak").mkdir(parents=True)
    shutil.copy(good.paths["langchain_pg_collection"], backup_root / "not_a_task" / "vector_bak" / "langchain_pg_collection_20250107_000000.csv")

    found = {(s.key, s.location.label) for s in scan_root(backup_root)}
    assert found == {
        ("20250101_000000", "vector_bak"),
        ("20250102_000000", "manual_20250102_000000/vector_bak"),
        ("20250103_000000", "task_20250103_000000/vector_bak"),
        ("20250101_000000__task_20250104_000000", "task_20250104_000000/vector_bak"),
    }


def test_legacy_set_from_psql_copy_is_read_with_a_real_csv_parser(store_db, backup_root, maintenance_dsn):
    folder = backup_root / "task_20250721_213627" / "vector_bak"
    folder.mkdir(parents=True)
    psql = bundled_client("psql")
    for table in ("langchain_pg_collection", "langchain_pg_embedding"):
        target = folder / f"{table}_20250721_213627.csv"
        subprocess.run([str(psql), store_db, "-c", f"\\copy {table} TO '{target}' csv header"], check=True)
    (backup_set,) = scan_root(backup_root)
    assert backup_set.is_legacy and backup_set.key == "20250721_213627"
    rows = execute(store_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0]
    csv_path = backup_set.csv_path("langchain_pg_embedding")
    assert rows_in(backup_set.folder, csv_path.name) == rows
    assert csv_path.read_bytes().count(b"\n") > rows + 1  # documents with newlines: line counting would be wrong
    assert all(outcome.passed for outcome in verify_set(backup_set))


def test_demo_store_is_deterministic_and_ships_a_legacy_set(empty_db, backup_root):
    assert ensure_demo_store(empty_db, backup_root) is True
    assert ensure_demo_store(empty_db, backup_root) is False
    backup_set = SetCatalog(backup_root).get(LEGACY_TIMESTAMP)
    assert backup_set.is_legacy and backup_set.location.task_id == LEGACY_TASK_ID
    assert rows_in(backup_set.folder, backup_set.file_name("langchain_pg_embedding")) == 3000
    names = execute(empty_db, "SELECT name FROM langchain_pg_collection ORDER BY name")
    assert [n for (n,) in names] == ["ddl", "documentation", "sql"]
    ids = execute(empty_db, "SELECT id FROM langchain_pg_embedding ORDER BY id LIMIT 3")
    assert all(i.rsplit("-", 1)[1] in {"sql", "ddl", "documentation"} for (i,) in ids)
    first = execute(empty_db, "SELECT md5(string_agg(id || embedding::text, ',' ORDER BY id)) FROM langchain_pg_embedding")
    blank = execute(empty_db, "SELECT count(*) FROM langchain_pg_embedding WHERE document = '' OR document IS NULL")
    tricky = execute(empty_db, "SELECT count(*) FROM langchain_pg_embedding WHERE document LIKE E'%\\n%' OR document LIKE '%\"%'")
    assert (blank[0][0], tricky[0][0] >= 3) == (0, True), "CSV's hard cases, but no document the data checks warn about"
    execute(empty_db, "DROP TABLE langchain_pg_embedding, langchain_pg_collection")
    ensure_demo_store(empty_db, backup_root)
    again = execute(empty_db, "SELECT md5(string_agg(id || embedding::text, ',' ORDER BY id)) FROM langchain_pg_embedding")
    assert first == again
