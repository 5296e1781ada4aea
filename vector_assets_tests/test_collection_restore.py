"""Restoring one collection: replaced in place or copied under a new name, from every kind of
set, on both LangChain layouts, while every other collection stays byte for byte as it was."""

import json
import shlex
import uuid
from collections import Counter
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

from vector_assets.cli import main
from vector_assets.core.errors import ConfigError, RestoreConflictError, UnknownCollectionError
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets.core.sets.catalog import scan_root
from vector_assets.core.sets.disk_store import DiskFolder
from vector_assets.core.sets.manifest import INCREMENTAL
from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE
from vector_assets.dev.demo import write_legacy_set
from vector_assets_tests.support.dagster import definitions, output_metadata, run_job
from vector_assets_tests.support.database import execute, fill_store, tables_now
from vector_assets_tests.support.files import folder_snapshot

TS = "20250801_120000"
LEGACY_TS = "20250721_213627"
# The documented scheme, spelled out here rather than imported, so a change to it fails a test.
RENAMED_NAMESPACE = uuid.UUID("8dc0ba5b-0688-5138-a177-677815b4cf56")
ALL = ("sql", "ddl", "documentation")


def key_column(dsn: str) -> str:
    (row,) = execute(dsn, "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                          "AND a.attnum = ANY (i.indkey) WHERE i.indrelid = 'langchain_pg_embedding'::regclass AND i.indisprimary")
    return row[0]


def rows_of(dsn: str, names: tuple[str, ...], *, others: bool = False) -> dict[str, Counter]:
    """Every row of the named collections (or, with ``others``, of every other collection, and
    embeddings in none), each as Postgres prints the whole record."""
    chosen = "NOT (c.name = ANY (%s)) OR c.name IS NULL" if others else "c.name = ANY (%s)"
    collections = execute(dsn, f"SELECT c::text FROM langchain_pg_collection c WHERE {chosen}", (list(names),))
    embeddings = execute(dsn, "SELECT e::text FROM langchain_pg_embedding e LEFT JOIN langchain_pg_collection c "
                              f"ON c.uuid = e.collection_id WHERE {chosen}", (list(names),))
    return {"collections": Counter(r[0] for r in collections), "embeddings": Counter(r[0] for r in embeddings)}


def embeddings_by_key(dsn: str, name: str) -> dict[str, str]:
    """The collection's embeddings by primary key, with every column but the key and the
    collection as JSON text."""
    key = key_column(dsn)
    return dict(execute(
        dsn,
        f"SELECT e.{key}::text, (to_jsonb(e) - '{key}' - 'collection_id')::text FROM langchain_pg_embedding e "
        "JOIN langchain_pg_collection c ON c.uuid = e.collection_id WHERE c.name = %s",
        (name,),
    ))


def with_custom_id_suffix(columns_json: str, suffix: str) -> dict:
    columns = json.loads(columns_json)
    columns["custom_id"] += suffix
    return columns


def collection_row(dsn: str, name: str) -> tuple:
    (row,) = execute(dsn, "SELECT uuid::text, name, cmetadata::text FROM langchain_pg_collection WHERE name = %s", (name,))
    return row


def add_embeddings(dsn: str, to: str, copied_from: str, count: int, tag: str) -> None:
    """``count`` new embeddings in collection ``to``: copies of ``copied_from``'s under new keys."""
    if key_column(dsn) == "uuid":
        columns, values = "uuid, custom_id", "gen_random_uuid(), e.custom_id || '-' || %(tag)s"
    else:
        columns, values = "id", "e.id || '-' || %(tag)s"
    execute(dsn, f"""
        INSERT INTO langchain_pg_embedding ({columns}, collection_id, embedding, document, cmetadata)
        SELECT {values}, (SELECT uuid FROM langchain_pg_collection WHERE name = %(to)s), e.embedding, e.document, e.cmetadata
        FROM langchain_pg_embedding e JOIN langchain_pg_collection c ON c.uuid = e.collection_id
        WHERE c.name = %(src)s ORDER BY e.document LIMIT %(n)s""", {"tag": tag, "to": to, "src": copied_from, "n": count})


def edit(dsn: str, name: str, rows: int, document: str) -> None:
    execute(dsn, "UPDATE langchain_pg_embedding SET document = %s WHERE ctid IN (SELECT e.ctid FROM langchain_pg_embedding e "
                 "JOIN langchain_pg_collection c ON c.uuid = e.collection_id WHERE c.name = %s LIMIT %s)", (document, name, rows))


def change_every_collection(dsn: str) -> None:
    """After the backup: 'sql' loses rows, gains one and has rows edited; the others change too
    (and must keep those changes: they are not restored)."""
    execute(dsn, "DELETE FROM langchain_pg_embedding WHERE ctid IN (SELECT e.ctid FROM langchain_pg_embedding e "
                 "JOIN langchain_pg_collection c ON c.uuid = e.collection_id WHERE c.name = 'sql' LIMIT 10)")
    edit(dsn, "sql", 3, "edited after the backup")
    add_embeddings(dsn, "sql", "sql", 1, "added")
    edit(dsn, "ddl", 2, "ddl edited after the backup")
    add_embeddings(dsn, "documentation", "ddl", 4, "moved")
    execute(dsn, """UPDATE langchain_pg_collection SET cmetadata = '{"changed": true}' WHERE name = 'sql'""")


def recreate_collection(dsn: str, name: str) -> None:
    """As an application does: drop the collection (its embeddings go too) and make it anew,
    under another uuid, with a few rows."""
    execute(dsn, "DELETE FROM langchain_pg_collection WHERE name = %s", (name,))
    execute(dsn, "INSERT INTO langchain_pg_collection (uuid, name, cmetadata) VALUES (gen_random_uuid(), %s, NULL)", (name,))
    add_embeddings(dsn, name, "ddl", 5, "recreated")


@pytest.fixture(params=["current", "community"])
def layout(request) -> str:
    return request.param


@pytest.fixture
def store(empty_db: str, layout: str) -> str:
    fill_store(empty_db, layout=layout)
    return empty_db


def request_for(dsn: str, root: Path, **fields) -> RestoreRequest:
    return RestoreRequest(**{"target_dsn": dsn, "root": root, "timestamp": TS, **fields})


@pytest.mark.parametrize("how", ["edited", "recreated under another uuid"])
def test_replace_puts_one_collection_back_exactly_and_leaves_the_others_byte_identical(store, backup_root, how):
    run_backup(BackupRequest(dsn=store, root=backup_root, timestamp=TS))
    in_set = rows_of(store, ("sql",))
    if how == "edited":
        change_every_collection(store)
    else:
        recreate_collection(store, "sql")
        edit(store, "ddl", 2, "ddl edited after the backup")
    others, sql_now = rows_of(store, ("sql",), others=True), rows_of(store, ("sql",))
    assert sql_now != in_set and sum(others["embeddings"].values()) >= 200

    result = run_restore(request_for(store, backup_root, collection="sql", truncate_before_restore=True))

    assert rows_of(store, ("sql",)) == in_set
    assert rows_of(store, ("sql",), others=True) == others
    restored = result.collection
    assert (restored.name, restored.restored_as, restored.mode) == ("sql", "sql", "replace")
    assert restored.uuid == collection_row(store, "sql")[0] == restored.set_uuid
    assert restored.embeddings_deleted == sum(sql_now["embeddings"].values())
    assert restored.embeddings_loaded == restored.embeddings_in_set == 100
    assert result.safety_set.manifest.kind == "pre_restore" and not result.truncated
    counts = {t.table: (t.rows_before, t.rows_truncated, t.rows_loaded) for t in result.tables}
    assert counts[COLLECTION_TABLE] == (3, 1, 1)
    embeddings_before = sum(others["embeddings"].values()) + sum(sql_now["embeddings"].values())
    assert counts[EMBEDDING_TABLE] == (embeddings_before, restored.embeddings_deleted, 100)


def test_a_renamed_copy_gets_the_documented_ids_beside_the_original_which_stays_untouched(store, backup_root):
    run_backup(BackupRequest(dsn=store, root=backup_root, timestamp=TS))
    set_uuid, _, set_metadata = collection_row(store, "sql")
    original = embeddings_by_key(store, "sql")
    change_every_collection(store)
    before = rows_of(store, ALL)

    result = run_restore(request_for(store, backup_root, collection="sql", rename_collection_to="sql_v2"))

    assert rows_of(store, ALL) == before, "every existing collection, 'sql' included, is byte-identical"
    new_uuid = str(uuid.uuid5(RENAMED_NAMESPACE, f"{set_uuid}:sql_v2"))
    assert collection_row(store, "sql_v2") == (new_uuid, "sql_v2", set_metadata)
    if key_column(store) == "uuid":  # the older layout: uuid key, and custom_id suffixed
        expected = {str(uuid.uuid5(uuid.UUID(new_uuid), old)): with_custom_id_suffix(rest, ":sql_v2")
                    for old, rest in original.items()}
    else:
        expected = {f"{old}:sql_v2": json.loads(rest) for old, rest in original.items()}
    assert {key: json.loads(rest) for key, rest in embeddings_by_key(store, "sql_v2").items()} == expected
    assert not set(expected) & set(original)
    assert (result.collection.restored_as, result.collection.uuid, result.collection.embeddings_loaded) == (
        "sql_v2", new_uuid, 100)

    copy = rows_of(store, ("sql_v2",))
    again = run_restore(request_for(store, backup_root, collection="sql", rename_collection_to="sql_v2",
                                    truncate_before_restore=True))
    assert again.collection.embeddings_deleted == 100, "replace mode replaces the earlier copy, with the same ids"
    assert rows_of(store, ("sql_v2",)) == copy and rows_of(store, ALL) == before

    everything, files = tables_now(store), folder_snapshot(backup_root)
    with pytest.raises(RestoreConflictError, match="langchain_pg_collection: 1 row .* already exists"):
        run_restore(request_for(store, backup_root, collection="sql", rename_collection_to="sql_v2"))
    assert tables_now(store) == everything and folder_snapshot(backup_root) == files


def test_a_new_name_the_target_already_uses_is_refused_when_appending_and_taken_over_when_replacing(store_db, backup_root):
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS))
    execute(store_db, "INSERT INTO langchain_pg_collection (uuid, name) VALUES (gen_random_uuid(), 'sql_v2')")
    add_embeddings(store_db, "sql_v2", "ddl", 3, "mine")
    before, files = tables_now(store_db), folder_snapshot(backup_root)

    with pytest.raises(RestoreConflictError, match="collection 'sql_v2' already exists in the target under uuid .*rename_collection_to"):
        run_restore(request_for(store_db, backup_root, collection="sql", rename_collection_to="sql_v2"))
    assert tables_now(store_db) == before and folder_snapshot(backup_root) == files

    others = rows_of(store_db, ("sql_v2",), others=True)
    result = run_restore(request_for(store_db, backup_root, collection="sql", rename_collection_to="sql_v2",
                                     truncate_before_restore=True))
    assert result.collection.embeddings_deleted == 3 and result.collection.embeddings_loaded == 100
    assert rows_of(store_db, ("sql_v2",), others=True) == others
    assert len(embeddings_by_key(store_db, "sql_v2")) == 100


@pytest.mark.parametrize("fmt", ["csv.zst", "pgcopy", "pgcopy.zst"])
def test_a_collection_restores_from_every_newer_format(store_db, backup_root, fmt):
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS, format=fmt))
    in_set = rows_of(store_db, ("ddl",))
    change_every_collection(store_db)
    execute(store_db, "DELETE FROM langchain_pg_embedding WHERE ctid IN (SELECT e.ctid FROM langchain_pg_embedding e "
                      "JOIN langchain_pg_collection c ON c.uuid = e.collection_id WHERE c.name = 'ddl' LIMIT 30)")
    others = rows_of(store_db, ("ddl",), others=True)

    result = run_restore(request_for(store_db, backup_root, collection="ddl", truncate_before_restore=True))

    assert rows_of(store_db, ("ddl",)) == in_set and rows_of(store_db, ("ddl",), others=True) == others
    assert result.safety_set.manifest.format == fmt.replace("csv", "pgcopy")  # binary, compressed as the set
    renamed = run_restore(request_for(store_db, backup_root, collection="ddl", rename_collection_to="ddl copy"))
    assert renamed.collection.embeddings_loaded == 100 and rows_of(store_db, ("ddl",)) == in_set


def test_a_collection_restores_from_a_legacy_set(store, backup_root):
    folder = backup_root / "task_20250721_213627" / "vector_bak"
    with psycopg2.connect(store) as conn:
        write_legacy_set(conn, DiskFolder(folder), LEGACY_TS)
    conn.close()
    in_set = rows_of(store, ("documentation",))
    recreate_collection(store, "documentation")
    change_every_collection(store)
    others = rows_of(store, ("documentation",), others=True)

    result = run_restore(request_for(store, backup_root, timestamp=LEGACY_TS, collection="documentation",
                                     truncate_before_restore=True))

    assert result.backup_set.is_legacy
    assert rows_of(store, ("documentation",)) == in_set
    assert rows_of(store, ("documentation",), others=True) == others


def test_a_collection_restores_from_an_increment_as_it_was_at_that_increment(store_db, backup_root):
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS, format="pgcopy.zst", row_index=True))
    at = {}
    for step in (1, 2):
        edit(store_db, "sql", 4, f"edited at step {step}")
        add_embeddings(store_db, "sql", "documentation", 3, f"step{step}")
        edit(store_db, "ddl", 2, f"ddl edited at step {step}")
        execute(store_db, "INSERT INTO langchain_pg_collection (uuid, name) VALUES (gen_random_uuid(), %s)", (f"new{step}",))
        add_embeddings(store_db, f"new{step}", "ddl", 2, f"step{step}")
        key = run_backup(BackupRequest(dsn=store_db, root=backup_root, format="pgcopy.zst", kind=INCREMENTAL,
                                       timestamp=f"2025080{step + 1}_120000")).timestamp
        at[key] = rows_of(store_db, ("sql",)), rows_of(store_db, ("new1",))
    change_every_collection(store_db)
    execute(store_db, "DELETE FROM langchain_pg_collection WHERE name = 'new1'")

    for key, (sql_then, new1_then) in at.items():
        others = rows_of(store_db, ("sql",), others=True)
        result = run_restore(request_for(store_db, backup_root, timestamp=key, collection="sql",
                                         truncate_before_restore=True))
        assert result.backup_set.manifest.kind == INCREMENTAL
        assert rows_of(store_db, ("sql",)) == sql_then and rows_of(store_db, ("sql",), others=True) == others
    with pytest.raises(UnknownCollectionError, match="'new1'"):
        run_restore(request_for(store_db, backup_root, timestamp=TS, collection="new1"))
    run_restore(request_for(store_db, backup_root, timestamp=key, collection="new1"))
    assert rows_of(store_db, ("new1",)) == new1_then


@pytest.mark.parametrize("fmt", ["csv", "pgcopy.zst"])
def test_an_unknown_collection_fails_at_once_naming_what_the_set_holds_and_changes_nothing(store_db, backup_root, fmt):
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS, format=fmt))
    change_every_collection(store_db)
    before, files = tables_now(store_db), folder_snapshot(backup_root)

    with pytest.raises(UnknownCollectionError) as raised:
        run_restore(request_for(store_db, backup_root, collection="sqll", truncate_before_restore=True))

    message = str(raised.value)
    assert message == (f"set {TS} holds no collection named 'sqll'; it holds 3: 'ddl', 'documentation', 'sql'; "
                       "nothing was changed")
    assert tables_now(store_db) == before and folder_snapshot(backup_root) == files


def test_a_dry_run_reports_what_it_would_do_and_changes_nothing(store_db, backup_root):
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS))
    change_every_collection(store_db)
    before, files = tables_now(store_db), folder_snapshot(backup_root)

    result = run_restore(request_for(store_db, backup_root, collection="sql", truncate_before_restore=True, dry_run=True))

    assert result.dry_run and result.safety_set is None
    assert (result.collection.embeddings_deleted, result.collection.embeddings_loaded) == (91, 100)
    assert tables_now(store_db) == before and folder_snapshot(backup_root) == files


def test_one_collection_restores_into_an_empty_database_with_the_tables_made_from_the_set(store_db, backup_root, second_db):
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS))

    result = run_restore(request_for(second_db, backup_root, collection="ddl"))

    assert result.tables_created == ["langchain_pg_collection", "langchain_pg_embedding"]
    assert result.indexes_rebuilt == ["ix_cmetadata_gin"]
    assert rows_of(second_db, ("ddl",)) == rows_of(store_db, ("ddl",))
    assert rows_of(second_db, ("ddl",), others=True) == {"collections": Counter(), "embeddings": Counter()}


def test_a_target_with_two_collections_of_that_name_is_refused(empty_db, backup_root):
    fill_store(empty_db, layout="community")  # no UNIQUE on the name
    run_backup(BackupRequest(dsn=empty_db, root=backup_root, timestamp=TS))
    execute(empty_db, "INSERT INTO langchain_pg_collection (uuid, name) VALUES (gen_random_uuid(), 'sql')")
    before = tables_now(empty_db)
    with pytest.raises(RestoreConflictError, match="the target holds 2 collections named 'sql' .* ambiguous"):
        run_restore(request_for(empty_db, backup_root, collection="sql", truncate_before_restore=True))
    assert tables_now(empty_db) == before


BAD_REQUESTS = [
    ("empty name", {"collection": ""}, "non-empty"),
    ("control character", {"collection": "sql\n"}, "control character"),
    ("too long", {"collection": "x" * 256}, "at most 255"),
    ("rename without a collection", {"rename_collection_to": "b"}, r"needs collection \(--collection\)"),
    ("rename to itself", {"collection": "sql", "rename_collection_to": "sql"}, "own name"),
    ("one table", {"collection": "sql", "tables": ("langchain_pg_embedding",)}, "needs both tables"),
]


@pytest.mark.parametrize(("case", "fields", "named"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_collection_requests_are_refused_before_anything_runs(case, fields, named, tmp_path):
    with pytest.raises(ConfigError, match=named):
        RestoreRequest(target_dsn="dbname=unused", root=tmp_path, timestamp=TS, **fields)


def test_the_restore_job_restores_a_renamed_copy_and_reports_it(dagster_instance, store_db, backup_root):
    assert definitions().resolve_job_def("backup_vector_tables").execute_in_process(instance=dagster_instance).success
    (backup_set,) = scan_root(backup_root)
    before = rows_of(store_db, ALL)

    result = run_job(dagster_instance, "restore_vector_tables", "restore_from_backup_set",
                     {"collection": "sql", "rename_collection_to": "sql_v2", "truncate_before_restore": False,
                      "dry_run": False}, partition_key=backup_set.key)

    assert result.success
    assert rows_of(store_db, ALL) == before and len(embeddings_by_key(store_db, "sql_v2")) == 100
    metadata = {name: value.value for name, value in output_metadata(result, "restore_from_backup_set").items()}
    assert (metadata["collection"], metadata["restored_as"], metadata["collection_mode"]) == ("sql", "sql_v2", "append")
    assert (metadata["embeddings_loaded"], metadata["embeddings_deleted"]) == (100, 0)
    assert metadata["collection_uuid"] == collection_row(store_db, "sql_v2")[0]
    assert "only collection `sql` as `sql_v2`" in metadata["summary"]
    observation = dagster_instance.fetch_observations(dg.AssetKey("langchain_pg_embedding"), limit=1).records[0]
    assert "collection 'sql' as 'sql_v2'" in observation.asset_observation.metadata["collection"].value


def test_the_restore_job_with_an_unknown_collection_fails_in_one_line_and_changes_nothing(dagster_instance, store_db, backup_root):
    assert definitions().resolve_job_def("backup_vector_tables").execute_in_process(instance=dagster_instance).success
    (backup_set,) = scan_root(backup_root)
    before, files = tables_now(store_db), folder_snapshot(backup_root)
    partitions = dagster_instance.get_dynamic_partitions("vector_backups")
    observations = dagster_instance.fetch_observations(dg.AssetKey("langchain_pg_embedding"), limit=10).records

    result = run_job(dagster_instance, "restore_vector_tables", "restore_from_backup_set",
                     {"collection": "nope", "truncate_before_restore": True, "dry_run": False}, partition_key=backup_set.key)

    assert not result.success
    message = result.failure_data_for_node("restore_from_backup_set").error.message
    assert "holds no collection named 'nope'; it holds 3: 'ddl', 'documentation', 'sql'" in message
    assert tables_now(store_db) == before and folder_snapshot(backup_root) == files
    assert dagster_instance.get_dynamic_partitions("vector_backups") == partitions
    assert dagster_instance.fetch_observations(dg.AssetKey("langchain_pg_embedding"), limit=10).records == observations


def test_the_cli_restores_one_collection_and_its_undo_puts_back_exactly_what_was_there(
    monkeypatch, store_db, backup_root, capsys
):
    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", store_db)
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", str(backup_root))
    key = run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS)).timestamp
    recreate_collection(store_db, "sql")
    before = tables_now(store_db)

    assert main(["restore", key, "--collection", "sql", "--replace", "--apply"]) == 0

    output = capsys.readouterr().out
    assert "collection 'sql' (uuid " in output and "replace, 5 embeddings deleted, 100 of its 100" in output
    undo = next(line for line in output.splitlines() if "to undo: " in line).split("to undo: ")[1]
    assert "--collection sql" in undo
    assert main(shlex.split(undo)[1:] + ["--no-safety-backup"]) == 0
    assert tables_now(store_db) == before

    assert main(["restore", key, "--rename-to", "sql_v2", "--apply"]) == 2
    assert "rename_collection_to (--rename-to) needs collection (--collection)" in capsys.readouterr().err


@pytest.mark.parametrize("how", ["deleted since the set", "restored under a new name"])
def test_the_undo_of_a_collection_that_did_not_exist_removes_just_it_and_keeps_later_changes(
    how, monkeypatch, store_db, backup_root, capsys
):
    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", store_db)
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", str(backup_root))
    key = run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS)).timestamp
    if how == "deleted since the set":
        execute(store_db, "DELETE FROM langchain_pg_collection WHERE name = 'sql'")
        restore, restored_as = ["restore", key, "--collection", "sql", "--replace", "--apply"], "sql"
    else:
        restore, restored_as = ["restore", key, "--collection", "sql", "--rename-to", "sql_v2", "--append", "--apply"], "sql_v2"
    before = tables_now(store_db)

    assert main(restore) == 0
    undo = next(line for line in capsys.readouterr().out.splitlines() if "to undo: " in line).split("to undo: ")[1]
    assert f"--collection {restored_as} " in undo + " " and "--replace" in undo and "--tables" not in undo
    # Later work on the other collections must survive the undo.
    execute(store_db, "UPDATE langchain_pg_embedding SET document = 'edited after the restore' WHERE collection_id = "
                      "(SELECT uuid FROM langchain_pg_collection WHERE name = 'ddl')")
    execute(store_db, "INSERT INTO langchain_pg_collection (uuid, name) VALUES (gen_random_uuid(), 'created later')")
    later = rows_of(store_db, (restored_as,), others=True)

    assert main(shlex.split(undo)[1:]) == 0

    out = capsys.readouterr().out
    assert f"collection {restored_as!r} (uuid " in out and "removed, as the set records it absent" in out
    assert rows_of(store_db, (restored_as,)) == {"collections": Counter(), "embeddings": Counter()}
    assert rows_of(store_db, (restored_as,), others=True) == later
    assert sum(tables_now(store_db)["langchain_pg_collection"].values()) == sum(before["langchain_pg_collection"].values()) + 1
    # The undo kept what it removed: its own undo puts the collection back.
    redo = next(line for line in out.splitlines() if "to undo: " in line).split("to undo: ")[1]
    assert main(shlex.split(redo)[1:] + ["--no-safety-backup"]) == 0
    assert len(rows_of(store_db, (restored_as,))["embeddings"]) == 100


def test_a_set_that_records_a_collection_absent_removes_it_only_in_replace_mode(store_db, backup_root):
    key = run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS)).timestamp
    renamed = run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=key, collection="sql",
                                         rename_collection_to="sql_v2"))
    safety = renamed.safety_set
    assert safety.manifest.absent_collections == ("sql_v2",)
    before, files = tables_now(store_db), folder_snapshot(backup_root)

    with pytest.raises(UnknownCollectionError, match="records collection 'sql_v2' as absent: only a replace"):
        run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=safety.timestamp,
                                   collection="sql_v2"))
    assert tables_now(store_db) == before and folder_snapshot(backup_root) == files

    removed = run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=safety.timestamp,
                                         collection="sql_v2", truncate_before_restore=True, safety_backup=False))
    counts = {t.table: (t.rows_before, t.rows_truncated, t.rows_loaded) for t in removed.tables}
    embeddings_before = sum(before["langchain_pg_embedding"].values())
    assert counts == {COLLECTION_TABLE: (sum(before["langchain_pg_collection"].values()), 1, 0),
                      EMBEDDING_TABLE: (embeddings_before, 100, 0)}
    assert sum(tables_now(store_db)["langchain_pg_embedding"].values()) == embeddings_before - 100
