"""A table exported in parts on several connections is one snapshot: rows a writer commits
while the parts run are in none of them, and every row the snapshot sees is in exactly one."""

import io
from concurrent.futures import ThreadPoolExecutor

import psycopg2
from psycopg2 import sql

from vector_assets.core.pg.catalog import column_names, read_columns
from vector_assets.core.pg.connection import connect, snapshot_transaction
from vector_assets.core.pg.copy import copy_in
from vector_assets.core.pg.ddl import create_table, read_table_definition
from vector_assets.core.pg.parts import BlockRange, at_snapshot, block_ranges, copy_part_out, export_snapshot
from vector_assets.core.sets.formats import PGCOPY
from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE
from vector_assets_tests.support.database import execute, fill_store, rows_as_text

PART_BYTES = 256 * 1024


def test_parts_read_in_parallel_share_the_backup_snapshot_while_a_writer_commits(empty_db, second_db):
    fill_store(empty_db, embeddings=3000)
    snapshot_rows = rows_as_text(empty_db, EMBEDDING_TABLE)
    conn = connect(empty_db)
    try:
        with snapshot_transaction(conn) as cursor:
            columns = column_names(read_columns(cursor, EMBEDDING_TABLE))
            definitions = [read_table_definition(cursor, table) for table in (COLLECTION_TABLE, EMBEDDING_TABLE)]
            ranges = block_ranges(cursor, EMBEDDING_TABLE, PART_BYTES, max_parts=4)
            snapshot = export_snapshot(cursor)
            execute(empty_db, "DELETE FROM langchain_pg_embedding WHERE id IN (SELECT id FROM langchain_pg_embedding LIMIT 10)")
            execute(empty_db, "INSERT INTO langchain_pg_embedding (id, collection_id, embedding) "
                              "SELECT 'late-' || id, collection_id, embedding FROM langchain_pg_embedding LIMIT 50")
            collections = export_part(empty_db, snapshot, COLLECTION_TABLE, collection_columns(cursor), BlockRange(0, None))
            with ThreadPoolExecutor(max_workers=len(ranges)) as pool:
                parts = list(pool.map(lambda blocks: export_part(empty_db, snapshot, EMBEDDING_TABLE, columns, blocks), ranges))
    finally:
        conn.close()

    assert len(ranges) == 4 and ranges[-1].end is None
    assert sum(rows for _, rows in parts) == len(snapshot_rows.keys()) == 3000
    load_parts(second_db, definitions, {COLLECTION_TABLE: [collections[0]], EMBEDDING_TABLE: [data for data, _ in parts]})
    assert rows_as_text(second_db, EMBEDDING_TABLE) == snapshot_rows
    assert rows_as_text(empty_db, EMBEDDING_TABLE) != snapshot_rows, "the writer did change the live table"


def collection_columns(cursor) -> list[str]:
    return column_names(read_columns(cursor, COLLECTION_TABLE))


def export_part(dsn, snapshot, table, columns, blocks) -> tuple[bytes, int]:
    sink = io.BytesIO()
    with at_snapshot(dsn, snapshot) as cursor:
        rows = copy_part_out(cursor, table, columns, blocks, sink, PGCOPY.copy_options)
    return sink.getvalue(), rows


def load_parts(dsn, definitions, parts_by_table: dict[str, list[bytes]]) -> None:
    """Binary COPY needs no column list beyond the table's own order, which the definition keeps."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cursor:
            for definition in definitions:
                create_table(cursor, definition)
            for table, parts in parts_by_table.items():
                columns = column_names(read_columns(cursor, table))
                for data in parts:
                    copy_in(cursor, sql.Identifier(table), columns, io.BytesIO(data), options=PGCOPY.copy_options)
        conn.commit()
    finally:
        conn.close()
