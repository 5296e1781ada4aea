"""Increments of a table whose primary key has several columns (pgai's embedding store, a
chunks table keyed by document and position): the row index keys rows by every key column, in
the order the server sorts their text, escaping and all; an increment holds exactly the rows
changed and the keys deleted, and its chain restores to exactly the live rows; a diff matches
rows by the whole key."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import psycopg2
import pytest
import zstandard
from psycopg2 import sql

from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.diff import ROW_INDEX, STAGED_ROWS, DiffRequest, run_diff
from vector_assets.core.ops.drill import DrillRequest, run_drill
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets.core.pg.catalog import column_names, read_columns
from vector_assets.core.pg.row_changes import copy_rows_with_keys, create_key_stage, delete_keys
from vector_assets.core.pg.row_digests import RowKey, row_key
from vector_assets.core.sets.manifest import COMPOSITE_KEY_VERSION, FULL, INCREMENTAL
from vector_assets.core.stores import Store, StoreTable, TableRole
from vector_assets_tests.support.database import execute, fresh_database, rows_as_text

TABLE = "chunks"
STORE = Store("docs", "tables", (StoreTable(TABLE, TableRole.VECTORS),), dsn_variable="DOCS_PG_DSN")
KEY = ("doc_id", "chunk_seq")
# Keys whose order the comparison must get exactly as the server does: 'k<TAB>b' sorts before
# 'k\x' by its bytes (a tab is 0x09), though escaped ('k\tb', 'k\\x') it would sort after; and
# ('a', 5) before ('a<0x01>', 1) field by field, though the joined text 'a<TAB>5' sorts after 'a<0x01><TAB>1'.
AWKWARD_KEYS = [("k\tb", 1), ("k\\x", 1), ("a", 5), ("a\x01", 1), ("a\tb", 1), ("10", 2), ("9", 10)]
ODD_KEY = ("odd\tkey\\1", 7)  # a tab and a backslash: escaped in every file as odd\tkey\\1
CHUNKS = """
CREATE TABLE chunks (
  doc_id TEXT NOT NULL, chunk_seq INT NOT NULL, content TEXT, embedding vector(8) NOT NULL,
  PRIMARY KEY (doc_id, chunk_seq));
INSERT INTO chunks SELECT 'doc-' || d, s, 'chunk ' || d || '.' || s,
  ('[' || array_to_string(ARRAY(SELECT sin(d * s + k) FROM generate_series(1, 8) k), ',') || ']')::vector
  FROM generate_series(1, 30) d, generate_series(1, 12) s;
"""


def insert(dsn: str, key: tuple[str, int], content: str = "inserted") -> None:
    execute(dsn, "INSERT INTO chunks VALUES (%s, %s, %s, '[1,2,3,4,5,6,7,8]')", (*key, content))


@pytest.fixture
def chunks_db(maintenance_dsn):
    with fresh_database(maintenance_dsn) as dsn:
        execute(dsn, CHUNKS)
        for key in AWKWARD_KEYS:
            insert(dsn, key, "awkward")
        yield dsn


def key_of(dsn: str) -> RowKey | None:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cursor:
            return row_key(cursor, TABLE)
    finally:
        conn.close()


def nudge_one_float(dsn: str, key: tuple[str, int]) -> None:
    """One component of one vector a little different: the only change to the row."""
    (text,), = execute(dsn, "SELECT embedding::text FROM chunks WHERE doc_id = %s AND chunk_seq = %s", key)
    values = text.strip("[]").split(",")
    values[3] = repr(float(values[3]) + 0.25)
    execute(dsn, "UPDATE chunks SET embedding = %s::vector WHERE doc_id = %s AND chunk_seq = %s",
            ("[" + ",".join(values) + "]", *key))


def changed_keys(root: Path, entry) -> set[tuple[str, int]]:
    """The keys of the rows an increment's CSV files hold."""
    keys = set()
    for piece in entry.pieces:
        with open(root / "vector_bak" / piece.file, newline="", encoding="utf-8") as handle:
            keys |= {(row["doc_id"], int(row["chunk_seq"])) for row in csv.DictReader(handle)}
    return keys


def deleted_lines(root: Path, entry) -> list[bytes]:
    compressed = (root / "vector_bak" / entry.deleted_keys.file).read_bytes()
    return zstandard.ZstdDecompressor().decompressobj().decompress(compressed).splitlines()


def backup(dsn: str, root: Path, fmt: str, kind: str = INCREMENTAL, timestamp: str | None = None):
    return run_backup(BackupRequest(dsn=dsn, root=root, format=fmt, kind=kind, store=STORE, timestamp=timestamp,
                                    row_index=True if kind == FULL else None))


@pytest.mark.parametrize("fmt", ["csv", "pgcopy"])
def test_an_increment_of_a_composite_key_holds_the_change_and_its_chain_restores_the_live_rows(
    chunks_db, maintenance_dsn, tmp_path, fmt
):
    full = backup(chunks_db, tmp_path, fmt, FULL, "20990101_000000")
    assert full.manifest.tables[TABLE].rows_index.key == KEY

    insert(chunks_db, ("doc-new", 1))
    insert(chunks_db, ("doc-new", 2))
    insert(chunks_db, ODD_KEY)
    execute(chunks_db, "DELETE FROM chunks WHERE doc_id = 'doc-3' AND chunk_seq IN (1, 12)")
    nudge_one_float(chunks_db, ("doc-5", 2))
    first = backup(chunks_db, tmp_path, fmt, timestamp="20990101_010000")
    after_first = rows_as_text(chunks_db, TABLE)

    manifest = first.manifest
    assert (manifest.kind, manifest.parent, manifest.fallback) == (INCREMENTAL, full.timestamp, None)
    assert manifest.format_version == COMPOSITE_KEY_VERSION
    entry = manifest.tables[TABLE]
    assert entry.rows_index.key == KEY and entry.rows_after == sum(after_first.values())
    assert entry.rows == 4  # three inserted, one updated: not a row more
    if fmt == "csv":
        assert changed_keys(tmp_path, entry) == {("doc-new", 1), ("doc-new", 2), ODD_KEY, ("doc-5", 2)}
    assert deleted_lines(tmp_path, entry) == [b"doc-3\t1", b"doc-3\t12"]  # sorted by the key's text: '1' < '12'
    stored = json.loads((tmp_path / "vector_bak" / f"vector_backup_{first.timestamp}.json").read_text())
    assert stored["tables"][TABLE]["rows_index"]["key"] == list(KEY)

    execute(chunks_db, "DELETE FROM chunks WHERE doc_id = %s AND chunk_seq = %s", ODD_KEY)
    execute(chunks_db, "UPDATE chunks SET content = 'edited' WHERE doc_id = %s AND chunk_seq = %s", AWKWARD_KEYS[0])
    insert(chunks_db, ("doc-3", 1), "back again")
    second = backup(chunks_db, tmp_path, fmt, timestamp="20990101_020000")
    after_second = rows_as_text(chunks_db, TABLE)

    entry = second.manifest.tables[TABLE]
    assert (second.manifest.kind, second.manifest.parent) == (INCREMENTAL, first.timestamp)
    assert entry.rows == 2
    if fmt == "csv":
        assert changed_keys(tmp_path, entry) == {AWKWARD_KEYS[0], ("doc-3", 1)}
    assert deleted_lines(tmp_path, entry) == [b"odd\\tkey\\\\1\t7"]

    execute(chunks_db, "UPDATE chunks SET content = 'wrong'; DELETE FROM chunks WHERE chunk_seq > 6")
    run_restore(RestoreRequest(target_dsn=chunks_db, root=tmp_path, timestamp=second.timestamp, store=STORE,
                               truncate_before_restore=True, safety_backup=False))
    assert rows_as_text(chunks_db, TABLE) == after_second

    with fresh_database(maintenance_dsn) as empty:
        run_restore(RestoreRequest(target_dsn=empty, root=tmp_path, timestamp=first.timestamp, store=STORE))
        assert rows_as_text(empty, TABLE) == after_first
        assert key_of(empty) == RowKey(KEY, ("text", "integer"))
    with fresh_database(maintenance_dsn) as empty:
        run_restore(RestoreRequest(target_dsn=empty, root=tmp_path, timestamp=second.timestamp, store=STORE))
        assert rows_as_text(empty, TABLE) == after_second


def test_keys_next_to_awkward_ones_compare_as_the_server_sorted_them(chunks_db, tmp_path):
    """The merge compares keys only where the two streams differ: a deleted row right before an
    awkward key. Ordered otherwise than the server did, the key after it would come out as
    added and deleted again."""
    backup(chunks_db, tmp_path, "csv", FULL, "20990101_000000")
    execute(chunks_db, "DELETE FROM chunks WHERE (doc_id, chunk_seq) IN (('a', 5), (E'k\\tb', 1))")
    increment = backup(chunks_db, tmp_path, "csv", timestamp="20990101_010000")
    entry = increment.manifest.tables[TABLE]
    assert increment.manifest.kind == INCREMENTAL
    assert (entry.rows, entry.rows_after) == (0, 30 * 12 + len(AWKWARD_KEYS) - 2)
    assert deleted_lines(tmp_path, entry) == [b"a\t5", b"k\\tb\t1"]


def test_an_increment_of_a_composite_key_appends_through_a_stage_and_drills(chunks_db, tmp_path):
    backup(chunks_db, tmp_path, "pgcopy", FULL, "20990101_000000")
    execute(chunks_db, "DELETE FROM chunks WHERE doc_id = 'doc-9'")
    insert(chunks_db, ODD_KEY)
    nudge_one_float(chunks_db, ("doc-10", 4))
    increment = backup(chunks_db, tmp_path, "pgcopy", timestamp="20990101_010000")
    expected = rows_as_text(chunks_db, TABLE)
    assert increment.manifest.kind == INCREMENTAL

    drill = run_drill(DrillRequest(dsn=chunks_db, root=tmp_path, store=STORE))
    assert drill.passed, drill
    assert {table.table: table.rows_restored for table in drill.tables} == {TABLE: sum(expected.values())}

    execute(chunks_db, "TRUNCATE chunks")
    appended = run_restore(RestoreRequest(target_dsn=chunks_db, root=tmp_path, timestamp=increment.timestamp, store=STORE))
    assert rows_as_text(chunks_db, TABLE) == expected
    assert appended.tables[0].rows_loaded == sum(expected.values())


def test_a_changed_primary_key_makes_the_backup_a_full_one_and_says_why(chunks_db, tmp_path):
    full = backup(chunks_db, tmp_path, "csv", FULL, "20990101_000000")
    execute(chunks_db, "ALTER TABLE chunks DROP CONSTRAINT chunks_pkey, ADD PRIMARY KEY (chunk_seq, doc_id)")
    fallen_back = backup(chunks_db, tmp_path, "csv", timestamp="20990101_010000")
    assert fallen_back.manifest.kind == FULL
    assert fallen_back.manifest.fallback.endswith(f"because table {TABLE}'s primary key is not the parent's (doc_id, chunk_seq)")
    assert fallen_back.manifest.tables[TABLE].rows_index.key == ("chunk_seq", "doc_id")
    assert full.manifest.format_version == fallen_back.manifest.format_version != COMPOSITE_KEY_VERSION


def scans_of(cursor, table: str) -> tuple[int, int]:
    """(sequential scans, index scans) of the table in this transaction so far."""
    cursor.execute("SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables WHERE relname = %s", (table,))
    return cursor.fetchone()


def test_rows_by_key_and_deleted_keys_go_through_the_primary_keys_index(chunks_db):
    execute(chunks_db, "INSERT INTO chunks SELECT 'more-' || g, 1, 'x', '[1,1,1,1,1,1,1,1]' "
                       "FROM generate_series(1, 20000) g; ANALYZE chunks")
    keys = [("doc-7", "3"), ("more-19", "1"), ("k\tb", "1")]
    conn = psycopg2.connect(chunks_db)
    try:
        with conn.cursor() as cursor:
            key = row_key(cursor, TABLE)
            before = scans_of(cursor, TABLE)
            exported = io.BytesIO()
            rows = copy_rows_with_keys(cursor, TABLE, column_names(read_columns(cursor, TABLE)), key, keys,
                                       exported, "FORMAT text")
            after_export = scans_of(cursor, TABLE)
            assert rows == 3 and exported.getvalue().count(b"\n") == 3
            assert after_export[0] == before[0] and after_export[1] > before[1]

            stage = create_key_stage(cursor, "deleted_keys", key)
            cursor.execute(sql.SQL("INSERT INTO {} VALUES ('doc-7', 3), ('more-19', 1), ('no such', 1)").format(stage))
            cursor.execute(sql.SQL("ANALYZE {}").format(stage))
            assert delete_keys(cursor, sql.Identifier(TABLE), stage, key) == 2
            after_delete = scans_of(cursor, TABLE)
            assert after_delete[0] == before[0] and after_delete[1] > after_export[1]
        conn.rollback()
    finally:
        conn.close()


def change_the_chunks(dsn: str) -> dict[str, list[str]]:
    """Rows inserted, deleted and changed (one float of a vector, a document) next to awkward
    keys; returns the keys of each kind as the diff shows them, in the server's key order."""
    insert(dsn, ODD_KEY)
    execute(dsn, "DELETE FROM chunks WHERE (doc_id, chunk_seq) IN (('doc-3', 4), (E'k\\tb', 1))")
    nudge_one_float(dsn, ("a\x01", 1))
    execute(dsn, "UPDATE chunks SET content = content || '.' WHERE doc_id = 'doc-10' AND chunk_seq = 2")
    return {"only_ours": ["(doc-3, 4)", "(k\tb, 1)"], "only_theirs": ["(odd\tkey\\1, 7)"],
            "changed": ["(a\x01, 1)", "(doc-10, 2)"]}


@pytest.mark.parametrize("row_index", [False, True])
def test_a_diff_of_a_composite_key_finds_the_rows_inserted_deleted_and_changed(chunks_db, tmp_path, row_index):
    """Against the live table, the set read from its staged rows or through its row index (keyed
    by both columns): rows matched by the whole key, sampled keys in the server's order."""
    taken = run_backup(BackupRequest(dsn=chunks_db, root=tmp_path, format="pgcopy", kind=FULL, store=STORE,
                                     row_index=row_index))
    assert (taken.manifest.tables[TABLE].rows_index is not None) == row_index
    assert run_diff(DiffRequest(dsn=chunks_db, root=tmp_path, key=taken.timestamp, store=STORE)).identical
    expected = change_the_chunks(chunks_db)
    result = run_diff(DiffRequest(dsn=chunks_db, root=tmp_path, key=taken.timestamp, store=STORE))
    (table,) = result.tables
    assert (table.key, table.skipped, table.set_read_from) == ("doc_id, chunk_seq", None, ROW_INDEX if row_index else STAGED_ROWS)
    assert (table.differences.only_in_set, table.differences.only_in_other, table.differences.changed) == (2, 1, 2)
    assert table.differences.samples == expected
    assert (table.rows_in_set, table.rows_in_other) == (30 * 12 + len(AWKWARD_KEYS), 30 * 12 + len(AWKWARD_KEYS) - 1)


def test_two_sets_of_a_composite_key_differ_as_the_table_did_between_them(chunks_db, tmp_path):
    before = backup(chunks_db, tmp_path, "csv", FULL, "20990101_000000")
    expected = change_the_chunks(chunks_db)
    after = backup(chunks_db, tmp_path, "csv", timestamp="20990101_010000")
    assert after.manifest.kind == INCREMENTAL
    (table,) = run_diff(DiffRequest(dsn=chunks_db, root=tmp_path, key=before.timestamp, against=after.timestamp,
                                    store=STORE)).tables
    assert table.differences.samples == expected and table.differences.total == 5
