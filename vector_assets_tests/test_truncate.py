"""Guarded truncate: nothing is lost, and nothing is truncated unless the backup is verified."""

import csv
import os
import threading
import time
import uuid

import psycopg2
import pytest

from vector_assets.core.errors import ConfigError, GuardedTruncateError, VerificationError
from vector_assets.core.ops.truncate import TruncateRequest, run_guarded_truncate
from vector_assets.core.ops.verify import verify_set
from vector_assets.core.progress import ProgressReporter
from vector_assets.core.sets.catalog import scan_root
from vector_assets_tests.support.files import folder_snapshot
from vector_assets_tests.support.database import execute, fill_store, rows_as_text, tables_now
from vector_assets_tests.support.faults import backend_waiting_on_lock


def test_truncate_backs_up_both_tables_and_empties_only_embeddings(store_db, backup_root):
    collections = rows_as_text(store_db, "langchain_pg_collection")
    embeddings = rows_as_text(store_db, "langchain_pg_embedding")
    result = run_guarded_truncate(TruncateRequest(dsn=store_db, root=backup_root))
    assert result.rows_before == {"langchain_pg_embedding": sum(embeddings.values())}
    assert result.rows_after == {"langchain_pg_embedding": 0}
    assert rows_as_text(store_db, "langchain_pg_collection") == collections
    assert execute(store_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0] == 0
    (backup_set,) = scan_root(backup_root)
    assert backup_set.manifest.tables["langchain_pg_embedding"].rows == sum(embeddings.values())
    log = backup_set.log_path.read_text(encoding="utf-8")
    assert f"✓ langchain_pg_embedding: TRUNCATED ({sum(embeddings.values()):,} rows removed)" in log
    assert "- langchain_pg_collection: SKIPPED (collection table preserved)" in log


def test_truncating_collections_needs_both_tables_and_then_empties_both(store_db, backup_root):
    with pytest.raises(ConfigError, match="truncating langchain_pg_collection alone"):
        TruncateRequest(dsn=store_db, root=backup_root, tables=("langchain_pg_collection",))
    result = run_guarded_truncate(
        TruncateRequest(dsn=store_db, root=backup_root, tables=("langchain_pg_collection", "langchain_pg_embedding"))
    )
    assert result.rows_after == {"langchain_pg_collection": 0, "langchain_pg_embedding": 0}


def test_a_failure_between_backup_and_truncate_leaves_the_table_untouched(store_db, backup_root):
    # A real failure at the truncate step: a trigger that refuses TRUNCATE.
    execute(
        store_db,
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'truncate refused'; END $$;"
        " CREATE TRIGGER no_truncate BEFORE TRUNCATE ON langchain_pg_embedding EXECUTE FUNCTION refuse();",
    )
    before = rows_as_text(store_db, "langchain_pg_embedding")
    with pytest.raises(GuardedTruncateError, match="step 'truncate'.*truncate refused") as raised:
        run_guarded_truncate(TruncateRequest(dsn=store_db, root=backup_root))
    assert raised.value.step == "truncate"
    assert rows_as_text(store_db, "langchain_pg_embedding") == before
    (backup_set,) = scan_root(backup_root)  # the backup itself is fine and stays
    assert "Truncate Status:\n- Not performed" in backup_set.log_path.read_text(encoding="utf-8")


def test_a_failed_backup_step_truncates_nothing_and_leaves_no_set(store_db, backup_root):
    folder = backup_root / "vector_bak"
    folder.mkdir()
    os.symlink("/dev/full", folder / "langchain_pg_embedding_20250101_000000.csv.tmp")
    before = rows_as_text(store_db, "langchain_pg_embedding")
    with pytest.raises(GuardedTruncateError, match="step 'backup'.*disk full"):
        run_guarded_truncate(TruncateRequest(dsn=store_db, root=backup_root, timestamp="20250101_000000"))
    assert rows_as_text(store_db, "langchain_pg_embedding") == before
    assert list(folder.iterdir()) == []


def insert_until_stopped(dsn: str, stop: threading.Event, committed: list[str]) -> None:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    collection = execute(dsn, "SELECT uuid FROM langchain_pg_collection LIMIT 1")[0][0]
    vector = "[" + ",".join(["0.25"] * 384) + "]"
    try:
        with conn.cursor() as cursor:
            while not stop.is_set():
                row_id = f"{uuid.uuid4()}-writer"
                cursor.execute(
                    "INSERT INTO langchain_pg_embedding (id, collection_id, embedding) VALUES (%s, %s, %s)",
                    (row_id, collection, vector),
                )
                committed.append(row_id)
    finally:
        conn.close()


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the concurrent writer stalled"
        time.sleep(0.01)


def test_rows_committed_by_a_concurrent_writer_are_in_the_backup_or_still_in_the_table(empty_db, backup_root):
    fill_store(empty_db, embeddings=5000)
    stop, committed = threading.Event(), []
    writer = threading.Thread(target=insert_until_stopped, args=(empty_db, stop, committed))
    writer.start()
    try:
        wait_until(lambda: len(committed) >= 20)
        result = run_guarded_truncate(TruncateRequest(dsn=empty_db, root=backup_root))
        after_commit = len(committed)
        wait_until(lambda: len(committed) >= after_commit + 20)
    finally:
        stop.set()
        writer.join()
    with open(result.backup.paths["langchain_pg_embedding"], newline="", encoding="utf-8") as handle:
        backed_up = {row["id"] for row in csv.DictReader(handle)}
    in_table = {row_id for (row_id,) in execute(empty_db, "SELECT id FROM langchain_pg_embedding")}
    lost = [row_id for row_id in committed if row_id not in backed_up and row_id not in in_table]
    assert lost == []
    assert backed_up & set(committed) and in_table & set(committed), "the writer must have written on both sides"


def test_a_long_reader_makes_the_truncate_give_up_retryably_naming_it_and_new_readers_get_through_between_its_tries(
    store_db, backup_root
):
    reader = psycopg2.connect(store_db)
    with reader.cursor() as cursor:
        cursor.execute("SET application_name = 'long_report'")
        cursor.execute("SELECT count(*) FROM langchain_pg_embedding")  # holds ACCESS SHARE until rollback
    reader_pid = reader.get_backend_pid()
    before = rows_as_text(store_db, "langchain_pg_embedding")
    outcome: dict = {}
    gave_up = threading.Event()

    def truncate() -> None:
        try:
            run_guarded_truncate(TruncateRequest(dsn=store_db, root=backup_root))
        except BaseException as error:  # reported below
            outcome["error"] = error
        finally:
            gave_up.set()

    worker = threading.Thread(target=truncate)
    worker.start()
    try:
        backend_waiting_on_lock(store_db, "TRUNCATE", worker.is_alive)
        # New readers, arriving while the truncate tries for its lock. Each queues behind a try
        # and must get through in the pause after it, not only once the truncate has given up.
        reads_done_while_it_tried = 0
        while not gave_up.is_set():
            execute(store_db, "SELECT count(*) FROM langchain_pg_embedding")
            reads_done_while_it_tried += not gave_up.is_set()
            time.sleep(0.2)
    finally:
        worker.join()
        reader.rollback()
        reader.close()

    error = outcome["error"]
    assert isinstance(error, GuardedTruncateError) and error.retryable
    assert "step 'truncate'" in str(error) and f"pid {reader_pid}" in str(error) and "long_report" in str(error)
    # Held behind one long wait, at most the first reader would finish before the truncate gave up.
    assert reads_done_while_it_tried >= 3, f"only {reads_done_while_it_tried} readers got through while it tried"
    assert rows_as_text(store_db, "langchain_pg_embedding") == before
    result = run_guarded_truncate(TruncateRequest(dsn=store_db, root=backup_root))
    assert result.rows_after == {"langchain_pg_embedding": 0}


# --- the verify step ----------------------------------------------------------------------------


def damage_when_written(root, table: str, damaged: list[str]) -> ProgressReporter:
    """A progress reporter (the hook the CLI draws its bars with) that, when the backup reports
    ``table``'s file written (hashed, fsynced or uploaded, not yet verified), changes one digit
    in it through the root itself: the disk's tmp file, or the bucket's object."""

    def damage(event) -> None:
        if not (event.done and event.key == f"backup {table}"):
            return
        (name,) = [name for name in root.names("vector_bak") if name.startswith(f"{table}_")]
        body = root.read("vector_bak", name)
        at = next(i for i in range(body.index(b"\n") + 1, len(body)) if body[i:i + 1].isdigit())  # past the header
        root.write("vector_bak", name, body[:at] + (b"2" if body[at:at + 1] == b"1" else b"1") + body[at + 1:])
        damaged.append(name)

    return ProgressReporter(damage, interval_seconds=3600)


def test_a_file_damaged_between_its_backup_and_the_verify_step_truncates_nothing(any_root, store_db):
    before = tables_now(store_db)
    damaged: list[str] = []
    request = TruncateRequest(dsn=store_db, root=any_root.url, timestamp="20250101_000000",
                              progress=damage_when_written(any_root, "langchain_pg_embedding", damaged))

    with pytest.raises(GuardedTruncateError, match="step 'verify'.*size or sha256 changed after it was written") as raised:
        run_guarded_truncate(request)

    assert damaged, "the progress hook never saw the embedding file written"
    assert raised.value.step == "verify" and isinstance(raised.value.__cause__, VerificationError)
    assert tables_now(store_db) == before
    # The root holds the set, published, with the damaged file the checks flag and a log saying
    # no truncate happened; a rerun makes a new set and truncates.
    assert any_root.names("vector_bak") == {
        "langchain_pg_collection_20250101_000000.csv", "langchain_pg_embedding_20250101_000000.csv",
        "vector_backup_20250101_000000.json", "vector_backup_log.txt",
    }
    (backup_set,) = scan_root(any_root.url)
    failed = [(outcome.table, outcome.check) for outcome in verify_set(backup_set) if not outcome.passed]
    assert failed == [("langchain_pg_embedding", "sha256_matches_manifest")]
    assert "Truncate Status:\n- Not performed" in any_root.read("vector_bak", "vector_backup_log.txt").decode()
    assert run_guarded_truncate(TruncateRequest(dsn=store_db, root=any_root.url)).rows_after == {
        "langchain_pg_embedding": 0
    }


def test_rows_a_backup_would_not_hold_stop_the_truncate_before_anything_is_written(store_db, backup_root):
    """Rows in a table that inherits from langchain_pg_embedding: count(*) and TRUNCATE reach
    them, COPY of the parent does not. They would be truncated and in no backup; the backup step
    refuses the table before writing a file (until it did, the verify step caught the counts)."""
    execute(store_db, "CREATE TABLE archived_embedding () INHERITS (langchain_pg_embedding)")
    execute(store_db, "INSERT INTO archived_embedding SELECT * FROM langchain_pg_embedding ORDER BY id LIMIT 5")
    archived = rows_as_text(store_db, "archived_embedding")
    before = rows_as_text(store_db, "langchain_pg_embedding")  # 305 rows: the parent's 300 and the child's 5
    assert sum(before.values()) == 305
    files = folder_snapshot(backup_root)

    with pytest.raises(GuardedTruncateError, match="step 'backup'") as raised:
        run_guarded_truncate(TruncateRequest(dsn=store_db, root=backup_root))

    assert "langchain_pg_embedding has child tables (archived_embedding)" in str(raised.value)
    assert rows_as_text(store_db, "langchain_pg_embedding") == before
    assert rows_as_text(store_db, "archived_embedding") == archived
    assert scan_root(backup_root) == [] and folder_snapshot(backup_root) == files
