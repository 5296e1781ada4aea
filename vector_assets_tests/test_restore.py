"""Transactional restore: replace or append, dry run, index rebuild, and every bad input."""

import csv
import io

import psycopg2
import pytest

from vector_assets.core.errors import (
    BackupFileError,
    BackupSetNotFoundError,
    ColumnMismatchError,
    DatabaseUnreachableError,
    IncompleteBackupSetError,
    InvalidTimestampError,
    PathOutsideRootError,
    RestoreConflictError,
    RestoreLoadError,
    UnknownTableError,
    VectorAssetsError,
)
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets.core.sets.catalog import SetCatalog
from vector_assets.core.sets.naming import csv_file_name
from vector_assets_tests.support.database import STORE_TABLES
from vector_assets.dev.demo import create_tables
from vector_assets_tests.support.database import (
    execute,
    fill_store,
    rows_as_text,
    tables_now,
)
from vector_assets_tests.support.files import folder_snapshot

TS = "20250721_213627"


@pytest.fixture
def backed_up(store_db, backup_root):
    """A store with one set, then changed afterwards: 10 rows deleted, one row edited."""
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS))
    snapshot = {table: rows_as_text(store_db, table) for table in STORE_TABLES}
    execute(store_db, "DELETE FROM langchain_pg_embedding WHERE id IN (SELECT id FROM langchain_pg_embedding ORDER BY id LIMIT 10)")
    execute(store_db, "UPDATE langchain_pg_embedding SET document = 'changed' WHERE id = (SELECT min(id) FROM langchain_pg_embedding)")
    return store_db, snapshot


def test_replace_restore_brings_back_exactly_the_set(backed_up, backup_root):
    dsn, snapshot = backed_up
    result = run_restore(RestoreRequest(target_dsn=dsn, root=backup_root, timestamp=TS, truncate_before_restore=True))
    assert tables_now(dsn) == snapshot
    embedding = next(t for t in result.tables if t.table == "langchain_pg_embedding")
    assert embedding.rows_loaded == sum(snapshot["langchain_pg_embedding"].values())
    assert embedding.rows_truncated == embedding.rows_loaded - 10


def test_restore_into_another_database_with_the_same_layout(backed_up, backup_root, second_db):
    _, snapshot = backed_up
    with psycopg2.connect(second_db) as conn, conn.cursor() as cursor:
        create_tables(cursor)
    conn.close()
    run_restore(RestoreRequest(target_dsn=second_db, root=backup_root, timestamp=TS))
    assert tables_now(second_db) == snapshot


def test_append_names_the_first_conflicting_key_and_changes_nothing(backed_up, backup_root):
    dsn, _ = backed_up
    before = tables_now(dsn)
    with pytest.raises(RestoreConflictError, match="table langchain_pg_collection: 3 rows .* first conflicting uuid"):
        run_restore(RestoreRequest(target_dsn=dsn, root=backup_root, timestamp=TS))
    assert tables_now(dsn) == before


def test_append_with_skip_fills_the_gaps_and_counts_skipped_rows(backed_up, backup_root):
    dsn, snapshot = backed_up
    result = run_restore(RestoreRequest(target_dsn=dsn, root=backup_root, timestamp=TS, on_conflict="skip"))
    embedding = next(t for t in result.tables if t.table == "langchain_pg_embedding")
    assert embedding.rows_loaded == 10
    assert embedding.rows_skipped == sum(snapshot["langchain_pg_embedding"].values()) - 10
    assert execute(dsn, "SELECT count(*) FROM langchain_pg_embedding WHERE document = 'changed'")[0][0] == 1


def test_dry_run_reports_conflicts_and_truncates_but_changes_nothing(backed_up, backup_root):
    dsn, _ = backed_up
    before, files = tables_now(dsn), folder_snapshot(backup_root)
    result = run_restore(RestoreRequest(target_dsn=dsn, root=backup_root, timestamp=TS, dry_run=True, on_conflict="skip"))
    embedding = next(t for t in result.tables if t.table == "langchain_pg_embedding")
    assert result.dry_run and embedding.conflicts == embedding.rows_in_set - 10
    assert result.safety_set is None and folder_snapshot(backup_root) == files
    replace = run_restore(RestoreRequest(target_dsn=dsn, root=backup_root, timestamp=TS, dry_run=True, truncate_before_restore=True))
    assert all(t.rows_truncated == t.rows_before for t in replace.tables)
    assert tables_now(dsn) == before


def test_restore_rolls_back_when_embedding_copy_fails(backed_up, backup_root):
    dsn, _ = backed_up
    execute(
        dsn,
        "CREATE SEQUENCE inserted_rows;"
        " CREATE FUNCTION refuse_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF nextval('inserted_rows') = 200 THEN RAISE EXCEPTION 'row refused'; END IF;"
        " RETURN NEW; END $$;"
        " CREATE TRIGGER refuse BEFORE INSERT ON langchain_pg_embedding FOR EACH ROW EXECUTE FUNCTION refuse_row();",
    )
    before = tables_now(dsn)
    with pytest.raises(RestoreLoadError, match="langchain_pg_embedding_20250721_213627.csv.*row refused"):
        run_restore(RestoreRequest(target_dsn=dsn, root=backup_root, timestamp=TS, truncate_before_restore=True,
                                   fire_triggers=True))  # by default the load leaves the table's triggers off
    assert tables_now(dsn) == before


def test_vector_and_other_secondary_indexes_are_rebuilt_but_the_primary_key_stays(backed_up, backup_root):
    dsn, snapshot = backed_up
    execute(dsn, "CREATE INDEX emb_hnsw ON langchain_pg_embedding USING hnsw (embedding vector_cosine_ops)")
    result = run_restore(RestoreRequest(target_dsn=dsn, root=backup_root, timestamp=TS, truncate_before_restore=True))
    assert result.indexes_rebuilt == ["emb_hnsw", "ix_cmetadata_gin"]
    indexes = {name for (name,) in execute(dsn, "SELECT indexname FROM pg_indexes WHERE tablename = 'langchain_pg_embedding'")}
    assert indexes == {"emb_hnsw", "ix_cmetadata_gin", "langchain_pg_embedding_pkey"}
    assert tables_now(dsn) == snapshot


def cut_in_the_middle(folder):
    path = folder / f"langchain_pg_embedding_{TS}.csv"
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b'"[', len(data) // 2) + 40])
    (folder / f"vector_backup_{TS}.json").unlink()  # a legacy set: nothing vouches for the rows


def drop_partner_file(folder):
    (folder / f"langchain_pg_embedding_{TS}.csv").unlink()


def tamper(folder):
    """Valid CSV that COPY would load happily; only the checksum can tell."""
    path = folder / f"langchain_pg_collection_{TS}.csv"
    path.write_bytes(path.read_bytes().replace(b",ddl,", b",dd1,"))


BAD_REQUESTS = [
    ("dotdot", {"backup_path": "../vector_bak"}, PathOutsideRootError, "'..'"),
    ("absolute", {"backup_path": "/etc"}, PathOutsideRootError, "absolute"),
    ("unknown table", {"tables": ("langchain_pg_embedding", "users")}, UnknownTableError, "'users'"),
    ("malformed timestamp", {"timestamp": "2025-07-21"}, InvalidTimestampError, "'2025-07-21'"),
    ("missing timestamp", {"timestamp": "20240101_000000"}, BackupSetNotFoundError, "20240101_000000"),
]


@pytest.mark.parametrize(("case", "fields", "error", "named"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_requests_fail_clearly_and_change_nothing(backed_up, backup_root, case, fields, error, named):
    dsn, _ = backed_up
    before, files = tables_now(dsn), folder_snapshot(backup_root)
    with pytest.raises(error, match=named):
        run_restore(RestoreRequest(**{"target_dsn": dsn, "root": backup_root, "timestamp": TS, **fields}))
    assert tables_now(dsn) == before and folder_snapshot(backup_root) == files


def test_symlink_out_of_the_root_is_refused(backed_up, backup_root, tmp_path):
    dsn, _ = backed_up
    (backup_root / "escape").symlink_to(tmp_path)
    with pytest.raises(PathOutsideRootError, match="outside the root"):
        run_restore(RestoreRequest(target_dsn=dsn, root=backup_root, timestamp=TS, backup_path="escape/vector_bak"))


BAD_FILES = [
    ("partner missing", drop_partner_file, IncompleteBackupSetError, "langchain_pg_embedding_20250721_213627.csv"),
    ("cut off", cut_in_the_middle, BackupFileError, "langchain_pg_embedding_20250721_213627.csv"),
    ("sha256", tamper, BackupFileError, "langchain_pg_collection_20250721_213627.csv sha256"),
]


@pytest.mark.parametrize(("case", "damage", "error", "named"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_damaged_sets_fail_clearly_and_change_nothing(backed_up, backup_root, case, damage, error, named):
    dsn, _ = backed_up
    damage(backup_root / "vector_bak")
    before, files = tables_now(dsn), folder_snapshot(backup_root)
    with pytest.raises(error, match=named):
        run_restore(RestoreRequest(target_dsn=dsn, root=backup_root, timestamp=TS, truncate_before_restore=True))
    assert tables_now(dsn) == before and folder_snapshot(backup_root) == files


def test_column_mismatch_names_table_and_column(backed_up, backup_root):
    dsn, _ = backed_up
    execute(dsn, "ALTER TABLE langchain_pg_embedding RENAME COLUMN document TO page_content")
    before = tables_now(dsn)
    with pytest.raises(ColumnMismatchError, match=r"table langchain_pg_embedding: set columns not in the target: \['document'\]"):
        run_restore(RestoreRequest(target_dsn=dsn, root=backup_root, timestamp=TS, truncate_before_restore=True))
    assert tables_now(dsn) == before


def test_unreachable_target_is_retryable(backed_up, backup_root):
    with pytest.raises(DatabaseUnreachableError) as raised:
        run_restore(RestoreRequest(target_dsn="host=127.0.0.1 port=1 dbname=x connect_timeout=2", root=backup_root, timestamp=TS))
    assert raised.value.retryable


def test_a_statement_the_server_refuses_on_an_open_connection_is_not_a_lost_connection(store_db, backup_root):
    """An index of the target's own that a row of the set breaks (a program limit: the driver's
    OperationalError, with the connection fine) fails the restore as a refusal to retry only
    once the index or the row is fixed, not as a lost connection."""
    long_document = "SELECT string_agg(md5(g::text), '') FROM generate_series(1, 250) g"
    execute(store_db, f"UPDATE langchain_pg_embedding SET document = ({long_document}) "
                      "WHERE id = (SELECT min(id) FROM langchain_pg_embedding)")
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS))
    execute(store_db, f"UPDATE langchain_pg_embedding SET document = 'short' WHERE document = ({long_document})")
    execute(store_db, "CREATE INDEX ix_document ON langchain_pg_embedding (document)")
    before = tables_now(store_db)
    with pytest.raises(VectorAssetsError) as raised:
        run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=TS, truncate_before_restore=True))
    message = str(raised.value)
    assert "exceeds btree version 4 maximum" in message and "ix_document" in message
    assert "lost the database connection" not in message and not raised.value.retryable
    assert tables_now(store_db) == before


def test_seed_style_backup_path_is_accepted(store_db, backup_root):
    run_backup(BackupRequest(dsn=store_db, root=backup_root, task_id="task_20250721_213627", timestamp=TS))
    result = run_restore(RestoreRequest(
        target_dsn=store_db, root=backup_root, timestamp=TS, dry_run=True, truncate_before_restore=True,
        backup_path="./data_pipeline/training_data/task_20250721_213627/vector_bak",
        configured_root="./data_pipeline/training_data",
    ))
    assert result.backup_set.location.task_id == "task_20250721_213627"


def legacy_copy(backup_root, key: str, table_to_edit: str, edit) -> str:
    """The set as a legacy set (no manifest), one table's CSV bytes passed through ``edit``."""
    set_ = SetCatalog(backup_root).get(key)
    legacy_ts = "20250722_000000"
    folder = backup_root / "task_20250722_000000" / "vector_bak"
    folder.mkdir(parents=True)
    for table in STORE_TABLES:
        body = set_.csv_path(table).read_bytes()
        (folder / csv_file_name(table, legacy_ts)).write_bytes(edit(body) if table == table_to_edit else body)
    return legacy_ts


def csv_rows(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode())))


def legacy_copy_with_a_repeated_row(backup_root, key: str) -> str:
    """The set as a legacy set whose embedding CSV holds its last row twice."""

    def repeat_last(body: bytes) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(csv_rows(body)[-1])
        return body + buffer.getvalue().encode()

    return legacy_copy(backup_root, key, "langchain_pg_embedding", repeat_last)


def collections_only_target(dsn: str) -> None:
    """The demo's collections, but 'ddl' gone and 'documentation' under another uuid."""
    fill_store(dsn, embeddings=0)
    execute(dsn, "DELETE FROM langchain_pg_collection WHERE name IN ('ddl', 'documentation')")
    execute(dsn, "INSERT INTO langchain_pg_collection (uuid, name) VALUES (gen_random_uuid(), 'documentation')")


def test_append_with_error_fails_on_a_conflict_with_another_unique_constraint_and_names_it(store_db, backup_root, second_db):
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS))
    collections_only_target(second_db)
    execute(second_db, "DELETE FROM langchain_pg_collection WHERE name = 'sql'")  # no key conflict left
    before = tables_now(second_db)
    with pytest.raises(RestoreConflictError, match="langchain_pg_collection_name_key.*documentation"):
        run_restore(RestoreRequest(
            target_dsn=second_db, root=backup_root, timestamp=TS, tables=("langchain_pg_collection",),
        ))
    assert tables_now(second_db) == before


def test_append_with_error_fails_on_a_key_the_file_holds_twice(store_db, backup_root, second_db):
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS))
    legacy = legacy_copy_with_a_repeated_row(backup_root, TS)
    fill_store(second_db, embeddings=0)
    before = tables_now(second_db)
    with pytest.raises(RestoreConflictError, match="repeats 1 key; first repeated id = "):
        run_restore(RestoreRequest(
            target_dsn=second_db, root=backup_root, timestamp=legacy, tables=("langchain_pg_embedding",),
        ))
    assert tables_now(second_db) == before


def test_replace_fails_on_a_key_the_file_holds_twice_naming_it_and_changes_nothing(store_db, backup_root):
    """The primary key is dropped for the load and added back after it: that is where a repeated
    key is found, still inside the restore's transaction."""
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS))
    legacy = legacy_copy_with_a_repeated_row(backup_root, TS)
    before, indexes, files = tables_now(store_db), index_definitions(store_db), folder_snapshot(backup_root)
    with pytest.raises(RestoreConflictError, match=r"primary key langchain_pg_embedding_pkey \(Key \(id\)=\(.+\) is duplicated"):
        run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=legacy, truncate_before_restore=True))
    assert tables_now(store_db) == before and index_definitions(store_db) == indexes
    assert folder_snapshot(backup_root) == files


def test_replace_puts_the_primary_key_back_as_it_was(store_db, backup_root):
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS))
    indexes = index_definitions(store_db)
    run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=TS, truncate_before_restore=True))
    assert index_definitions(store_db) == indexes
    assert execute(store_db, "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'langchain_pg_embedding_pkey'") == [
        ("PRIMARY KEY (id)",)]


def test_replace_puts_the_foreign_key_back_as_it_was(store_db, backup_root):
    """The foreign key is dropped for the load too, and comes back with its name, its ON DELETE
    CASCADE and its check of every row."""
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS))
    constraints = constraint_definitions(store_db)
    oid_of = "SELECT oid FROM pg_constraint WHERE conname = 'langchain_pg_embedding_collection_id_fkey'"
    before = execute(store_db, oid_of)
    run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=TS, truncate_before_restore=True))
    assert constraint_definitions(store_db) == constraints
    assert execute(store_db, oid_of) != before  # dropped for the load and added back
    assert ("langchain_pg_embedding", "langchain_pg_embedding_collection_id_fkey",
            "FOREIGN KEY (collection_id) REFERENCES langchain_pg_collection(uuid) ON DELETE CASCADE", True) in constraints
    with pytest.raises(psycopg2.errors.ForeignKeyViolation):
        execute(store_db, "INSERT INTO langchain_pg_embedding (id, collection_id) VALUES ('orphan', gen_random_uuid())")


def test_replace_leaves_a_commented_foreign_key_in_place(backed_up, backup_root):
    """A key with a comment is not dropped for the load (dropping it would lose the comment);
    the restore still brings the set back."""
    dsn, snapshot = backed_up
    fk = "langchain_pg_embedding_collection_id_fkey"
    execute(dsn, f"COMMENT ON CONSTRAINT {fk} ON langchain_pg_embedding IS 'checked by the nightly audit'")
    oid_of = f"SELECT oid, obj_description(oid, 'pg_constraint') FROM pg_constraint WHERE conname = '{fk}'"
    before = execute(dsn, oid_of)
    run_restore(RestoreRequest(target_dsn=dsn, root=backup_root, timestamp=TS, truncate_before_restore=True))
    assert execute(dsn, oid_of) == before and before[0][1] == "checked by the nightly audit"
    assert tables_now(dsn) == snapshot


def test_replace_fails_on_an_embedding_without_its_collection_naming_it_and_changes_nothing(store_db, backup_root):
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS))
    legacy, missing = legacy_copy_without_a_collection(backup_root, TS)
    before, indexes, files = tables_now(store_db), index_definitions(store_db), folder_snapshot(backup_root)
    constraints = constraint_definitions(store_db)
    with pytest.raises(
        RestoreConflictError,
        match=rf"table langchain_pg_embedding: .* cannot have foreign key langchain_pg_embedding_collection_id_fkey "
              rf"\(Key \(collection_id\)=\({missing}\) is not present in table \"langchain_pg_collection\"\.\); nothing was restored",
    ):
        run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=legacy, truncate_before_restore=True))
    assert tables_now(store_db) == before and index_definitions(store_db) == indexes
    assert constraint_definitions(store_db) == constraints
    assert folder_snapshot(backup_root) == files


def legacy_copy_without_a_collection(backup_root, key: str) -> tuple[str, str]:
    """The set as a legacy set whose collection CSV lacks its last line (one collection);
    returns the set's timestamp and the missing collection's uuid."""
    missing = []

    def drop_last_line(body: bytes) -> bytes:
        rows, kept = csv_rows(body), body.rstrip(b"\n").rsplit(b"\n", 1)[0] + b"\n"
        assert csv_rows(kept) == rows[:-1]
        missing.append(rows[-1][rows[0].index("uuid")])
        return kept

    return legacy_copy(backup_root, key, "langchain_pg_collection", drop_last_line), missing[0]


def constraint_definitions(dsn: str) -> list[tuple[str, str, str, bool]]:
    return execute(dsn, """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint
        WHERE conrelid IN ('langchain_pg_collection'::regclass, 'langchain_pg_embedding'::regclass)
        ORDER BY 1, 2""")


def index_definitions(dsn: str) -> list[tuple[str, str]]:
    return execute(dsn, "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname")


def test_append_with_skip_reports_exactly_what_it_skipped_and_why(store_db, backup_root, second_db):
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS))
    legacy = legacy_copy_with_a_repeated_row(backup_root, TS)
    collections_only_target(second_db)

    collections = run_restore(RestoreRequest(
        target_dsn=second_db, root=backup_root, timestamp=TS, tables=("langchain_pg_collection",), on_conflict="skip",
    )).tables[0]
    assert (collections.rows_loaded, collections.rows_skipped) == (1, 2)
    assert collections.skipped_because == {
        "key already in the table": 1, "UNIQUE langchain_pg_collection_name_key": 1,
    }

    execute(second_db, "DELETE FROM langchain_pg_collection WHERE name = 'documentation'")
    run_restore(RestoreRequest(target_dsn=second_db, root=backup_root, timestamp=TS, tables=("langchain_pg_collection",),
                               on_conflict="skip"))
    embeddings = run_restore(RestoreRequest(
        target_dsn=second_db, root=backup_root, timestamp=legacy, tables=("langchain_pg_embedding",), on_conflict="skip",
    )).tables[0]
    assert embeddings.rows_in_set == 301
    assert (embeddings.rows_loaded, embeddings.rows_skipped) == (300, 1)
    assert embeddings.skipped_because == {"key repeated in the file": 1}
    assert tables_now(second_db) == tables_now(store_db)


SEQUENCED_COLUMNS = {
    "langchain_pg_collection": "ADD COLUMN row_no serial UNIQUE",
    "langchain_pg_embedding": "ADD COLUMN row_no bigint GENERATED BY DEFAULT AS IDENTITY UNIQUE",
}


def test_after_a_restore_into_a_fresh_database_the_next_insert_gets_a_free_serial_and_identity_value(
    store_db, backup_root, second_db
):
    for table, change in SEQUENCED_COLUMNS.items():
        execute(store_db, f"ALTER TABLE {table} {change}")
    key = run_backup(BackupRequest(dsn=store_db, root=backup_root)).timestamp
    fill_store(second_db, embeddings=0)
    execute(second_db, "DELETE FROM langchain_pg_collection")
    for table, change in SEQUENCED_COLUMNS.items():
        execute(second_db, f"ALTER TABLE {table} {change}")

    result = run_restore(RestoreRequest(target_dsn=second_db, root=backup_root, timestamp=key))

    assert len(result.sequences_advanced) == 2
    execute(second_db, "INSERT INTO langchain_pg_collection (uuid, name) VALUES (gen_random_uuid(), 'new')")
    collection = execute(second_db, "SELECT uuid FROM langchain_pg_collection WHERE name = 'new'")[0][0]
    execute(second_db, "INSERT INTO langchain_pg_embedding (id, collection_id) VALUES ('new-row', %s)", (collection,))
    assert execute(second_db, "SELECT row_no FROM langchain_pg_embedding WHERE id = 'new-row'") == [(301,)]
    assert execute(second_db, "SELECT row_no FROM langchain_pg_collection WHERE name = 'new'") == [(4,)]


def index_properties(dsn: str) -> dict:
    """Each index of the embeddings with what pg_dump would keep, and the table's replica identity."""
    rows = execute(dsn, """
        SELECT c.relname, pg_get_indexdef(i.indexrelid), coalesce(ts.spcname, ''),
               obj_description(i.indexrelid, 'pg_class'), i.indisclustered, i.indisreplident,
               ARRAY(SELECT a.attstattarget::int FROM pg_attribute a WHERE a.attrelid = i.indexrelid ORDER BY a.attnum)::text
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid LEFT JOIN pg_tablespace ts ON ts.oid = c.reltablespace
        WHERE i.indrelid = 'langchain_pg_embedding'::regclass""")
    identity = execute(dsn, "SELECT relreplident FROM pg_class WHERE oid = 'langchain_pg_embedding'::regclass")
    return {"indexes": {row[0]: row[1:] for row in rows}, "replica_identity": identity}


def test_a_replace_restore_recreates_every_index_exactly_as_it_was(store_db, backup_root):
    for statement in (
        "CREATE UNIQUE INDEX embedding_id_for_replication ON langchain_pg_embedding (id)",
        "ALTER TABLE langchain_pg_embedding REPLICA IDENTITY USING INDEX embedding_id_for_replication",
        "CREATE INDEX ix_document_lower ON langchain_pg_embedding ((lower(document)))",
        "CREATE INDEX ix_short_documents ON langchain_pg_embedding (id) WHERE length(document) < 20",
        "COMMENT ON INDEX ix_document_lower IS 'case-insensitive search, see runbook'",
        "ALTER INDEX ix_document_lower ALTER COLUMN 1 SET STATISTICS 500",
        "ALTER TABLE langchain_pg_embedding CLUSTER ON ix_document_lower",
        "COMMENT ON INDEX ix_cmetadata_gin IS 'metadata filters'",
        "CREATE INDEX ix_embedding_hnsw ON langchain_pg_embedding USING hnsw (embedding vector_cosine_ops) WITH (m = 8)",
    ):
        execute(store_db, statement)
    before = index_properties(store_db)
    key = run_backup(BackupRequest(dsn=store_db, root=backup_root)).timestamp

    result = run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=key, truncate_before_restore=True))

    assert sorted(result.indexes_rebuilt) == [
        "ix_cmetadata_gin", "ix_document_lower", "ix_embedding_hnsw", "ix_short_documents",
    ]
    assert index_properties(store_db) == before
    assert before["replica_identity"] == [("i",)]
