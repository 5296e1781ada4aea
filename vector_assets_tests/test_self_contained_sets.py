"""Sets carry their tables' definitions, so a restore into an empty database recreates the
tables, their constraints and their indexes (issue #11, "self-contained sets")."""

import uuid

import psycopg2
import pytest

from vector_assets.core.errors import ExtensionMissingError, MissingTableDefinitionError
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets_tests.support.database import STORE_TABLES
from vector_assets.dev.demo import write_legacy_set
from vector_assets_tests.support.database import execute, fill_store, tables_now
from vector_assets_tests.support.files import folder_snapshot

# Column kinds, constraints and index kinds an operator's store may add to the LangChain tables.
RICHER_STORE = [
    "ALTER TABLE langchain_pg_embedding ADD COLUMN summary halfvec(4), ADD COLUMN sparse sparsevec(10), "
    "ADD COLUMN wide vector(1536), ADD COLUMN tenant text NOT NULL DEFAULT 'acme', ADD COLUMN row_no serial, "
    "ADD COLUMN search tsvector GENERATED ALWAYS AS (to_tsvector('simple', coalesce(document, ''))) STORED",
    "UPDATE langchain_pg_embedding SET summary = subvector(embedding, 1, 4)::halfvec(4), "
    "sparse = '{1:0.5,3:1.25}/10', wide = array_fill(0.25::real, ARRAY[1536])::vector "
    "WHERE document IS NOT NULL",
    "ALTER TABLE langchain_pg_embedding ADD CONSTRAINT tenant_not_blank CHECK (tenant <> '')",
    "CREATE INDEX ix_hnsw ON langchain_pg_embedding USING hnsw (embedding vector_cosine_ops) WITH (m = 8, ef_construction = 32)",
    "CREATE INDEX ix_ivfflat ON langchain_pg_embedding USING ivfflat (embedding vector_l2_ops) WITH (lists = 4)",
    "CREATE INDEX ix_lower_document ON langchain_pg_embedding (lower(document))",
    "CREATE INDEX ix_tenant_documents ON langchain_pg_embedding (tenant) WHERE document IS NOT NULL",
    "CREATE UNIQUE INDEX ix_tenant_row ON langchain_pg_embedding (tenant, row_no)",
]

SHAPE_QUERIES = {
    "columns": """SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attgenerated,
                         pg_get_expr(d.adbin, d.adrelid)
                  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                  WHERE c.relname = ANY (%s) AND a.attnum > 0 AND NOT a.attisdropped""",
    "constraints": """SELECT c.relname, k.conname, pg_get_constraintdef(k.oid) FROM pg_constraint k
                      JOIN pg_class c ON c.oid = k.conrelid WHERE c.relname = ANY (%s)""",
    "indexes": """SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
                  WHERE c.relname = ANY (%s)""",
}


def table_shape(dsn: str) -> dict[str, set]:
    return {what: set(execute(dsn, query, (list(STORE_TABLES),))) for what, query in SHAPE_QUERIES.items()}


def existing_tables(dsn: str) -> list:
    return execute(dsn, "SELECT relname FROM pg_class WHERE relname = ANY (%s) AND relkind = 'r'", (list(STORE_TABLES),))


@pytest.mark.parametrize("layout", ["current", "community"])
def test_a_restore_into_an_empty_database_recreates_the_tables_constraints_and_indexes(
    layout, empty_db, second_db, backup_root
):
    fill_store(empty_db, layout=layout)
    for statement in RICHER_STORE:
        execute(empty_db, statement)
    execute(second_db, "DROP EXTENSION vector")
    backup = run_backup(BackupRequest(dsn=empty_db, root=backup_root))

    result = run_restore(RestoreRequest(target_dsn=second_db, root=backup_root, timestamp=backup.timestamp))

    assert result.tables_created == list(STORE_TABLES)
    assert {"ix_hnsw", "ix_ivfflat", "ix_lower_document", "ix_tenant_documents", "ix_tenant_row"} <= set(result.indexes_rebuilt)
    assert result.safety_set is None, "an empty target needs no safety set"
    assert tables_now(second_db) == tables_now(empty_db)
    assert table_shape(second_db) == table_shape(empty_db)
    next_row_no = execute(second_db, "SELECT nextval(pg_get_serial_sequence('langchain_pg_embedding', 'row_no'))")
    assert next_row_no[0][0] > max(row_no for (row_no,) in execute(empty_db, "SELECT row_no FROM langchain_pg_embedding"))


def test_a_role_that_may_not_create_the_extension_gets_a_clear_error_and_nothing_is_created(
    store_db, second_db, backup_root
):
    backup = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    execute(second_db, "DROP EXTENSION vector")
    role = f"restorer_{uuid.uuid4().hex[:8]}"
    execute(second_db, f"CREATE ROLE {role} LOGIN")
    database = psycopg2.extensions.parse_dsn(second_db)["dbname"]
    execute(second_db, f"GRANT CREATE ON DATABASE {database} TO {role}")
    execute(second_db, f"GRANT CREATE ON SCHEMA public TO {role}")
    files_before = folder_snapshot(backup_root)
    try:
        with pytest.raises(ExtensionMissingError, match=f"role {role} may not create it") as refused:
            run_restore(RestoreRequest(target_dsn=dsn_for_role(second_db, role), root=backup_root, timestamp=backup.timestamp))
    finally:
        execute(second_db, f"REVOKE ALL ON SCHEMA public FROM {role}")
        execute(second_db, f"REVOKE ALL ON DATABASE {database} FROM {role}")
        execute(second_db, f"DROP ROLE {role}")

    assert "\n" not in str(refused.value)
    assert existing_tables(second_db) == []
    assert execute(second_db, "SELECT 1 FROM pg_extension WHERE extname = 'vector'") == []
    assert folder_snapshot(backup_root) == files_before


def dsn_for_role(dsn: str, role: str) -> str:
    params = psycopg2.extensions.parse_dsn(dsn)
    params["user"] = role
    params.pop("password", None)
    return psycopg2.extensions.make_dsn(**params)


def test_a_set_without_definitions_is_refused_by_an_empty_database_naming_the_table(store_db, second_db, backup_root):
    folder = backup_root / "task_20250101_000000" / "vector_bak"
    conn = psycopg2.connect(store_db)
    try:
        write_legacy_set(conn, folder, "20250101_000000")
    finally:
        conn.close()
    files_before = folder_snapshot(backup_root)

    with pytest.raises(MissingTableDefinitionError, match="table langchain_pg_collection does not exist in the target"):
        run_restore(RestoreRequest(target_dsn=second_db, root=backup_root, timestamp="20250101_000000"))

    assert existing_tables(second_db) == []
    assert folder_snapshot(backup_root) == files_before


def test_a_set_with_definitions_still_restores_into_existing_tables_as_before(store_db, backup_root):
    backup = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    before = tables_now(store_db)
    execute(store_db, "DELETE FROM langchain_pg_embedding")

    result = run_restore(RestoreRequest(
        target_dsn=store_db, root=backup_root, timestamp=backup.timestamp, truncate_before_restore=True
    ))

    assert result.tables_created == []
    assert tables_now(store_db) == before
    assert backup.manifest.tables["langchain_pg_embedding"].definition.indexes == [
        "CREATE INDEX ix_cmetadata_gin ON langchain_pg_embedding USING gin (cmetadata jsonb_path_ops)"
    ]


