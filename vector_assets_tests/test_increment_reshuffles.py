"""Every increment that verifies, restores: whatever happened between two sets.

LangChain's ``PGVector(pre_delete_collection=True)`` deletes a collection and creates it again
under the same name with a new uuid, and the same document ids come back in it. Unique values
are freed and taken again (two collections swap names), keys move. An increment records only
the rows as they are at each end, never the order of the writes between, so its restore must
not depend on that order. The drill's scratch tables carry the real tables' constraints, so a
set that drills also restores, and one that cannot restore fails its drill.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.drill import DrillRequest, run_drill
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets.core.sets.manifest import INCREMENTAL
from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE
from vector_assets_tests.support.database import execute, rows_as_text


def tables_now(dsn: str) -> dict:
    return {table: rows_as_text(dsn, table) for table in (COLLECTION_TABLE, EMBEDDING_TABLE)}


def recreate_collection_like_pre_delete_collection(dsn: str, name: str) -> None:
    """What PGVector(pre_delete_collection=True) does, then re-adding the same documents."""
    (old,) = execute(dsn, "SELECT uuid FROM langchain_pg_collection WHERE name = %s", (name,))[0]
    saved = execute(dsn, "SELECT id, embedding::text, document, cmetadata::text FROM langchain_pg_embedding "
                         "WHERE collection_id = %s", (old,))
    execute(dsn, "DELETE FROM langchain_pg_collection WHERE uuid = %s", (old,))  # cascades to its embeddings
    new = str(uuid.uuid4())
    execute(dsn, "INSERT INTO langchain_pg_collection (uuid, name, cmetadata) VALUES (%s, %s, NULL)", (new, name))
    for id_, embedding, document, metadata in saved:
        execute(dsn, "INSERT INTO langchain_pg_embedding (id, collection_id, embedding, document, cmetadata) "
                     "VALUES (%s, %s, %s::vector, %s, %s::jsonb)", (id_, new, embedding, document, metadata))


def swap_collection_names(dsn: str, first: str, second: str) -> None:
    execute(dsn, "UPDATE langchain_pg_collection SET name = 'swapping' WHERE name = %s", (first,))
    execute(dsn, "UPDATE langchain_pg_collection SET name = %s WHERE name = %s", (first, second))
    execute(dsn, "UPDATE langchain_pg_collection SET name = %s WHERE name = 'swapping'", (second,))


def move_a_key(dsn: str) -> None:
    """A document deleted under one id and another document inserted under that id."""
    (moved,) = execute(dsn, "SELECT id FROM langchain_pg_embedding ORDER BY id LIMIT 1")[0]
    execute(dsn, "DELETE FROM langchain_pg_embedding WHERE id = %s", (moved,))
    execute(dsn, "UPDATE langchain_pg_embedding SET id = %s WHERE id = (SELECT max(id) FROM langchain_pg_embedding)",
            (moved,))


RESHUFFLES = {
    "collection re-created under its name": lambda dsn: recreate_collection_like_pre_delete_collection(dsn, "sql"),
    "two collections swap names": lambda dsn: swap_collection_names(dsn, "sql", "ddl"),
    "a key moves to another row": move_a_key,
}


@pytest.fixture(params=list(RESHUFFLES), ids=list(RESHUFFLES))
def reshuffled_chain(request, store_db: str, tmp_path: Path):
    """A full set, then an increment after the reshuffle; the tables as the increment holds them."""
    root = tmp_path / "root"
    run_backup(BackupRequest(dsn=store_db, root=root, format="csv", row_index=True, timestamp="20990101_000000"))
    RESHUFFLES[request.param](store_db)
    increment = run_backup(BackupRequest(dsn=store_db, root=root, format="csv", kind=INCREMENTAL,
                                         timestamp="20990102_000000"))
    assert increment.manifest.kind == INCREMENTAL and increment.manifest.fallback is None
    return root, increment.timestamp, tables_now(store_db)


def test_the_increment_restores_into_an_empty_database(reshuffled_chain, second_db):
    root, key, expected = reshuffled_chain
    run_restore(RestoreRequest(target_dsn=second_db, root=root, timestamp=key))
    assert tables_now(second_db) == expected


def test_the_increment_restores_over_the_live_tables_in_replace_mode(reshuffled_chain, store_db):
    root, key, expected = reshuffled_chain
    execute(store_db, "DELETE FROM langchain_pg_embedding WHERE id IN (SELECT id FROM langchain_pg_embedding LIMIT 10)")
    run_restore(RestoreRequest(target_dsn=store_db, root=root, timestamp=key, truncate_before_restore=True))
    assert tables_now(store_db) == expected
    names = execute(store_db, "SELECT conname FROM pg_constraint WHERE conrelid = 'langchain_pg_collection'::regclass "
                              "AND contype = 'u'")
    assert names == [("langchain_pg_collection_name_key",)]
    foreign = execute(store_db, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'langchain_pg_embedding'::regclass "
                                "AND contype = 'f'")
    assert foreign == [(1,)]


def test_the_increment_drills_with_the_real_constraints(reshuffled_chain, store_db):
    root, key, _ = reshuffled_chain
    result = run_drill(DrillRequest(dsn=store_db, root=root, key=key))
    assert result.passed, [table.message for table in result.tables]
    assert result.restore is not None and set(result.restore.tables_created) == {COLLECTION_TABLE, EMBEDDING_TABLE}
