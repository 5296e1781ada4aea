"""The drill answers questions: recall@k of the restored vector indexes against exact search,
with latency and short answers, on a real PostgreSQL with pgvector."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from vector_assets.cli import EXIT_FAILED, EXIT_OK, main
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.drill import FAILED, PASSED, WARNING, DrillRequest, RecallSettings, run_drill
from vector_assets.core.stores import Store, StoreTable, TableRole
from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE
from vector_assets.definitions import defs as load_definitions
from vector_assets_tests.support.dagster import backup_asset_key, definitions
from vector_assets_tests.support.database import execute, fill_store
from vector_assets_tests.test_declared_stores import declare

HNSW = f"CREATE INDEX embedding_hnsw ON {EMBEDDING_TABLE} USING hnsw (embedding vector_cosine_ops)"
# Far more lists than rows per list: one probe sees a sliver of the table.
IVFFLAT_MANY_LISTS = f"CREATE INDEX embedding_ivfflat ON {EMBEDDING_TABLE} USING ivfflat (embedding vector_l2_ops) WITH (lists = 200)"


def drilled(dsn: str, root, **recall) -> object:
    run_backup(BackupRequest(dsn=dsn, root=root, format="pgcopy"))
    return run_drill(DrillRequest(dsn=dsn, root=root, recall=RecallSettings(**recall)))


@pytest.fixture
def searchable_store(empty_db: str) -> str:
    fill_store(empty_db, embeddings=1200, dims=32)
    return empty_db


def test_a_sound_hnsw_index_drills_at_high_recall(searchable_store, backup_root):
    execute(searchable_store, HNSW)
    result = drilled(searchable_store, backup_root, queries=20)
    (measured,) = result.recall
    assert (measured.table, measured.index, measured.method) == (EMBEDDING_TABLE, "embedding_hnsw", "hnsw")
    collections = execute(searchable_store, f"SELECT count(DISTINCT collection_id) FROM {EMBEDDING_TABLE}")[0][0]
    assert measured.queries == 20 * collections
    assert measured.recall >= 0.9 and result.recall_settings.verdict(measured.recall) == PASSED
    assert 0 < measured.p50_ms <= measured.p95_ms
    assert result.passed and result.recall_seconds > 0


def test_the_figure_moves_with_the_index_an_ivfflat_with_too_many_lists_fails(searchable_store, backup_root):
    execute(searchable_store, IVFFLAT_MANY_LISTS)
    result = drilled(searchable_store, backup_root, queries=20)
    (measured,) = result.recall
    assert measured.method == "ivfflat"
    assert measured.recall < 0.7, measured.describe()
    assert result.recall_settings.verdict(measured.recall) == FAILED
    assert result.passed  # every row came back; search quality is its own check


def test_rows_at_the_same_distance_are_equally_right_answers(searchable_store, backup_root):
    """A store holding each chunk twenty times: the top 10 are all at distance 0, and the index
    names some of the tied rows, the exact scan others. Counted by row, recall falls far below
    the target with a sound index."""
    execute(searchable_store, f"""
        UPDATE {EMBEDDING_TABLE} e SET embedding = twin.embedding
        FROM (SELECT id, first_value(embedding) OVER (PARTITION BY collection_id, n / 20 ORDER BY n) AS embedding
              FROM (SELECT id, collection_id, embedding, row_number() OVER (PARTITION BY collection_id ORDER BY id) - 1 AS n
                    FROM {EMBEDDING_TABLE}) numbered) twin
        WHERE twin.id = e.id""")
    assert execute(searchable_store, f"SELECT count(DISTINCT embedding::text) * 20 >= count(*) FROM {EMBEDDING_TABLE}") == [(True,)]
    execute(searchable_store, HNSW)
    (measured,) = drilled(searchable_store, backup_root, queries=20).recall
    assert measured.recall >= 0.9, measured.describe()


def test_filtered_queries_without_iterative_scans_come_back_short_and_are_counted(empty_db, backup_root):
    fill_store(empty_db, embeddings=1500, dims=32)
    # One small collection among the rows: the HNSW scan's candidates are mostly the others'.
    execute(empty_db, f"""
        UPDATE {EMBEDDING_TABLE} SET collection_id = (SELECT min(collection_id::text)::uuid FROM {EMBEDDING_TABLE})
        WHERE collection_id <> (SELECT min(collection_id::text)::uuid FROM {EMBEDDING_TABLE})""")
    execute(empty_db, f"""
        UPDATE {EMBEDDING_TABLE} SET collection_id = (SELECT uuid FROM langchain_pg_collection ORDER BY uuid DESC LIMIT 1)
        WHERE id IN (SELECT id FROM {EMBEDDING_TABLE} ORDER BY md5(id) LIMIT 15)""")
    execute(empty_db, HNSW)
    off = drilled(empty_db, backup_root, queries=15, iterative_scan="off").recall[0]
    relaxed = drilled(empty_db, backup_root, queries=15, iterative_scan="relaxed_order").recall[0]
    assert off.short_answers > 0, off.describe()
    assert relaxed.short_answers < off.short_answers, (off.describe(), relaxed.describe())


def test_a_table_without_a_vector_index_has_nothing_to_measure(store_db, backup_root):
    result = drilled(store_db, backup_root, queries=5)
    assert result.recall == [] and result.passed


@pytest.mark.parametrize("recall, verdict", [(0.95, PASSED), (0.9, PASSED), (0.8, WARNING), (0.7, WARNING), (0.69, FAILED)])
def test_recall_below_the_target_warns_and_far_below_fails(recall, verdict):
    assert RecallSettings(target=0.9).verdict(recall) == verdict


def recall_evaluations(instance: dg.DagsterInstance, run_id: str) -> list:
    return [
        entry.dagster_event.event_specific_data
        for entry in instance.all_logs(run_id)
        if entry.dagster_event and entry.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
        and entry.dagster_event.event_specific_data.check_name == "search_recall"
    ]


@pytest.mark.parametrize("index, passed", [(HNSW, True), (IVFFLAT_MANY_LISTS, False)])
def test_the_drill_job_records_search_recall_on_the_embeddings_backup(
    monkeypatch, dagster_instance, store_db, backup_root, index, passed
):
    monkeypatch.setenv("VECTOR_ASSETS_RECALL_QUERIES", "10")
    execute(store_db, index)
    made = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    dagster_instance.add_dynamic_partitions("vector_backups", [made.timestamp])

    result = definitions().resolve_job_def("drill_vector_backup").execute_in_process(
        instance=dagster_instance, partition_key=made.timestamp
    )

    assert result.success  # every row came back either way; the check carries the search quality
    (evaluation,) = recall_evaluations(dagster_instance, result.run_id)
    assert evaluation.asset_key == backup_asset_key(EMBEDDING_TABLE) and evaluation.partition == made.timestamp
    assert evaluation.passed is passed
    recall = evaluation.metadata["recall"].value
    assert (recall >= 0.9) is passed and evaluation.metadata["queries"].value > 0
    if not passed:
        assert evaluation.severity == dg.AssetCheckSeverity.ERROR and evaluation.description.startswith("failed:")


def test_drill_json_prints_the_whole_result_and_the_exit_code_says_whether_it_passed(
    monkeypatch, capsys, store_db, backup_root
):
    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", store_db)
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", str(backup_root))
    monkeypatch.setenv("VECTOR_ASSETS_RECALL_QUERIES", "10")
    execute(store_db, IVFFLAT_MANY_LISTS)
    run_backup(BackupRequest(dsn=store_db, root=backup_root))
    capsys.readouterr()

    failing = main(["drill", "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert failing == EXIT_FAILED and printed["passed"] is True  # rows identical, search quality failed
    (index,) = printed["search_recall"]["indexes"]
    assert printed["search_recall"]["verdict"] == "failed" and index["recall"] < 0.7 and index["queries"] > 0
    assert [t["table"] for t in printed["tables"]] == [COLLECTION_TABLE, EMBEDDING_TABLE]

    monkeypatch.setenv("VECTOR_ASSETS_RECALL_TARGET", "0.01")  # the same index, judged against a lax target
    assert main(["drill"]) == EXIT_OK
    assert "ok   search: langchain_pg_embedding embedding_ivfflat (ivfflat): recall@10" in capsys.readouterr().out


def test_a_bad_recall_target_is_refused_in_one_line_before_the_drill(monkeypatch, capsys, store_db, backup_root):
    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", store_db)
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", str(backup_root))
    run_backup(BackupRequest(dsn=store_db, root=backup_root))
    monkeypatch.setenv("VECTOR_ASSETS_RECALL_TARGET", "ninety")
    capsys.readouterr()
    assert main(["drill"]) == EXIT_FAILED
    error = capsys.readouterr().err.strip()
    assert "VECTOR_ASSETS_RECALL_TARGET must be a recall between 0 and 1" in error and "\n" not in error
    assert execute(store_db, "SELECT count(*) FROM pg_database WHERE datname LIKE 'vector_assets_drill_%'") == [(0,)]


def test_the_newest_set_answers_as_the_live_tables_do_and_a_change_since_shows(searchable_store, backup_root):
    execute(searchable_store, HNSW)
    result = drilled(searchable_store, backup_root, queries=10)
    (measured,) = result.recall
    assert result.live_compared == "compared with the live tables: the newest set"
    assert measured.live_queries == measured.queries and measured.live_differences == 0

    # Every row of one collection moved far away: its queries' exact answers now differ live.
    execute(searchable_store, f"""
        UPDATE {EMBEDDING_TABLE} SET embedding = array_fill(1000::real, ARRAY[32])::vector
        WHERE collection_id = (SELECT min(collection_id::text)::uuid FROM {EMBEDDING_TABLE})""")
    drill = run_drill(DrillRequest(dsn=searchable_store, root=backup_root, recall=RecallSettings(queries=10)))
    (changed,) = drill.recall
    assert changed.live_differences == 10, changed.describe()  # one collection's 10 queries, the others the same
    assert f"10 of {changed.live_queries} exact answers differ from the live table" in changed.describe()


def test_an_older_set_is_not_compared_with_the_live_tables(searchable_store, backup_root):
    execute(searchable_store, HNSW)
    first = run_backup(BackupRequest(dsn=searchable_store, root=backup_root, format="pgcopy"))
    run_backup(BackupRequest(dsn=searchable_store, root=backup_root, format="pgcopy"))
    result = run_drill(DrillRequest(dsn=searchable_store, root=backup_root, key=first.timestamp,
                                    recall=RecallSettings(queries=5)))
    assert result.live_compared == "not compared with the live tables: not the newest set under the root"
    assert all(measured.live_queries == 0 for measured in result.recall)


# A table without a primary key, as a hand-made store often is, holding some rows twice.
NOTES = """
CREATE TABLE notes (title text, embedding vector(16));
INSERT INTO notes SELECT 'note ' || g,
  ('[' || array_to_string(ARRAY(SELECT sin(g * k + k) FROM generate_series(1, 16) k), ',') || ']')::vector
  FROM generate_series(1, 600) g;
INSERT INTO notes SELECT * FROM notes WHERE title LIKE 'note 1%';
CREATE INDEX notes_embedding ON notes USING hnsw (embedding vector_l2_ops);
"""
NOTES_STORE = Store("notes", "tables", (StoreTable("notes", TableRole.VECTORS),), dsn_variable="NOTES_PG_DSN")


def test_a_table_without_a_primary_key_drills_and_names_its_answers_by_the_whole_row(empty_db, backup_root):
    execute(empty_db, NOTES)
    run_backup(BackupRequest(dsn=empty_db, root=backup_root, format="pgcopy", store=NOTES_STORE))
    # every row rewritten as it was: the live rows now sit elsewhere in the table than the restored ones
    execute(empty_db, "UPDATE notes SET title = title")

    result = run_drill(DrillRequest(dsn=empty_db, root=backup_root, store=NOTES_STORE, recall=RecallSettings(queries=20)))

    (measured,) = result.recall
    assert result.passed and (measured.table, measured.index, measured.queries) == ("notes", "notes_embedding", 20)
    assert measured.recall >= 0.9, measured.describe()
    assert (measured.live_queries, measured.live_differences) == (20, 0), measured.describe()

    # Without a key a row is its content: a retitled row is another row, so every answer differs.
    execute(empty_db, "UPDATE notes SET title = title || ' (edited)'")
    (edited,) = run_drill(DrillRequest(dsn=empty_db, root=backup_root, store=NOTES_STORE,
                                       recall=RecallSettings(queries=20))).recall
    assert (edited.live_queries, edited.live_differences) == (20, 20), edited.describe()


def test_the_drill_job_of_a_store_whose_table_has_no_primary_key_records_its_recall(
    empty_db, backup_root, tmp_path, monkeypatch
):
    execute(empty_db, NOTES)
    stores = tmp_path / "stores"
    declare(stores, "notes", dsn_env="NOTES_PG_DSN", layout="tables", tables="[notes]")
    monkeypatch.setenv("VECTOR_ASSETS_STORES_DIR", str(stores))
    monkeypatch.delenv("VECTOR_ASSETS_PG_DSN", raising=False)
    monkeypatch.setenv("NOTES_PG_DSN", empty_db)
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", str(backup_root))
    monkeypatch.setenv("VECTOR_ASSETS_RECALL_QUERIES", "10")
    defs = load_definitions()
    with dg.instance_for_test() as instance:
        assert defs.resolve_job_def("notes_backup_vector_tables").execute_in_process(instance=instance).success
        (key,) = instance.get_dynamic_partitions("notes_vector_backups")

        drill = defs.resolve_job_def("notes_drill_vector_backup").execute_in_process(instance=instance, partition_key=key)

        assert drill.success
        (evaluation,) = recall_evaluations(instance, drill.run_id)
    assert evaluation.asset_key == dg.AssetKey(["notes", "notes_backup"]) and evaluation.passed
    assert evaluation.metadata["queries"].value == 10 and evaluation.metadata["recall"].value >= 0.9
