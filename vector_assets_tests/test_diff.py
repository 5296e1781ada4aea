"""What changed, before anyone restores: a diff of a set against the live tables or another set
finds exactly the rows inserted, deleted and changed (a document, metadata, one float of one
vector), per table and per collection, and nothing between a set and the state it was taken from."""

from __future__ import annotations

import json
from dataclasses import replace

import dagster as dg
import pytest

from vector_assets.cli import format_restore, main
from vector_assets.core.errors import BackupSetNotFoundError, ConfigError
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.diff import RESTORED_ROWS, ROW_INDEX, STAGED_ROWS, DiffRequest, run_diff
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets.core.sets.manifest import INCREMENTAL
from vector_assets.core.stores import Store, StoreTable, TableRole
from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE
from vector_assets_tests.support.dagster import output_metadata, run_job
from vector_assets_tests.support.database import execute, fresh_database, tables_now
from vector_assets_tests.support.files import folder_snapshot


def keys_of(dsn: str, collection: str, count: int, offset: int = 0) -> list[str]:
    return [key for (key,) in execute(
        dsn, "SELECT e.id FROM langchain_pg_embedding e JOIN langchain_pg_collection c ON c.uuid = e.collection_id "
             "WHERE c.name = %s ORDER BY e.id COLLATE \"C\" LIMIT %s OFFSET %s", (collection, count, offset),
    )]


def change_the_store(dsn: str) -> dict[str, dict[str, list[str]]]:
    """Inserts, deletes and changes rows of known keys; returns them per collection and kind."""
    inserted = ["zz-new-1-sql", "zz-new-2-sql"]
    execute(dsn, """INSERT INTO langchain_pg_embedding (id, collection_id, embedding, document, cmetadata)
                    SELECT k, (SELECT uuid FROM langchain_pg_collection WHERE name = 'sql'), embedding, 'new', '{}'
                    FROM unnest(%s) k, (SELECT embedding FROM langchain_pg_embedding LIMIT 1) v""", (inserted,))
    deleted = keys_of(dsn, "ddl", 3)
    execute(dsn, "DELETE FROM langchain_pg_embedding WHERE id = ANY(%s)", (deleted,))
    document, = keys_of(dsn, "documentation", 1)
    execute(dsn, "UPDATE langchain_pg_embedding SET document = document || '.' WHERE id = %s", (document,))
    metadata, = keys_of(dsn, "sql", 1)
    execute(dsn, """UPDATE langchain_pg_embedding SET cmetadata = cmetadata || '{"edited": true}' WHERE id = %s""", (metadata,))
    one_float, = keys_of(dsn, "ddl", 1)
    execute(dsn, """UPDATE langchain_pg_embedding SET embedding =
                      (SELECT (array_agg(CASE WHEN n = 7 THEN x + 1e-3 ELSE x END ORDER BY n))::vector
                       FROM unnest(embedding::real[]) WITH ORDINALITY AS f(x, n)) WHERE id = %s""", (one_float,))
    return {
        "sql": {"only_in_set": [], "only_in_other": inserted, "changed": [metadata]},
        "ddl": {"only_in_set": sorted(deleted), "only_in_other": [], "changed": [one_float]},
        "documentation": {"only_in_set": [], "only_in_other": [], "changed": [document]},
    }


def expected_counts(changes: dict[str, dict[str, list[str]]]) -> dict[str, tuple[int, int, int]]:
    return {name: (len(kinds["only_in_set"]), len(kinds["only_in_other"]), len(kinds["changed"]))
            for name, kinds in changes.items()}


def found_counts(table_diff) -> dict[str, tuple[int, int, int]]:
    return {name: (found.only_in_set, found.only_in_other, found.changed) for name, found in table_diff.collections.items()}


def figures(result) -> list[dict]:
    """Each table's figures and sampled keys, without how the set's side was read."""
    return [{name: value for name, value in table.items() if name != "set_read_from"} for table in result.as_json()["tables"]]


def by_table(result) -> dict:
    return {table.table: table for table in result.tables}


@pytest.mark.parametrize("row_index", [False, True])
def test_a_set_against_the_live_tables_finds_exactly_what_changed_per_collection(store_db, backup_root, row_index):
    """With or without a row index: rows deleted since the set must be placed in their
    collections, which only the set's own rows can tell, so both read them."""
    taken = run_backup(BackupRequest(dsn=store_db, root=backup_root, row_index=row_index))
    changes = change_the_store(store_db)
    result = run_diff(DiffRequest(dsn=store_db, root=backup_root, key=taken.timestamp))
    embeddings = by_table(result)[EMBEDDING_TABLE]
    assert found_counts(embeddings) == expected_counts(changes)
    for name, kinds in changes.items():
        found = embeddings.collections[name]
        assert found.samples == {"only_ours": kinds["only_in_set"], "only_theirs": kinds["only_in_other"],
                                 "changed": kinds["changed"]}
    assert (embeddings.differences.only_in_set, embeddings.differences.only_in_other, embeddings.differences.changed) == (3, 2, 3)
    assert embeddings.rows_in_set == 300 and embeddings.rows_in_other == 299
    assert by_table(result)[COLLECTION_TABLE].differences.total == 0 and not result.identical
    assert embeddings.set_read_from == STAGED_ROWS
    assert by_table(result)[COLLECTION_TABLE].set_read_from == (ROW_INDEX if row_index else STAGED_ROWS)


def test_an_indexed_set_is_compared_through_its_row_index_when_no_row_was_deleted(store_db, backup_root):
    """As an increment compares: the live digests against the row index, collections from the live rows."""
    taken = run_backup(BackupRequest(dsn=store_db, root=backup_root, row_index=True))
    new_rows = ["zz-new-3-sql", "zz-new-4-documentation"]
    execute(store_db, """INSERT INTO langchain_pg_embedding (id, collection_id, document)
                         SELECT 'zz-new-3-sql', uuid, 'x' FROM langchain_pg_collection WHERE name = 'sql'
                         UNION ALL SELECT 'zz-new-4-documentation', uuid, 'y' FROM langchain_pg_collection
                         WHERE name = 'documentation'""")
    edited, = keys_of(store_db, "ddl", 1)
    execute(store_db, "UPDATE langchain_pg_embedding SET document = 'edited' WHERE id = %s", (edited,))
    embeddings = by_table(run_diff(DiffRequest(dsn=store_db, root=backup_root, key=taken.timestamp)))[EMBEDDING_TABLE]
    assert embeddings.set_read_from == ROW_INDEX and embeddings.rows_in_set == 300 and embeddings.rows_in_other == 302
    assert found_counts(embeddings) == {"sql": (0, 1, 0), "documentation": (0, 1, 0), "ddl": (0, 0, 1)}
    assert embeddings.differences.samples == {"only_ours": [], "only_theirs": new_rows, "changed": [edited]}


def test_nothing_differs_between_a_set_and_the_state_it_was_taken_from(store_db, backup_root):
    taken = run_backup(BackupRequest(dsn=store_db, root=backup_root, row_index=True))
    result = run_diff(DiffRequest(dsn=store_db, root=backup_root, key=taken.timestamp))
    assert result.identical and [t.rows_in_set for t in result.tables] == [3, 300]
    assert all(t.differences.total == 0 and t.collections == {} for t in result.tables)
    increment = run_backup(BackupRequest(dsn=store_db, root=backup_root, kind=INCREMENTAL))
    assert increment.manifest.kind == INCREMENTAL
    assert run_diff(DiffRequest(dsn=store_db, root=backup_root, key=increment.timestamp)).identical
    assert run_diff(DiffRequest(dsn=store_db, root=backup_root, key=taken.timestamp, against=increment.timestamp)).identical


def test_two_sets_differ_as_the_store_did_between_them(store_db, backup_root):
    """The older set against an increment taken after the changes (its chain applied in the stage)."""
    before = run_backup(BackupRequest(dsn=store_db, root=backup_root, row_index=True))
    changes = change_the_store(store_db)
    after = run_backup(BackupRequest(dsn=store_db, root=backup_root, kind=INCREMENTAL))
    assert after.manifest.kind == INCREMENTAL
    result = run_diff(DiffRequest(dsn=store_db, root=backup_root, key=before.timestamp, against=after.timestamp))
    assert found_counts(by_table(result)[EMBEDDING_TABLE]) == expected_counts(changes)
    assert result.against == after.timestamp


def test_a_table_without_collections_is_compared_as_a_whole(empty_db, backup_root):
    execute(empty_db, "CREATE TABLE data_docs (id BIGSERIAL PRIMARY KEY, text VARCHAR, node_id VARCHAR, embedding vector(3))")
    execute(empty_db, "INSERT INTO data_docs (text, embedding) SELECT 'doc ' || n, ('[' || n || ',1,2]')::vector FROM generate_series(1, 40) n")
    store = Store("docs", "llamaindex", (StoreTable("data_docs", TableRole.VECTORS),))
    taken = run_backup(BackupRequest(dsn=empty_db, root=backup_root, store=store, format="pgcopy"))
    execute(empty_db, "DELETE FROM data_docs WHERE id IN (1, 2)")
    execute(empty_db, "UPDATE data_docs SET embedding = '[9,9,9]' WHERE id = 40")
    (table,) = run_diff(DiffRequest(dsn=empty_db, root=backup_root, key=taken.timestamp, store=store)).tables
    assert (table.differences.only_in_set, table.differences.only_in_other, table.differences.changed) == (2, 0, 1)
    assert table.differences.samples["only_ours"] == ["1", "2"] and table.collections == {}


@pytest.mark.parametrize(("request_fields", "error", "named"), [
    ({"key": "20990101_000000"}, BackupSetNotFoundError, "no complete backup set '20990101_000000'"),
    ({"against": "20990101_000000"}, BackupSetNotFoundError, "no complete backup set '20990101_000000'"),
    ({"sample": -1}, ConfigError, "sample must be a whole number from 0 to 100"),
])
def test_a_bad_request_fails_in_one_line_and_changes_nothing(store_db, backup_root, request_fields, error, named):
    taken = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    before, files = tables_now(store_db), folder_snapshot(backup_root)
    with pytest.raises(error, match=named) as raised:
        run_diff(DiffRequest(**{"dsn": store_db, "root": backup_root, "key": taken.timestamp, **request_fields}))
    assert "\n" not in str(raised.value)
    assert tables_now(store_db) == before and folder_snapshot(backup_root) == files


def test_the_cli_prints_the_diff_and_exits_1_when_something_differs(store_db, backup_root, monkeypatch, capsys):
    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", store_db)
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", str(backup_root))
    taken = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    assert main(["diff", taken.timestamp]) == 0
    assert capsys.readouterr().out.strip().endswith("identical")
    changes = change_the_store(store_db)
    assert main(["diff", taken.timestamp, "--json"]) == 1
    printed = json.loads(capsys.readouterr().out)
    embeddings = next(table for table in printed["tables"] if table["table"] == EMBEDDING_TABLE)
    assert embeddings["collections"]["ddl"]["sample_only_in_set"] == changes["ddl"]["only_in_set"]


def test_the_diff_job_reports_the_differences_of_the_chosen_set(dagster_instance, store_db, backup_root):
    taken = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    dagster_instance.add_dynamic_partitions("vector_backups", [taken.timestamp])
    changes = change_the_store(store_db)
    result = run_job(dagster_instance, "diff_vector_backup", partition_key=taken.timestamp)
    assert result.success
    metadata = output_metadata(result, "diff_backup_set")
    assert metadata["identical"].value is False and metadata["against"].value == "live"
    rows = {(r.data["table"], r.data["collection"]): r.data for r in metadata["differences"].value.records}
    assert rows[(EMBEDDING_TABLE, "ddl")]["only_in_set"] == 3
    assert rows[(EMBEDDING_TABLE, "ddl")]["sample_only_in_set"] == ", ".join(changes["ddl"]["only_in_set"])
    assert rows[(EMBEDDING_TABLE, "(all)")]["changed"] == 3


def test_the_diff_job_refuses_an_unknown_other_set_in_one_line(dagster_instance, store_db, backup_root):
    taken = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    dagster_instance.add_dynamic_partitions("vector_backups", [taken.timestamp])
    result = run_job(dagster_instance, "diff_vector_backup", op="diff_backup_set", config={"against": "20990101_000000"},
                     partition_key=taken.timestamp)
    assert not result.success
    failure = next(event for event in result.all_events if event.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "no complete backup set '20990101_000000'" in failure.step_failure_data.error.message


def test_a_replacing_dry_run_shows_the_rows_it_would_bring_back_remove_and_overwrite(store_db, backup_root):
    taken = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    changes = change_the_store(store_db)
    before, files = tables_now(store_db), folder_snapshot(backup_root)
    dry = run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=taken.timestamp,
                                     truncate_before_restore=True, dry_run=True))
    assert tables_now(store_db) == before and folder_snapshot(backup_root) == files
    diff = run_diff(DiffRequest(dsn=store_db, root=backup_root, key=taken.timestamp))
    assert figures(dry.changes) == figures(diff)
    assert {table.set_read_from for table in dry.changes.tables} == {RESTORED_ROWS}
    assert found_counts(by_table(dry.changes)[EMBEDDING_TABLE]) == expected_counts(changes)
    lines = format_restore(dry).splitlines()
    assert f"  {EMBEDDING_TABLE} collection ddl: would bring back 3 rows only in the set, remove 0 only in the target, " \
           "overwrite 1 changed" in lines
    assert f"    bring back: {', '.join(changes['ddl']['only_in_set'])}" in lines


def test_a_replacing_restore_names_the_rows_it_replaced_as_its_dry_run_did(store_db, backup_root):
    """The target's rows before the restore replaces anything against its rows once the set's are
    in: the diff's figures and keys, the same in the dry run and the real run, in the result and
    the CLI's output next to the undo command; and nothing left to differ."""
    taken = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    changes = change_the_store(store_db)
    request = RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=taken.timestamp, truncate_before_restore=True,
                             name_replaced_rows=True)
    diff = run_diff(DiffRequest(dsn=store_db, root=backup_root, key=taken.timestamp))
    dry = run_restore(replace(request, dry_run=True))
    restored = run_restore(request)
    assert restored.safety_set is not None
    assert restored.changes.as_json()["tables"] == dry.changes.as_json()["tables"]
    assert figures(restored.changes) == figures(diff)
    assert found_counts(by_table(restored.changes)[EMBEDDING_TABLE]) == expected_counts(changes)
    lines = format_restore(restored).splitlines()
    summary = (f"  {EMBEDDING_TABLE} collection ddl: brought back 3 rows only in the set, removed 0 only in the target, "
               "overwrote 1 changed")
    assert summary in lines and f"    brought back: {', '.join(changes['ddl']['only_in_set'])}" in lines
    assert f"    removed: {', '.join(changes['sql']['only_in_other'])}" in lines
    assert lines.index(summary) < len(lines) - 1 and lines[-1].startswith("what it replaced is in the pre_restore set")
    assert run_diff(DiffRequest(dsn=store_db, root=backup_root, key=taken.timestamp)).identical


def test_a_real_restore_compares_only_when_asked_and_says_where_the_replaced_rows_are(store_db, backup_root):
    """The comparison costs a digest scan before the load and one after, so a real run makes it
    when asked (its dry run always does); without it the result still points at the safety set."""
    taken = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    change_the_store(store_db)
    restored = run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=taken.timestamp,
                                          truncate_before_restore=True))
    assert restored.changes is None and restored.safety_set is not None
    lines = format_restore(restored).splitlines()
    assert not any("brought back" in line for line in lines)
    assert lines[-1].startswith("what it replaced is in the pre_restore set")
    assert run_diff(DiffRequest(dsn=store_db, root=backup_root, key=taken.timestamp)).identical


def test_a_replacing_restore_into_an_empty_database_brings_back_every_row(store_db, backup_root, maintenance_dsn):
    """The tables the restore creates from the set's definitions held nothing: every row is brought back."""
    taken = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    rows = {table: sum(held.values()) for table, held in tables_now(store_db).items()}
    with fresh_database(maintenance_dsn) as empty:
        restored = run_restore(RestoreRequest(target_dsn=empty, root=backup_root, timestamp=taken.timestamp,
                                              truncate_before_restore=True, name_replaced_rows=True))
    assert sorted(restored.tables_created) == sorted(by_table(restored.changes))
    for table in restored.changes.tables:
        assert table.skipped is None and (table.rows_in_set, table.rows_in_other) == (rows[table.table], 0)
        found = table.differences
        assert (found.only_in_set, found.only_in_other, found.changed) == (rows[table.table], 0, 0)


def test_the_restore_job_logs_and_records_the_rows_it_replaced(dagster_instance, store_db, backup_root):
    taken = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    dagster_instance.add_dynamic_partitions("vector_backups", [taken.timestamp])
    changes = change_the_store(store_db)
    dry = run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=taken.timestamp,
                                     truncate_before_restore=True, dry_run=True))
    result = run_job(dagster_instance, "restore_vector_tables", "restore_from_backup_set",
                     {"truncate_before_restore": True, "dry_run": False, "name_replaced_rows": True},
                     partition_key=taken.timestamp)
    assert result.success
    metadata = output_metadata(result, "restore_from_backup_set")
    assert metadata["replaced_rows"].value["tables"] == dry.changes.as_json()["tables"]
    assert "would_change" not in metadata and "undo_cli" in metadata
    assert f"- {EMBEDDING_TABLE} collection sql: brought back 0 rows only in the set, removed 2 only in the target, " \
           "overwrote 1 changed" in metadata["replaced"].value
    logged = [event.message for event in dagster_instance.all_logs(result.run_id)]
    assert any(f"  removed: {', '.join(changes['sql']['only_in_other'])}" == message for message in logged)


def test_a_collection_restore_and_its_dry_run_show_only_that_collections_rows(store_db, backup_root):
    taken = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    changes = change_the_store(store_db)
    dry = run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=taken.timestamp,
                                     truncate_before_restore=True, dry_run=True, collection="sql"))
    (table,) = dry.changes.tables
    assert table.only_collection == "sql" and table.collections == {}
    assert (table.differences.only_in_set, table.differences.only_in_other, table.differences.changed) == (0, 2, 1)
    assert table.differences.samples["only_theirs"] == changes["sql"]["only_in_other"]
    restored = run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=taken.timestamp,
                                          truncate_before_restore=True, collection="sql", name_replaced_rows=True))
    assert restored.changes.as_json()["tables"] == dry.changes.as_json()["tables"]
    appended = run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=taken.timestamp, dry_run=True,
                                          collection="sql", on_conflict="skip"))
    assert appended.changes is None  # an append replaces nothing


def test_tables_in_a_schema_are_compared_one_of_them_by_a_composite_key(empty_db, backup_root):
    execute(empty_db, """
        CREATE SCHEMA kb;
        CREATE TABLE kb.documents (id BIGSERIAL PRIMARY KEY, title TEXT NOT NULL, embedding vector(3));
        CREATE TABLE kb.chunks (doc_id BIGINT NOT NULL REFERENCES kb.documents (id), seq INT NOT NULL,
                                content TEXT, embedding halfvec(3) NOT NULL, PRIMARY KEY (doc_id, seq));
        INSERT INTO kb.documents (title, embedding) SELECT 'doc ' || g, '[1,2,3]' FROM generate_series(1, 10) g;
        INSERT INTO kb.chunks SELECT d, 1, 'chunk', '[1,1,1]' FROM generate_series(1, 10) d;
    """)
    store = Store("kb", "tables", (StoreTable("kb.chunks", TableRole.VECTORS), StoreTable("kb.documents", TableRole.VECTORS)))
    taken = run_backup(BackupRequest(dsn=empty_db, root=backup_root, store=store))
    execute(empty_db, "UPDATE kb.documents SET title = 'renamed' WHERE id = 7")
    execute(empty_db, "UPDATE kb.chunks SET content = 'edited' WHERE doc_id = 4")
    result = run_diff(DiffRequest(dsn=empty_db, root=backup_root, key=taken.timestamp, store=store))
    documents, chunks = by_table(result)["kb.documents"], by_table(result)["kb.chunks"]
    assert (documents.differences.changed, documents.differences.samples["changed"]) == (1, ["7"])
    assert (chunks.key, chunks.skipped) == ("doc_id, seq", None)
    assert (chunks.differences.total, chunks.differences.samples["changed"]) == (1, ["(4, 1)"])
