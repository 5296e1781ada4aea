"""Data checks at backup time: each count finds the broken rows planted for it, and only them,
in the snapshot the backup reads; a clean store counts zero everywhere; the counts reach the
partition's metadata and a non-blocking ``vector_data_quality`` check in a real Dagster run."""

from __future__ import annotations

import dagster as dg
import pytest

from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.pg.data_checks import DataChecks
from vector_assets.core.sets.writer import PartPolicy
from vector_assets.core.stores import Store, StoreTable, TableRole, langchain_store
from vector_assets.core.tables import EMBEDDING_TABLE
from vector_assets_tests.support.dagster import DEFAULT_KEYS, Ticker, partition_metadata, run_job
from vector_assets_tests.support.database import execute, fill_store

DIMS = 8
CHECK = "vector_data_quality"
CLEAN = {"wrong_dimensions": 0, "null_vectors": 0, "zero_vectors": 0, "duplicate_ids": 0, "missing_collection": 0,
         "empty_documents": 0}


def backed_up_checks(dsn: str, root, store: Store | None = None, table: str = EMBEDDING_TABLE, fmt: str = "csv") -> DataChecks:
    result = run_backup(BackupRequest(dsn=dsn, root=root, format=fmt, store=store or langchain_store()))
    return result.manifest.tables[table].data_checks


def clean_documents(dsn: str) -> None:
    """The demo store holds an empty and a NULL document on purpose (the CSV round trip); a clean store has neither."""
    execute(dsn, "UPDATE langchain_pg_embedding SET document = 'a document' WHERE document IS NULL OR btrim(document) = ''")


def some_rows(dsn: str, count: int) -> list[str]:
    """Keys (``uuid``, older layout) of rows with a document, in a fixed order, picked before anything is planted."""
    rows = execute(dsn, "SELECT uuid::text FROM langchain_pg_embedding WHERE btrim(document) <> '' ORDER BY custom_id LIMIT %s", (count,))
    return [key for (key,) in rows]


def where_key_in(keys: list[str]) -> str:
    return "uuid IN (" + ", ".join(f"'{key}'" for key in keys) + ")"


def plant_broken_rows(dsn: str) -> None:
    """In the older layout, with the vector column undeclared and no foreign key: each kind of
    broken row, in a known number. Counts are chosen to differ, so a count read from the wrong
    place cannot pass. The demo already holds 2 empty documents ('' and NULL)."""
    execute(dsn, "ALTER TABLE langchain_pg_embedding ALTER COLUMN embedding TYPE vector")
    execute(dsn, "ALTER TABLE langchain_pg_embedding DROP CONSTRAINT langchain_pg_embedding_collection_id_fkey")
    rows = some_rows(dsn, 20)
    # 1 vector of 3 dimensions in a collection of 8-dimensional ones
    execute(dsn, f"UPDATE langchain_pg_embedding SET embedding = '[1,2,3]' WHERE {where_key_in(rows[0:1])}")
    # 2 NULL vectors
    execute(dsn, f"UPDATE langchain_pg_embedding SET embedding = NULL WHERE {where_key_in(rows[1:3])}")
    # 3 all-zero vectors
    zero = "[" + ",".join("0" for _ in range(DIMS)) + "]"
    execute(dsn, f"UPDATE langchain_pg_embedding SET embedding = '{zero}' WHERE {where_key_in(rows[3:6])}")
    # 4 repeats of a custom_id within its collection: one row copied 3 times, another once
    for key, copies in ((rows[6], 3), (rows[7], 1)):
        execute(dsn, f"""INSERT INTO langchain_pg_embedding (uuid, collection_id, embedding, document, cmetadata, custom_id)
                         SELECT gen_random_uuid(), collection_id, embedding, document, cmetadata, custom_id
                         FROM langchain_pg_embedding, generate_series(1, {copies}) WHERE uuid = '{key}'""")
    # the same custom_id in another collection is no repeat
    execute(dsn, f"""INSERT INTO langchain_pg_embedding (uuid, collection_id, embedding, document, cmetadata, custom_id)
                     SELECT gen_random_uuid(), (SELECT uuid FROM langchain_pg_collection WHERE uuid <> e.collection_id LIMIT 1),
                            embedding, document, cmetadata, custom_id
                     FROM langchain_pg_embedding e WHERE uuid = '{rows[8]}'""")
    # 5 rows of a missing collection: 4 naming one that does not exist, 1 naming none
    execute(dsn, f"""INSERT INTO langchain_pg_embedding (uuid, collection_id, embedding, document, custom_id)
                     SELECT gen_random_uuid(), CASE WHEN n < 5 THEN gen_random_uuid() END, embedding, document, 'orphan-' || n
                     FROM langchain_pg_embedding, generate_series(1, 5) n WHERE uuid = '{rows[9]}'""")
    # 6 empty documents: the demo's two, and 4 more (blank, whitespace only)
    execute(dsn, f"UPDATE langchain_pg_embedding SET document = ' ' WHERE {where_key_in(rows[10:12])}")
    execute(dsn, f"UPDATE langchain_pg_embedding SET document = E'\\t\\n ' WHERE {where_key_in(rows[12:14])}")


def test_each_data_check_counts_the_rows_planted_for_it(empty_db, backup_root):
    fill_store(empty_db, layout="community", embeddings=300, dims=DIMS)
    plant_broken_rows(empty_db)
    checks = backed_up_checks(empty_db, backup_root)
    assert checks.counts() == {"wrong_dimensions": 1, "null_vectors": 2, "zero_vectors": 3, "duplicate_ids": 4,
                               "missing_collection": 5, "empty_documents": 6}
    assert checks.seconds > 0
    assert checks.describe().startswith("1 vector of another dimension, 2 NULL vectors, 3 all-zero vectors")


def test_a_collection_is_held_to_its_own_dimension(empty_db, backup_root):
    """Without a declared dimension, each collection's vectors are held to what most of that
    collection has: a whole collection of another dimension is not wrong, one odd vector is."""
    fill_store(empty_db, layout="community", embeddings=300, dims=DIMS)
    execute(empty_db, "ALTER TABLE langchain_pg_embedding ALTER COLUMN embedding TYPE vector")
    execute(empty_db, """UPDATE langchain_pg_embedding SET embedding = '[1,2,3,4]'
                         WHERE collection_id = (SELECT uuid FROM langchain_pg_collection ORDER BY name LIMIT 1)""")
    assert backed_up_checks(empty_db, backup_root).wrong_dimensions == 0
    execute(empty_db, """UPDATE langchain_pg_embedding SET embedding = '[1,2,3,4]'
                         WHERE uuid = (SELECT uuid FROM langchain_pg_embedding WHERE collection_id =
                                       (SELECT uuid FROM langchain_pg_collection ORDER BY name DESC LIMIT 1) LIMIT 1)""")
    assert backed_up_checks(empty_db, backup_root).wrong_dimensions == 1


@pytest.mark.parametrize("layout", ["current", "community"])
def test_a_clean_store_counts_zero_everywhere(empty_db, backup_root, layout):
    fill_store(empty_db, layout=layout, embeddings=300, dims=DIMS)
    clean_documents(empty_db)
    result = run_backup(BackupRequest(dsn=empty_db, root=backup_root, format="pgcopy"))
    checks = result.manifest.tables[EMBEDDING_TABLE].data_checks
    assert checks.counts() == CLEAN and checks.problems() == {}
    assert result.manifest.tables["langchain_pg_collection"].data_checks is None  # no vectors to check
    assert checks.describe().startswith("no vectors of another dimension, NULL vectors")


def test_the_counts_are_of_the_snapshot_the_backup_reads(empty_db, backup_root):
    """Counted in the backup's transaction: rows that a set holds are the rows it counted, also
    when the data file is written in parts on other connections."""
    fill_store(empty_db, layout="current", embeddings=300, dims=DIMS)
    clean_documents(empty_db)
    execute(empty_db, "UPDATE langchain_pg_embedding SET document = '' WHERE id IN (SELECT id FROM langchain_pg_embedding ORDER BY id LIMIT 7)")
    result = run_backup(BackupRequest(dsn=empty_db, root=backup_root, format="pgcopy", parts=PartPolicy(part_bytes=8192)))
    entry = result.manifest.tables[EMBEDDING_TABLE]
    assert len(entry.parts) > 1
    assert entry.data_checks.empty_documents == 7


def test_a_declared_dimension_counts_zero_vectors_and_blank_documents_as_the_plain_definitions_do(empty_db, backup_root):
    """Declared columns take the cheap tests: equality with the zero vector (a negative zero is
    zero, a tiny last component is not) and a first visible ASCII character; the counts are the
    ones the plain definitions give (norm 0; NULL or only white space by the regex) in the same
    database, whose locale decides what white space is beyond ASCII."""
    fill_store(empty_db, layout="current", embeddings=300, dims=DIMS)
    clean_documents(empty_db)
    zeros = ["[" + ",".join(["0"] * DIMS) + "]", "[-0" + ",0" * (DIMS - 1) + "]"]
    nearly_zero = "[" + ",".join(["0"] * (DIMS - 1)) + ",1e-30]"
    vectors = [zeros[0], zeros[0], zeros[1], nearly_zero]
    documents = ["", " ", "\t\n \r", "\u3000", "\u00a0 ", "x", " x", "\u00e9t\u00e9", "\t.", None, "\x7f"]
    rows = execute(empty_db, "SELECT id FROM langchain_pg_embedding ORDER BY id LIMIT %s", (len(vectors) + len(documents),))
    for (key,), vector in zip(rows, vectors):
        execute(empty_db, "UPDATE langchain_pg_embedding SET embedding = %s WHERE id = %s", (vector, key))
    for (key,), document in zip(rows[len(vectors):], documents):
        execute(empty_db, "UPDATE langchain_pg_embedding SET document = %s WHERE id = %s", (document, key))
    ((zero_by_norm, blank_by_regex),) = execute(empty_db, r"""
        SELECT count(*) FILTER (WHERE vector_norm(embedding) = 0),
               count(*) FILTER (WHERE document IS NULL OR document ~ '^\s*$') FROM langchain_pg_embedding""")
    checks = backed_up_checks(empty_db, backup_root, fmt="pgcopy")
    assert (checks.zero_vectors, checks.empty_documents) == (zero_by_norm, blank_by_regex)
    assert zero_by_norm == 3 and blank_by_regex >= 4  # '', ' ', tab-newline-space-return, NULL; beyond ASCII per locale


def test_a_llamaindex_table_counts_repeated_node_ids_and_zero_halfvecs(empty_db, backup_root):
    """Another layout, another document column (text) and client id (node_id); no collections,
    so a missing collection is not a check there; halfvec vectors are checked with l2_norm."""
    execute(empty_db, """CREATE TABLE data_docs (id BIGSERIAL PRIMARY KEY, text VARCHAR NOT NULL, metadata_ JSON,
                                                 node_id VARCHAR, embedding halfvec(3))""")
    execute(empty_db, """INSERT INTO data_docs (text, node_id, embedding)
                         SELECT 'doc ' || n, 'node-' || (n % 48), ('[' || n || ',1,2]')::halfvec FROM generate_series(1, 50) n""")
    execute(empty_db, "INSERT INTO data_docs (text, node_id, embedding) VALUES ('', NULL, '[0,0,0]'), ('x', NULL, NULL)")
    store = Store("docs", "llamaindex", (StoreTable("data_docs", TableRole.VECTORS),))
    checks = backed_up_checks(empty_db, backup_root, store, "data_docs")
    assert checks.counts() == {"wrong_dimensions": 0, "null_vectors": 1, "zero_vectors": 1, "duplicate_ids": 2,
                               "empty_documents": 1}
    assert checks.missing_collection is None


def test_a_backup_run_warns_on_broken_rows_and_the_partition_shows_the_counts(dagster_instance, store_db):
    """A real backup run: the counts in the partition's metadata and a WARN check that does not fail the run."""
    execute(store_db, "UPDATE langchain_pg_embedding SET embedding = NULL WHERE id IN (SELECT id FROM langchain_pg_embedding ORDER BY id LIMIT 2)")
    result = run_job(dagster_instance, "backup_vector_tables")
    assert result.success
    (key,) = dagster_instance.get_dynamic_partitions("vector_backups")
    metadata = partition_metadata(dagster_instance, EMBEDDING_TABLE, key)
    assert metadata["null_vectors"] == 2 and metadata["empty_documents"] == 2 and metadata["zero_vectors"] == 0
    evaluations = run_evaluations(dagster_instance, result.run_id)
    (evaluation,) = [e for e in evaluations if e.check_name == CHECK]
    assert evaluation.asset_key == DEFAULT_KEYS.backup_key(EMBEDDING_TABLE) and evaluation.partition == key
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.description == f"{EMBEDDING_TABLE}: 2 NULL vectors, 2 empty documents"
    assert evaluation.metadata["null_vectors"].value == 2


def test_a_clean_backup_run_passes_and_a_set_written_outside_dagster_is_checked_by_the_sensor(
    dagster_instance, store_db, backup_root,
):
    clean_documents(store_db)
    result = run_job(dagster_instance, "backup_vector_tables")
    (evaluation,) = [e for e in run_evaluations(dagster_instance, result.run_id) if e.check_name == CHECK]
    assert evaluation.passed
    execute(store_db, "UPDATE langchain_pg_embedding SET document = NULL WHERE id IN (SELECT id FROM langchain_pg_embedding ORDER BY id LIMIT 3)")
    written = run_backup(BackupRequest(dsn=store_db, root=backup_root))  # the CLI's way, without Dagster
    Ticker(dagster_instance).tick()
    records = dagster_instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(DEFAULT_KEYS.backup_key(EMBEDDING_TABLE), CHECK), limit=10,
    )
    by_partition = {record.event.dagster_event.event_specific_data.partition: record.event.dagster_event.event_specific_data
                    for record in records}
    sensed = by_partition[written.timestamp]
    assert not sensed.passed and sensed.severity == dg.AssetCheckSeverity.WARN
    assert sensed.description == f"{EMBEDDING_TABLE}: 3 empty documents"


def run_evaluations(instance: dg.DagsterInstance, run_id: str) -> list[dg.AssetCheckEvaluation]:
    records = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    return [record.dagster_event.event_specific_data for record in records]


def test_checks_the_server_refuses_are_recorded_as_not_counted_and_the_backup_goes_on(empty_db, backup_root):
    """A store of its own making (the collection reference a varchar): the checks' join is refused,
    rolled back to a savepoint, and the set is written all the same, saying why nothing was counted."""
    fill_store(empty_db, layout="current", embeddings=30, dims=DIMS)
    execute(empty_db, "ALTER TABLE langchain_pg_embedding DROP CONSTRAINT langchain_pg_embedding_collection_id_fkey")
    execute(empty_db, "ALTER TABLE langchain_pg_embedding ALTER COLUMN collection_id TYPE varchar")
    result = run_backup(BackupRequest(dsn=empty_db, root=backup_root))
    checks = result.manifest.tables[EMBEDDING_TABLE].data_checks
    assert result.manifest.tables[EMBEDDING_TABLE].rows == 30
    assert checks.counts() == {} and checks.failed == (
        f"the server refused the checks' statement (UNDEFINED_FUNCTION) on {EMBEDDING_TABLE}")
    assert checks.describe().startswith("not counted: ")


def test_tables_in_a_schema_of_their_own_are_checked_each_by_what_it_has(empty_db, backup_root):
    """A ``tables`` store in a schema: the chunks' document is ``content``, their vectors halfvec; the
    documents' ``title`` is no document-like name, so they get no empty-document count."""
    execute(empty_db, """
        CREATE SCHEMA kb;
        CREATE TABLE kb.documents (id BIGSERIAL PRIMARY KEY, title TEXT NOT NULL, embedding vector(3));
        CREATE TABLE kb.chunks (doc_id BIGINT NOT NULL REFERENCES kb.documents (id), seq INT NOT NULL,
                                content TEXT, embedding halfvec(3) NOT NULL, PRIMARY KEY (doc_id, seq));
        INSERT INTO kb.documents (title, embedding) SELECT 'doc ' || g, '[1,2,3]' FROM generate_series(1, 10) g;
        INSERT INTO kb.chunks SELECT d, s, 'chunk', '[1,1,1]' FROM generate_series(1, 10) d, generate_series(1, 2) s;
        UPDATE kb.documents SET embedding = NULL WHERE id IN (1, 2, 3);
        UPDATE kb.chunks SET content = '' WHERE doc_id = 4;
        UPDATE kb.chunks SET embedding = '[0,0,0]' WHERE doc_id = 5 AND seq = 1;
    """)
    store = Store("kb", "tables", (StoreTable("kb.chunks", TableRole.VECTORS), StoreTable("kb.documents", TableRole.VECTORS)))
    tables = run_backup(BackupRequest(dsn=empty_db, root=backup_root, store=store, format="pgcopy.zst")).manifest.tables
    assert tables["kb.documents"].data_checks.counts() == {"wrong_dimensions": 0, "null_vectors": 3, "zero_vectors": 0}
    assert tables["kb.chunks"].data_checks.counts() == {"wrong_dimensions": 0, "null_vectors": 0, "zero_vectors": 1,
                                                         "empty_documents": 2}
