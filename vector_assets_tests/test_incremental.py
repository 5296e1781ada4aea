"""Incremental backups and their chains, against a real PostgreSQL with pgvector: a full set,
then increments built while the tables change, each restoring to exactly the rows of its
snapshot; sizes proportional to the change; the fallback to a full set; broken chains refused."""

from __future__ import annotations

import os
import re
import threading
import uuid

import pytest

from vector_assets.core.errors import BrokenChainError
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.drill import DrillRequest, run_drill
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets.core.sets.copies import choose_copy
from vector_assets.core.sets.manifest import FULL, INCREMENTAL
from vector_assets.core.stores import Store, StoreTable, TableRole
from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE
from vector_assets_tests.support.database import STORE_TABLES
from vector_assets_tests.support.database import execute, fill_store, rows_as_text
from vector_assets_tests.support.files import folder_snapshot

EMBEDDING_CHANGES = [
    # inserts: copies of existing rows under new ids, one with a tab and a backslash in its key
    "INSERT INTO langchain_pg_embedding (id, collection_id, embedding, document, cmetadata) "
    "SELECT id || '-copy{step}', collection_id, embedding, document, cmetadata FROM langchain_pg_embedding "
    "WHERE id NOT LIKE '%-copy%' ORDER BY id LIMIT 7",
    "INSERT INTO langchain_pg_embedding (id, collection_id, embedding, document) "
    "SELECT E'odd\\tkey\\\\{step}', collection_id, embedding, 'odd' FROM langchain_pg_embedding LIMIT 1",
    # updates of the document, the metadata and the embedding alone
    "UPDATE langchain_pg_embedding SET document = document || ' v{step}' "
    "WHERE id IN (SELECT id FROM langchain_pg_embedding ORDER BY md5(id || '{step}a') LIMIT 5)",
    "UPDATE langchain_pg_embedding SET cmetadata = jsonb_build_object('step', {step}) "
    "WHERE id IN (SELECT id FROM langchain_pg_embedding ORDER BY md5(id || '{step}b') LIMIT 5)",
    "UPDATE langchain_pg_embedding SET embedding = (SELECT embedding FROM langchain_pg_embedding ORDER BY id LIMIT 1) "
    "WHERE id IN (SELECT id FROM langchain_pg_embedding ORDER BY md5(id || '{step}c') OFFSET 1 LIMIT 4)",
    # deletes
    "DELETE FROM langchain_pg_embedding WHERE id IN (SELECT id FROM langchain_pg_embedding ORDER BY md5(id || '{step}d') LIMIT 6)",
]


def change_store(dsn: str, step: int) -> None:
    for statement in EMBEDDING_CHANGES:
        execute(dsn, statement.format(step=step))
    if step == 2:  # a new collection with embeddings, and a collection's metadata changed
        new = str(uuid.uuid4())
        execute(dsn, "INSERT INTO langchain_pg_collection (uuid, name, cmetadata) VALUES (%s, 'added', '{\"a\": 1}')", (new,))
        execute(dsn, "INSERT INTO langchain_pg_embedding (id, collection_id, document) VALUES ('in-added', %s, 'x')", (new,))
        execute(dsn, "UPDATE langchain_pg_collection SET cmetadata = '{\"changed\": true}' WHERE name <> 'added'")
    if step == 4:  # that collection deleted again (its embeddings go with it)
        execute(dsn, "DELETE FROM langchain_pg_collection WHERE name = 'added'")


def tables_now(dsn: str) -> dict:
    return {table: rows_as_text(dsn, table) for table in STORE_TABLES}


@pytest.fixture
def chain(store_db: str, tmp_path):
    """A full set and five increments, each with the tables as they were at its snapshot."""
    root = tmp_path / "root"
    sets = []
    request = BackupRequest(dsn=store_db, root=root, format="pgcopy.zst", row_index=True)
    sets.append((run_backup(request), tables_now(store_db)))
    for step in range(1, 6):
        change_store(store_db, step)
        result = run_backup(BackupRequest(dsn=store_db, root=root, format="pgcopy.zst", kind=INCREMENTAL,
                                          timestamp=f"2099010{step}_000000"))
        sets.append((result, tables_now(store_db)))
    return root, sets


def test_each_increment_names_its_parent_and_holds_only_the_change(chain):
    _, sets = chain
    assert sets[0][0].manifest.kind == FULL
    for (parent, _), (child, expected) in zip(sets, sets[1:]):
        manifest = child.manifest
        assert manifest.kind == INCREMENTAL and manifest.parent == parent.timestamp and manifest.format_version == 3
        embeddings = manifest.tables[EMBEDDING_TABLE]
        assert embeddings.rows_after == sum(expected[EMBEDDING_TABLE].values())
        assert 0 < embeddings.rows < embeddings.rows_after // 4
        assert embeddings.deleted_keys.rows >= 6


def test_restoring_each_increment_gives_the_tables_at_its_snapshot(chain, second_db):
    root, sets = chain
    for result, expected in sets[1:]:
        restored = run_restore(RestoreRequest(target_dsn=second_db, root=root, timestamp=result.timestamp,
                                              truncate_before_restore=True, safety_backup=False))
        assert tables_now(second_db) == expected, result.timestamp
        by_table = {table.table: table for table in restored.tables}
        assert by_table[EMBEDDING_TABLE].rows_loaded == sum(expected[EMBEDDING_TABLE].values())


def test_an_increment_restores_into_an_empty_database_and_by_appending(chain, second_db, maintenance_dsn):
    root, sets = chain
    result, expected = sets[3]
    run_restore(RestoreRequest(target_dsn=second_db, root=root, timestamp=result.timestamp))  # creates the tables
    assert tables_now(second_db) == expected
    execute(second_db, "TRUNCATE langchain_pg_collection, langchain_pg_embedding")
    appended = run_restore(RestoreRequest(target_dsn=second_db, root=root, timestamp=result.timestamp))
    assert tables_now(second_db) == expected
    assert appended.tables[1].rows_loaded == sum(expected[EMBEDDING_TABLE].values())


def test_a_restore_over_the_live_tables_keeps_what_it_replaced(chain, store_db):
    root, sets = chain
    before = tables_now(store_db)
    result, expected = sets[2]
    restored = run_restore(RestoreRequest(target_dsn=store_db, root=root, timestamp=result.timestamp,
                                          truncate_before_restore=True))
    assert tables_now(store_db) == expected
    run_restore(RestoreRequest(target_dsn=store_db, root=root, timestamp=restored.safety_set.timestamp,
                               truncate_before_restore=True, safety_backup=False))
    assert tables_now(store_db) == before


def test_a_broken_chain_is_refused_before_anything_changes(chain, second_db):
    root, sets = chain
    folder = root / "vector_bak"
    missing = sets[2][0].timestamp
    (folder / f"vector_backup_{missing}.json").rename(folder / "elsewhere.json")
    run_restore(RestoreRequest(target_dsn=second_db, root=root, timestamp=sets[1][0].timestamp))
    before, files = tables_now(second_db), folder_snapshot(root)
    with pytest.raises(BrokenChainError, match=f"parent set {missing}, which is missing"):
        run_restore(RestoreRequest(target_dsn=second_db, root=root, timestamp=sets[4][0].timestamp,
                                   truncate_before_restore=True))
    assert tables_now(second_db) == before and folder_snapshot(root) == files


def test_a_damaged_increment_file_rolls_the_restore_back(chain, second_db):
    root, sets = chain
    damaged = root / "vector_bak" / sets[3][0].manifest.tables[EMBEDDING_TABLE].deleted_keys.file
    damaged.write_bytes(damaged.read_bytes()[:-3] + b"xyz")
    run_restore(RestoreRequest(target_dsn=second_db, root=root, timestamp=sets[0][0].timestamp))
    before = tables_now(second_db)
    with pytest.raises(Exception, match="deleted.zst"):
        run_restore(RestoreRequest(target_dsn=second_db, root=root, timestamp=sets[5][0].timestamp,
                                   truncate_before_restore=True, safety_backup=False))
    assert tables_now(second_db) == before


def test_an_increment_of_a_one_percent_change_is_under_five_percent_of_the_full_set(empty_db, tmp_path):
    fill_store(empty_db, embeddings=20_000, dims=64)
    full = run_backup(BackupRequest(dsn=empty_db, root=tmp_path, format="csv", row_index=True))
    execute(empty_db, "UPDATE langchain_pg_embedding SET document = document || '!' "
                      "WHERE id IN (SELECT id FROM langchain_pg_embedding ORDER BY md5(id) LIMIT 200)")
    increment = run_backup(BackupRequest(dsn=empty_db, root=tmp_path, format="csv", kind=INCREMENTAL))
    data_bytes = lambda result: sum(entry.bytes for entry in result.manifest.tables.values())  # noqa: E731
    assert increment.manifest.tables[EMBEDDING_TABLE].rows == 200
    assert data_bytes(increment) < 0.05 * data_bytes(full)


def test_the_seed_tooling_cannot_take_a_csv_increment_for_a_whole_table(store_db, tmp_path):
    """The seed tooling loads ``<table>_<ts>.csv``; an increment's changed rows must never be named so."""
    full = run_backup(BackupRequest(dsn=store_db, root=tmp_path, format="csv", row_index=True))
    change_store(store_db, 1)
    increment = run_backup(BackupRequest(dsn=store_db, root=tmp_path, format="csv", kind=INCREMENTAL))
    folder = tmp_path / "vector_bak"
    seed_pattern = re.compile(r"(langchain_pg_collection|langchain_pg_embedding)_(\d{8}_\d{6})\.csv")
    seed_sets = {m.group(2) for name in os.listdir(folder) if (m := seed_pattern.fullmatch(name))}

    assert seed_sets == {full.timestamp}
    assert sorted(entry.file for entry in increment.manifest.tables.values()) == [
        f"{table}_{increment.timestamp}.changes.csv" for table in STORE_TABLES
    ]
    log = (folder / "vector_backup_log.txt").read_text(encoding="utf-8")
    block = log[log.rindex("=== Vector Table Backup Log ==="):]
    assert f"Kind: incremental, the changes since set {full.timestamp}" in block
    embeddings = increment.manifest.tables[EMBEDDING_TABLE]
    assert (f"✓ langchain_pg_embedding: {embeddings.rows:,} changed rows, {embeddings.deleted_keys.rows:,} deleted keys, "
            f"{embeddings.rows_after:,} rows after -> langchain_pg_embedding_{increment.timestamp}.changes.csv") in block
    assert embeddings.deleted_keys.rows > 0
    assert "Kind:" not in log[:log.rindex("=== Vector Table Backup Log ===")]


def test_without_a_usable_parent_an_incremental_backup_is_a_full_one_and_says_why(store_db, tmp_path):
    first = run_backup(BackupRequest(dsn=store_db, root=tmp_path, kind=INCREMENTAL))
    assert first.manifest.kind == FULL and "no earlier set" in first.manifest.fallback
    index = tmp_path / "vector_bak" / first.manifest.tables[EMBEDDING_TABLE].rows_index.file
    index.unlink()
    second = run_backup(BackupRequest(dsn=store_db, root=tmp_path, kind=INCREMENTAL, timestamp="20990101_000000"))
    assert second.manifest.kind == FULL
    assert f"row index {index.name} is missing" in second.manifest.fallback
    assert second.manifest.tables[EMBEDDING_TABLE].rows_index is not None  # the next one can chain on it
    third = run_backup(BackupRequest(dsn=store_db, root=tmp_path, kind=INCREMENTAL, timestamp="20990102_000000"))
    assert third.manifest.kind == INCREMENTAL and third.manifest.parent == "20990101_000000"
    blocks = (tmp_path / "vector_bak" / "vector_backup_log.txt").read_text(encoding="utf-8").split("=== Vector")[1:]
    assert [line for block in blocks for line in block.splitlines() if line.startswith("Kind:")] == [
        f"Kind: full ({first.manifest.fallback})", f"Kind: full ({second.manifest.fallback})",
        "Kind: incremental, the changes since set 20990101_000000; restore it with vector-assets, "
        "which applies the whole chain",
    ]


def test_a_full_backup_keeps_a_row_index_once_the_location_uses_increments(store_db, tmp_path):
    plain = run_backup(BackupRequest(dsn=store_db, root=tmp_path))
    assert plain.manifest.tables[EMBEDDING_TABLE].rows_index is None  # nobody pays for it unasked
    run_backup(BackupRequest(dsn=store_db, root=tmp_path, kind=INCREMENTAL, timestamp="20990101_000000"))
    daily = run_backup(BackupRequest(dsn=store_db, root=tmp_path, timestamp="20990102_000000"))
    assert daily.manifest.tables[EMBEDDING_TABLE].rows_index is not None


def test_a_writer_during_an_incremental_backup_loses_nothing(store_db, tmp_path, second_db):
    run_backup(BackupRequest(dsn=store_db, root=tmp_path, row_index=True))
    stop = threading.Event()
    written = []

    def writer() -> None:
        step = 0
        while not stop.is_set():
            step += 1
            execute(store_db, "INSERT INTO langchain_pg_embedding (id, collection_id, document) "
                              "SELECT %s, collection_id, 'w' FROM langchain_pg_embedding LIMIT 1", (f"writer-{step}",))
            written.append(f"writer-{step}")

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        increments = [run_backup(BackupRequest(dsn=store_db, root=tmp_path, kind=INCREMENTAL,
                                               timestamp=f"2099010{n}_000000")) for n in range(1, 4)]
    finally:
        stop.set()
        thread.join()
    final = run_backup(BackupRequest(dsn=store_db, root=tmp_path, kind=INCREMENTAL, timestamp="20990109_000000"))
    assert all(increment.manifest.kind == INCREMENTAL for increment in increments + [final])
    run_restore(RestoreRequest(target_dsn=second_db, root=tmp_path, timestamp=final.timestamp))
    assert tables_now(second_db) == tables_now(store_db)
    ids = {row[0] for row in execute(second_db, "SELECT id FROM langchain_pg_embedding")}
    assert written and set(written) <= ids


def test_an_increment_of_the_older_layout_restores_exactly(empty_db, tmp_path, second_db):
    fill_store(empty_db, layout="community")
    run_backup(BackupRequest(dsn=empty_db, root=tmp_path, format="csv.zst", row_index=True))
    execute(empty_db, "UPDATE langchain_pg_embedding SET document = 'x' WHERE custom_id IN "
                      "(SELECT custom_id FROM langchain_pg_embedding ORDER BY custom_id LIMIT 3)")
    execute(empty_db, "DELETE FROM langchain_pg_embedding WHERE uuid IN (SELECT uuid FROM langchain_pg_embedding LIMIT 2)")
    increment = run_backup(BackupRequest(dsn=empty_db, root=tmp_path, format="csv.zst", kind=INCREMENTAL,
                                         timestamp="20990101_000000"))
    assert increment.manifest.tables[EMBEDDING_TABLE].rows_index.key == ("uuid",)
    assert increment.manifest.tables[COLLECTION_TABLE].rows == 0
    run_restore(RestoreRequest(target_dsn=second_db, root=tmp_path, timestamp=increment.timestamp))
    assert tables_now(second_db) == tables_now(empty_db)


def test_the_drill_restores_an_increments_chain_and_compares_its_content_digest(chain, store_db):
    root, sets = chain
    drilled = run_drill(DrillRequest(dsn=store_db, root=root, key=sets[4][0].timestamp))
    assert drilled.passed
    assert all(table.by == "content digest" and "restored from the chain" in table.message for table in drilled.tables)
    assert drilled.tables[1].rows_restored == sum(sets[4][1][EMBEDDING_TABLE].values())


def test_the_drill_of_a_broken_chain_fails_naming_the_missing_set(chain, store_db):
    root, sets = chain
    missing = sets[1][0].timestamp
    (root / "vector_bak" / f"vector_backup_{missing}.json").unlink()
    with pytest.raises(BrokenChainError, match=missing):
        run_drill(DrillRequest(dsn=store_db, root=root, key=sets[3][0].timestamp))


def test_a_restores_safety_set_does_not_stop_the_next_full_backup_keeping_a_row_index(store_db, tmp_path):
    run_backup(BackupRequest(dsn=store_db, root=tmp_path, kind=INCREMENTAL))
    restored = run_restore(RestoreRequest(target_dsn=store_db, root=tmp_path, timestamp=
                                          run_backup(BackupRequest(dsn=store_db, root=tmp_path, timestamp="20990101_000000")).timestamp,
                                          truncate_before_restore=True))
    assert restored.safety_set.manifest.kind == "pre_restore"
    assert restored.safety_set.manifest.tables[EMBEDDING_TABLE].rows_index is None
    daily = run_backup(BackupRequest(dsn=store_db, root=tmp_path, timestamp="20990201_000000"))
    assert daily.manifest.tables[EMBEDDING_TABLE].rows_index is not None


def test_a_chain_on_either_root_restores_exactly_and_its_parent_index_is_read_from_there(any_root, store_db, second_db):
    full = run_backup(BackupRequest(dsn=store_db, root=any_root.url, format="csv.zst", row_index=True))
    change_store(store_db, 1)
    increment = run_backup(BackupRequest(dsn=store_db, root=any_root.url, format="csv.zst", kind=INCREMENTAL,
                                         timestamp="20990101_000000"))
    assert increment.manifest.kind == INCREMENTAL and increment.manifest.parent == full.timestamp
    names = any_root.names("vector_bak")
    assert {f"{table}_20990101_000000.{suffix}" for table in STORE_TABLES for suffix in ("index.zst", "deleted.zst")} <= names
    run_restore(RestoreRequest(target_dsn=second_db, root=any_root.url, timestamp=increment.timestamp))
    assert tables_now(second_db) == tables_now(store_db)


def test_an_increment_after_a_restore_builds_on_the_last_backup_not_on_the_restores_safety_set(store_db, tmp_path):
    full = run_backup(BackupRequest(dsn=store_db, root=tmp_path, format="pgcopy", row_index=True))
    change_store(store_db, 1)
    first = run_backup(BackupRequest(dsn=store_db, root=tmp_path, kind=INCREMENTAL))
    restored = run_restore(RestoreRequest(target_dsn=store_db, root=tmp_path, timestamp=full.timestamp,
                                          truncate_before_restore=True))
    assert restored.safety_set.manifest.kind == "pre_restore" and restored.safety_set.timestamp > first.timestamp
    change_store(store_db, 2)
    after = run_backup(BackupRequest(dsn=store_db, root=tmp_path, kind=INCREMENTAL))
    assert after.manifest.kind == INCREMENTAL and after.manifest.parent == first.timestamp
    expected = tables_now(store_db)
    run_restore(RestoreRequest(target_dsn=store_db, root=tmp_path, timestamp=after.timestamp,
                               truncate_before_restore=True, safety_backup=False))
    assert tables_now(store_db) == expected


def test_latest_is_the_newest_backup_never_a_restores_safety_set(store_db, tmp_path):
    backup = run_backup(BackupRequest(dsn=store_db, root=tmp_path))
    restored = run_restore(RestoreRequest(target_dsn=store_db, root=tmp_path, timestamp=backup.timestamp,
                                          truncate_before_restore=True))
    assert restored.safety_set is not None
    assert choose_copy(tmp_path, None, None).backup_set.timestamp == backup.timestamp
    drilled = run_drill(DrillRequest(dsn=store_db, root=tmp_path))  # the drill's default is the same newest backup
    assert drilled.backup_set.timestamp == backup.timestamp and drilled.backup_set.manifest.kind == FULL
    assert drilled.passed


def test_a_table_keyed_by_a_generated_always_identity_takes_its_increments_and_appends_with_the_sets_keys(
    empty_db, tmp_path
):
    """The set's keys go back as they were, as COPY puts them back; a plain INSERT would be refused."""
    execute(empty_db, "CREATE TABLE documents (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text, "
                      "embedding vector(3))")
    execute(empty_db, "INSERT INTO documents (body, embedding) SELECT 'body ' || g, ARRAY[g, 1, 1]::vector "
                      "FROM generate_series(1, 40) g")
    store = Store("documents", "tables", (StoreTable("documents", TableRole.VECTORS),))
    root = tmp_path / "root"
    full = run_backup(BackupRequest(dsn=empty_db, root=root, store=store, row_index=True))
    execute(empty_db, "UPDATE documents SET body = 'changed' WHERE id <= 5")
    execute(empty_db, "INSERT INTO documents (body) VALUES ('new')")
    expected = rows_as_text(empty_db, "documents")
    increment = run_backup(BackupRequest(dsn=empty_db, root=root, store=store, kind=INCREMENTAL))
    assert increment.manifest.kind == INCREMENTAL
    execute(empty_db, "DELETE FROM documents WHERE id <= 10")
    run_restore(RestoreRequest(target_dsn=empty_db, root=root, timestamp=increment.timestamp, store=store,
                               truncate_before_restore=True))
    assert rows_as_text(empty_db, "documents") == expected
    execute(empty_db, "DELETE FROM documents WHERE id > 30")
    appended = run_restore(RestoreRequest(target_dsn=empty_db, root=root, timestamp=full.timestamp, store=store,
                                          on_conflict="skip"))
    assert appended.tables[0].rows_loaded == 10 and appended.tables[0].rows_skipped == 30
