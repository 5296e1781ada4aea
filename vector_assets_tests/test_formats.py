"""The data file formats as streams: every format carries every row exactly through a real
COPY out and a real COPY in, counts its rows, and refuses a file that is cut or damaged."""

import io

import psycopg2
import pytest
from psycopg2 import sql

from vector_assets.core.errors import BackupFileError, ConfigError
from vector_assets.core.pg.catalog import column_names, read_columns
from vector_assets.core.pg.copy import copy_in, copy_out
from vector_assets.core.pg.ddl import create_table, read_table_definition
from vector_assets.core.sets.formats import (
    FORMATS,
    DecodingReader,
    EncodingSink,
    count_rows,
    format_of_file,
    read_header,
    set_format,
)
from vector_assets_tests.support.database import STORE_TABLES
from vector_assets_tests.support.database import execute, fill_store, tables_now
from vector_assets_tests.test_self_contained_sets import RICHER_STORE


def export(dsn: str, table: str, fmt_name: str) -> tuple[bytes, int]:
    fmt = set_format(fmt_name)
    raw = io.BytesIO()
    with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
        sink = EncodingSink(fmt, raw)
        rows = copy_out(cursor, table, column_names(read_columns(cursor, table)), sink, fmt.copy_options)
        sink.finish()
    conn.close()
    return raw.getvalue(), rows


def load(dsn: str, table: str, fmt_name: str, data: bytes, columns: list[str]) -> int:
    fmt = set_format(fmt_name)
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cursor:
            rows = copy_in(
                cursor, sql.Identifier(table), columns, DecodingReader(fmt, io.BytesIO(data), f"{table}{fmt.suffix}"),
                options=fmt.copy_options,
            )
        conn.commit()
    finally:
        conn.close()
    return rows


@pytest.fixture(params=["current", "community"])
def rich_store(request, empty_db):
    fill_store(empty_db, layout=request.param)
    for statement in RICHER_STORE:
        execute(empty_db, statement)
    return empty_db


@pytest.fixture
def empty_copy(rich_store, second_db):
    """The rich store's tables, created empty in another database."""
    with psycopg2.connect(rich_store) as conn, conn.cursor() as cursor:
        definitions = [read_table_definition(cursor, table) for table in STORE_TABLES]
    conn.close()
    conn = psycopg2.connect(second_db)
    with conn, conn.cursor() as cursor:
        for definition in definitions:
            create_table(cursor, definition)
    conn.close()
    return second_db


@pytest.mark.parametrize("fmt_name", list(FORMATS))
def test_every_format_carries_every_row_and_counts_them(fmt_name, rich_store, empty_copy):
    with psycopg2.connect(rich_store) as conn, conn.cursor() as cursor:
        columns = {table: column_names(read_columns(cursor, table)) for table in STORE_TABLES}
    conn.close()
    for table in STORE_TABLES:
        data, exported = export(rich_store, table, fmt_name)
        fmt = set_format(fmt_name)
        assert count_rows(fmt, DecodingReader(fmt, io.BytesIO(data), "f"), "f") == exported > 0
        if not fmt.binary:
            assert read_header(DecodingReader(fmt, io.BytesIO(data), "f")) == columns[table]
        assert load(empty_copy, table, fmt_name, data, columns[table]) == exported
    assert tables_now(empty_copy) == tables_now(rich_store)


def test_compressed_and_binary_files_are_smaller_than_csv(store_db):
    sizes = {name: len(export(store_db, "langchain_pg_embedding", name)[0]) for name in FORMATS}
    assert sizes["csv.zst"] < sizes["csv"] and sizes["pgcopy"] < sizes["csv"]
    assert sizes["pgcopy.zst"] < sizes["pgcopy"]


@pytest.mark.parametrize("fmt_name", ["csv.zst", "pgcopy.zst"])
def test_a_compressed_file_cut_short_is_refused_naming_the_file(fmt_name, store_db):
    data, _ = export(store_db, "langchain_pg_embedding", fmt_name)
    fmt = set_format(fmt_name)
    with pytest.raises(BackupFileError, match=r"langchain_pg_embedding_x\.\S+ ends in the middle of its zstd frame"):
        count_rows(fmt, DecodingReader(fmt, io.BytesIO(data[: len(data) // 2]), "langchain_pg_embedding_x" + fmt.suffix), "f")


def test_a_binary_file_cut_short_or_with_a_flipped_byte_is_refused(store_db, second_db):
    data, _ = export(store_db, "langchain_pg_embedding", "pgcopy")
    fmt = set_format("pgcopy")
    with pytest.raises(BackupFileError, match="ends in the middle of a binary COPY record"):
        count_rows(fmt, io.BytesIO(data[:-1000]), "cut.pgcopy")
    flipped = bytearray(data)
    flipped[0] ^= 0xFF
    with pytest.raises(BackupFileError, match="signature is wrong"):
        count_rows(fmt, io.BytesIO(bytes(flipped)), "flipped.pgcopy")


def test_file_names_say_their_format_and_unknown_formats_are_named():
    assert format_of_file("langchain_pg_embedding_20250101_000000.csv.zst").name == "csv.zst"
    assert format_of_file("langchain_pg_embedding_20250101_000000.csv").name == "csv"
    assert format_of_file("langchain_pg_embedding_20250101_000000.pgcopy.zst").name == "pgcopy.zst"
    with pytest.raises(ConfigError, match="format 'parquet' is not one of csv, csv.zst, pgcopy, pgcopy.zst"):
        set_format("parquet")
    with pytest.raises(BackupFileError, match="x.parquet is not a data file"):
        format_of_file("x.parquet")
