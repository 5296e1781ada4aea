"""Stores of other layouts than LangChain's: tables in a schema of their own, tables whose load
order only the catalog's foreign keys know, a pgai embedding store beside its source table with
triggers a restore must not fire, and sets that restore into their own store only."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from vector_assets.core.errors import (
    ConfigError,
    SourceTableMissingError,
    TriggersError,
    WrongStoreError,
)
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.drill import DrillRequest, run_drill
from vector_assets.core.ops.prune import PruneRequest, run_prune
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets.core.ops.truncate import TruncateRequest, run_guarded_truncate
from vector_assets.core.sets.catalog import scan_root
from vector_assets.core.sets.retention import RetentionPolicy
from vector_assets.core.stores import Store, StoreTable, TableRole
from vector_assets.definitions import defs as load_definitions
from vector_assets_tests.support.database import execute, fresh_database, rows_as_text
from vector_assets_tests.support.files import folder_snapshot

DIMS = 8
KB_TABLES = """
CREATE SCHEMA kb;
CREATE TABLE kb.documents (id BIGSERIAL PRIMARY KEY, title TEXT NOT NULL, embedding vector(8));
CREATE TABLE kb.chunks (
  doc_id BIGINT NOT NULL REFERENCES kb.documents (id) ON DELETE CASCADE, seq INT NOT NULL,
  content TEXT, embedding halfvec(8) NOT NULL, PRIMARY KEY (doc_id, seq));
CREATE INDEX chunks_embedding ON kb.chunks USING hnsw (embedding halfvec_l2_ops) WITH (m = 8, ef_construction = 32);
INSERT INTO kb.documents (title, embedding)
  SELECT 'doc ' || g, ('[' || array_to_string(ARRAY(SELECT sin(g * k) FROM generate_series(1, 8) k), ',') || ']')::vector
  FROM generate_series(1, 40) g;
INSERT INTO kb.chunks SELECT d, s, 'chunk ' || d || '.' || s,
  ('[' || array_to_string(ARRAY(SELECT cos(d * s + k) FROM generate_series(1, 8) k), ',') || ']')::halfvec
  FROM generate_series(1, 40) d, generate_series(1, 3) s;
"""
# pgai's vectorizer keeps <source>_embedding_store in step with <source> through triggers on the
# source; this one records what it would queue for embedding.
PGAI_TABLES = """
CREATE TABLE blog (id INT PRIMARY KEY, title TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE blog_embedding_store (
  embedding_uuid UUID PRIMARY KEY DEFAULT gen_random_uuid(), id INT NOT NULL, chunk_seq INT NOT NULL,
  chunk TEXT NOT NULL, embedding vector(8) NOT NULL, UNIQUE (id, chunk_seq));
CREATE TABLE embedding_queue (id INT, queued_at TIMESTAMPTZ DEFAULT now());
CREATE FUNCTION queue_for_embedding() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO embedding_queue (id) VALUES (NEW.id); RETURN NEW; END $$;
CREATE TRIGGER blog_to_embed AFTER INSERT OR UPDATE ON blog FOR EACH ROW EXECUTE FUNCTION queue_for_embedding();
INSERT INTO blog SELECT g, 'post ' || g, repeat('text ', g) FROM generate_series(1, 30) g;
INSERT INTO blog_embedding_store (id, chunk_seq, chunk, embedding)
  SELECT g, 0, 'post ' || g, ('[' || array_to_string(ARRAY(SELECT sin(g + k) FROM generate_series(1, 8) k), ',') || ']')::vector
  FROM generate_series(1, 30) g;
TRUNCATE embedding_queue;
"""

# Listed child first: only the catalog's foreign key says documents load before chunks.
KB_STORE = Store("kb", "tables", (StoreTable("kb.chunks", TableRole.VECTORS), StoreTable("kb.documents", TableRole.VECTORS)),
                 dsn_variable="KB_PG_DSN")
PGAI_STORE = Store("blog", "pgai", (StoreTable("blog", TableRole.SOURCE),
                                    StoreTable("blog_embedding_store", TableRole.VECTORS)), dsn_variable="BLOG_PG_DSN")


@pytest.fixture
def kb_db(maintenance_dsn):
    with fresh_database(maintenance_dsn) as dsn:
        execute(dsn, KB_TABLES)
        yield dsn


@pytest.fixture
def blog_db(maintenance_dsn):
    with fresh_database(maintenance_dsn) as dsn:
        execute(dsn, PGAI_TABLES)
        yield dsn


def kb_state(dsn: str) -> dict:
    return {
        "documents": rows_as_text(dsn, "documents", schema="kb"),
        "chunks": rows_as_text(dsn, "chunks", schema="kb"),
        "indexes": execute(dsn, "SELECT indexdef FROM pg_indexes WHERE schemaname = 'kb' ORDER BY indexname"),
        "foreign keys": execute(dsn, "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                                     "WHERE contype = 'f' AND connamespace = 'kb'::regnamespace"),
    }


@pytest.mark.parametrize("fmt", ["csv", "pgcopy.zst"])
def test_a_store_in_a_schema_of_its_own_round_trips_into_the_same_and_an_empty_database(kb_db, maintenance_dsn, tmp_path, fmt):
    before = kb_state(kb_db)
    backup = run_backup(BackupRequest(dsn=kb_db, root=tmp_path, format=fmt, store=KB_STORE))
    assert list(backup.manifest.tables) == ["kb.documents", "kb.chunks"]  # the foreign key's order, not the list's
    assert (backup.manifest.store, backup.manifest.layout) == ("kb", "tables")

    execute(kb_db, "DELETE FROM kb.documents WHERE id > 30; UPDATE kb.chunks SET content = 'changed'")
    run_restore(RestoreRequest(target_dsn=kb_db, root=tmp_path, timestamp=backup.timestamp, store=KB_STORE,
                               truncate_before_restore=True))
    assert kb_state(kb_db) == before

    with fresh_database(maintenance_dsn) as empty:
        result = run_restore(RestoreRequest(target_dsn=empty, root=tmp_path, timestamp=backup.timestamp, store=KB_STORE))
        assert result.tables_created == ["kb.documents", "kb.chunks"]
        assert kb_state(empty) == before
        execute(empty, "INSERT INTO kb.documents (title) VALUES ('after the restore')")  # the sequence is past the rows
        assert execute(empty, "SELECT max(id) FROM kb.documents") == [(41,)]


def test_a_store_in_a_schema_of_its_own_drills(kb_db, tmp_path):
    run_backup(BackupRequest(dsn=kb_db, root=tmp_path, format="pgcopy", store=KB_STORE))
    drill = run_drill(DrillRequest(dsn=kb_db, root=tmp_path, store=KB_STORE))
    assert drill.passed, drill
    assert {table.table: table.rows_restored for table in drill.tables} == {"kb.documents": 40, "kb.chunks": 120}


def blog_state(dsn: str) -> dict:
    return {
        "blog": rows_as_text(dsn, "blog"),
        "store": rows_as_text(dsn, "blog_embedding_store"),
        "queued": execute(dsn, "SELECT count(*) FROM embedding_queue"),
        "triggers": execute(dsn, "SELECT tgname, tgenabled FROM pg_trigger WHERE NOT tgisinternal"),
    }


def test_a_restore_does_not_fire_the_source_tables_triggers_and_leaves_them_on(blog_db, tmp_path):
    before = blog_state(blog_db)
    backup = run_backup(BackupRequest(dsn=blog_db, root=tmp_path, store=PGAI_STORE))
    result = run_restore(RestoreRequest(target_dsn=blog_db, root=tmp_path, timestamp=backup.timestamp,
                                        store=PGAI_STORE, truncate_before_restore=True))
    assert result.triggers_held == ["blog.blog_to_embed"]
    assert blog_state(blog_db) == before  # nothing queued for embedding again; the trigger is on as it was
    assert before["triggers"] == [("blog_to_embed", "O")]
    execute(blog_db, "INSERT INTO blog VALUES (99, 'new', 'text')")  # and it fires for the application
    assert execute(blog_db, "SELECT id FROM embedding_queue") == [(99,)]


def test_a_restore_told_to_fire_the_triggers_fires_them(blog_db, tmp_path):
    backup = run_backup(BackupRequest(dsn=blog_db, root=tmp_path, store=PGAI_STORE))
    result = run_restore(RestoreRequest(target_dsn=blog_db, root=tmp_path, timestamp=backup.timestamp,
                                        store=PGAI_STORE, truncate_before_restore=True, fire_triggers=True))
    assert result.triggers_held == []
    assert execute(blog_db, "SELECT count(*) FROM embedding_queue") == [(30,)]


def test_a_role_that_may_not_turn_the_triggers_off_is_stopped_before_anything_changes(blog_db, tmp_path):
    backup = run_backup(BackupRequest(dsn=blog_db, root=tmp_path, store=PGAI_STORE))
    loader = f"va_loader_{uuid.uuid4().hex[:8]}"  # roles are the server's, not the test database's
    execute(blog_db, f"CREATE ROLE {loader} LOGIN; GRANT ALL ON ALL TABLES IN SCHEMA public TO {loader}; "
                     f"GRANT CREATE ON SCHEMA public TO {loader}")
    try:
        loader_dsn = blog_db.replace("user=postgres", f"user={loader}")
        assert loader_dsn != blog_db
        before, files = blog_state(blog_db), folder_snapshot(tmp_path)
        with pytest.raises(TriggersError) as refused:
            run_restore(RestoreRequest(target_dsn=loader_dsn, root=tmp_path, timestamp=backup.timestamp,
                                       store=PGAI_STORE, truncate_before_restore=True))
        message = str(refused.value)
        assert "\n" not in message
        assert message.startswith("table blog has trigger blog_to_embed, which the restore would fire for every row")
        assert "--fire-triggers" in message
        assert blog_state(blog_db) == before and folder_snapshot(tmp_path) == files
    finally:
        execute(blog_db, f"REASSIGN OWNED BY {loader} TO postgres; DROP OWNED BY {loader}; DROP ROLE {loader}")


def test_an_embedding_store_alone_is_not_restored_without_its_source_table(blog_db, maintenance_dsn, tmp_path):
    backup = run_backup(BackupRequest(dsn=blog_db, root=tmp_path, store=PGAI_STORE))
    with fresh_database(maintenance_dsn) as empty:
        with pytest.raises(SourceTableMissingError) as refused:
            run_restore(RestoreRequest(target_dsn=empty, root=tmp_path, timestamp=backup.timestamp, store=PGAI_STORE,
                                       tables=("blog_embedding_store",)))
        assert str(refused.value) == (
            "table blog_embedding_store is made from table blog, which the target lacks: restore blog first or with "
            "it (--tables); nothing was changed"
        )
        assert execute(empty, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
        run_restore(RestoreRequest(target_dsn=empty, root=tmp_path, timestamp=backup.timestamp, store=PGAI_STORE))
        assert rows_as_text(empty, "blog_embedding_store") == rows_as_text(blog_db, "blog_embedding_store")


def test_a_set_restores_into_its_own_stores_tables_only(blog_db, tmp_path):
    backup = run_backup(BackupRequest(dsn=blog_db, root=tmp_path, store=PGAI_STORE))
    other = Store("other_blog", "pgai", PGAI_STORE.tables, dsn_variable="OTHER_PG_DSN")
    before, files = blog_state(blog_db), folder_snapshot(tmp_path)
    with pytest.raises(WrongStoreError) as refused:
        run_restore(RestoreRequest(target_dsn=blog_db, root=tmp_path, timestamp=backup.timestamp, store=other,
                                   truncate_before_restore=True))
    assert str(refused.value) == (
        f"set {backup.timestamp} is of store 'blog' (layout pgai), not of store 'other_blog': restore it with "
        "--store blog; nothing was changed"
    )
    assert blog_state(blog_db) == before and folder_snapshot(tmp_path) == files
    assert [s.manifest.store for s in scan_root(tmp_path)] == ["blog"]


def declare(folder: Path, name: str, layout: str, tables: str) -> Path:
    path = folder / name / "defs.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(f"type: vector_assets.VectorStore\nattributes:\n  name: {name}\n  dsn_env: KB_PG_DSN\n"
                    f"  layout: {layout}\n  tables: {tables}\n")
    return path


@pytest.mark.parametrize("tables, problem", [
    ("[kb.chunks, kb.missing]", "'kb.missing' is not a table of this database"),
    ("[kb.chunks, public.plain]", "'public.plain' holds no vector, halfvec, sparsevec or bit column"),
    ("[kb.documents, kb.chunks, kb.old_chunks]",
     "kb.chunks has child tables (kb.old_chunks) whose rows a COPY of it leaves out; "
     "declare them as tables of the store too, or move their rows into it"),
])
def test_the_load_refuses_a_declared_table_the_database_lacks_or_that_holds_no_vectors(
    kb_db, tmp_path, monkeypatch, tables, problem
):
    execute(kb_db, "CREATE TABLE public.plain (id INT PRIMARY KEY, note TEXT)")
    if "old_chunks" in tables:
        execute(kb_db, "CREATE TABLE kb.old_chunks () INHERITS (kb.chunks)")
    stores = tmp_path / "stores"
    path = declare(stores, "kb", "tables", tables)
    monkeypatch.setenv("VECTOR_ASSETS_STORES_DIR", str(stores))
    monkeypatch.delenv("VECTOR_ASSETS_PG_DSN", raising=False)
    monkeypatch.setenv("KB_PG_DSN", kb_db)
    with pytest.raises(ConfigError) as refused:
        load_definitions()
    assert str(refused.value) == f"{path}: tables: {problem} (KB_PG_DSN)"

    execute(kb_db, "DROP TABLE IF EXISTS kb.old_chunks")
    path.write_text(path.read_text().replace(tables, "[kb.chunks, kb.documents]"))
    assert load_definitions().resolve_assets_def(("kb", "kb.chunks")) is not None


def test_a_declared_store_whose_database_is_down_still_loads(tmp_path, monkeypatch):
    stores = tmp_path / "stores"
    declare(stores, "kb", "tables", "[kb.missing]")
    monkeypatch.setenv("VECTOR_ASSETS_STORES_DIR", str(stores))
    monkeypatch.delenv("VECTOR_ASSETS_PG_DSN", raising=False)
    monkeypatch.setenv("KB_PG_DSN", "postgresql://nobody@127.0.0.1:1/none")
    assert load_definitions().resolve_assets_def(("kb", "kb.missing")) is not None


def test_two_stores_restored_at_once_leave_each_others_tables_as_they_were(maintenance_dsn, tmp_path):
    """kb and blog in one database, restored at the same moment (replace mode) into it and into
    another: each comes back as its set holds it. Then kb restored while blog is backed up:
    blog's tables are byte-identical."""
    with fresh_database(maintenance_dsn) as shared, fresh_database(maintenance_dsn) as other:
        execute(shared, KB_TABLES + PGAI_TABLES)
        roots = {"kb": tmp_path / "kb", "blog": tmp_path / "blog"}
        sets = {store.name: run_backup(BackupRequest(dsn=shared, root=roots[store.name], store=store, format="pgcopy"))
                for store in (KB_STORE, PGAI_STORE)}
        in_sets = {"kb": kb_state(shared), "blog": blog_rows(shared)}
        execute(shared, "UPDATE kb.chunks SET content = 'changed'; DELETE FROM blog_embedding_store WHERE id < 10")
        for target in (shared, other):
            with ThreadPoolExecutor(2) as pool:
                restores = [pool.submit(run_restore, RestoreRequest(
                    target_dsn=target, root=roots[store.name], timestamp=sets[store.name].timestamp, store=store,
                    truncate_before_restore=True)) for store in (KB_STORE, PGAI_STORE)]
                [restore.result() for restore in restores]
            assert kb_state(target) == in_sets["kb"]
            assert blog_rows(target) == in_sets["blog"]

        execute(shared, "UPDATE kb.chunks SET content = 'changed again'; UPDATE blog SET title = 'edited'")
        blog_before = blog_rows(shared)
        with ThreadPoolExecutor(2) as pool:
            restore = pool.submit(run_restore, RestoreRequest(
                target_dsn=shared, root=roots["kb"], timestamp=sets["kb"].timestamp, store=KB_STORE,
                truncate_before_restore=True))
            backup = pool.submit(run_backup, BackupRequest(dsn=shared, root=roots["blog"], store=PGAI_STORE))
            restore.result(), backup.result()
        assert kb_state(shared) == in_sets["kb"] and blog_rows(shared) == blog_before


def blog_rows(dsn: str) -> dict:
    return {"blog": rows_as_text(dsn, "blog"), "store": rows_as_text(dsn, "blog_embedding_store")}


def test_prune_deletes_every_file_of_a_stores_own_tables_and_keeps_an_operators(kb_db, tmp_path):
    """Files of tables other than LangChain's (kb.chunks_<ts>.pgcopy.zst, its row index) belong to
    their set by its manifest, and go with it; a file the manifest does not list stays."""
    old = run_backup(BackupRequest(dsn=kb_db, root=tmp_path, format="pgcopy.zst", timestamp="20250101_000000",
                                   store=KB_STORE, row_index=True))
    run_backup(BackupRequest(dsn=kb_db, root=tmp_path, format="pgcopy.zst", store=KB_STORE))
    folder = tmp_path / "vector_bak"
    operators = folder / "kb.chunks_20250101_000000.pgcopy.zst.sig"
    operators.write_text("a detached signature")
    old_files = {name for entry in old.manifest.tables.values() for name in entry.stored_files}
    assert {"kb.chunks_20250101_000000.pgcopy.zst", "kb.documents_20250101_000000.index.zst"} <= old_files
    result = run_prune(PruneRequest(root=tmp_path, policy=RetentionPolicy(keep_daily=1, keep_weekly=0, keep_monthly=0),
                                    dry_run=False))
    assert [planned.backup_set.key for planned in result.deleted] == ["20250101_000000"]
    left = {path.name for path in folder.iterdir()}
    assert not any("20250101_000000" in name for name in left - {operators.name}), left
    assert operators.exists()


def test_a_guarded_truncate_of_a_store_in_a_schema_then_its_restore(kb_db, tmp_path):
    before = kb_state(kb_db)
    truncated = run_guarded_truncate(TruncateRequest(dsn=kb_db, root=tmp_path, store=KB_STORE, format="pgcopy"))
    assert truncated.rows_before == {"kb.documents": 40, "kb.chunks": 120}
    assert truncated.rows_after == {"kb.documents": 0, "kb.chunks": 0}
    assert list(truncated.backup.manifest.tables) == ["kb.documents", "kb.chunks"]
    run_restore(RestoreRequest(target_dsn=kb_db, root=tmp_path, timestamp=truncated.backup.timestamp, store=KB_STORE,
                               truncate_before_restore=True))
    assert kb_state(kb_db) == before
