"""A collection restore sends COPY only that collection's rows: the set's files are filtered on
their way to PostgreSQL, in every format, encrypted or not, and a row that merely holds the
collection's uuid (as text or as its 16 bytes, in its key, document, metadata or vector) stays
out. The filtered stream is byte for byte what PostgreSQL writes for those rows alone."""

from __future__ import annotations

import io
import struct
import threading
import uuid
from collections import Counter
from pathlib import Path

import psycopg2
import pytest

from vector_assets.core.errors import BackupFileError
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets.core.progress import CopyProgress, ProgressReporter
from vector_assets.core.sets.collection_filter import CollectionFilter, CollectionRows
from vector_assets.core.sets.formats import CSV, PGCOPY, DecodingReader
from vector_assets.core.sets.manifest import INCREMENTAL
from vector_assets.core.sets.writer import PartPolicy
from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE
from vector_assets.dev.demo import write_legacy_set
from vector_assets.core.sets.disk_store import DiskFolder
from vector_assets_tests.support.age import make_key
from vector_assets_tests.support.database import execute, tables_now
from vector_assets_tests.support.files import folder_snapshot
from vector_assets_tests.test_collection_restore import rows_of
from vector_assets_tests.test_encrypted_sets import keys_for, reader_keys

TS = "20250801_120000"
SMALL_PARTS = PartPolicy(part_bytes=64 * 1024, max_parts=3)
# A collection whose uuid's 16 bytes are printable text, so a key, a document or a vector can hold them.
ASCII_UUID = uuid.UUID(bytes=b"abcdefghijklmnop")
LOOKALIKE = "lookalike"
COLUMNS = ["id", "collection_id", "embedding", "document", "cmetadata"]


def copied_rows(events: list) -> Counter:
    """The rows each table's COPY FROM loaded, from the restore's last progress report of each
    file (the safety set's COPY TO reports as a backup)."""
    copied: Counter = Counter()
    for event in events:
        if isinstance(event, CopyProgress) and event.done and event.action == "restore":
            copied[event.table] += event.rows
    return copied


def restore_collection(dsn: str, root: Path, name: str, **fields) -> tuple[object, dict[str, int]]:
    events: list = []
    result = run_restore(RestoreRequest(
        target_dsn=dsn, root=root, timestamp=fields.pop("timestamp", TS), collection=name, truncate_before_restore=True,
        progress=ProgressReporter(events.append, interval_seconds=3600), **fields,
    ))
    return result, copied_rows(events)


def delete_collection_rows(dsn: str, name: str, rows: int) -> None:
    execute(dsn, f"DELETE FROM {EMBEDDING_TABLE} WHERE ctid IN (SELECT e.ctid FROM {EMBEDDING_TABLE} e "
                 f"JOIN {COLLECTION_TABLE} c ON c.uuid = e.collection_id WHERE c.name = %s LIMIT %s)", (name, rows))


def add_lookalikes(dsn: str) -> None:
    """Collection 'lookalike' (uuid bytes b'abcdefghijklmnop') with rows of awkward documents, and
    rows of 'sql' that hold its uuid: as their 16-byte key, in documents, metadata and a vector."""
    execute(dsn, f"INSERT INTO {COLLECTION_TABLE} (uuid, name) VALUES (%s, %s)", (str(ASCII_UUID), LOOKALIKE))
    text, raw = str(ASCII_UUID), ASCII_UUID.bytes.decode("ascii")
    floats = struct.unpack(">4f", ASCII_UUID.bytes)  # a vector whose binary form holds the uuid's bytes
    vector = "[" + ",".join(repr(value) for value in floats) + ",0" * 380 + "]"
    awkward = [f'line one\nline "two", {text}', "", None, 'a,b\r\n"c"\n\n', text]
    for index, document in enumerate(awkward):
        execute(dsn, f"INSERT INTO {EMBEDDING_TABLE} (id, collection_id, embedding, document, cmetadata) "
                     "SELECT %s, %s, embedding, %s, %s FROM langchain_pg_embedding LIMIT 1",
                     (f"look-{index}", text, document, f'{{"note": "row {index}"}}'))
    sql_uuid = execute(dsn, f"SELECT uuid::text FROM {COLLECTION_TABLE} WHERE name = 'sql'")[0][0]
    confusers = [
        (raw, f"{text}\n{raw}", f'{{"collection_id": "{text}"}}', None),
        (text, f'"{text}",{text}', None, vector),
        ("lookalike-vector", raw, f'{{"{raw}": 1}}', vector),
    ]
    for key, document, metadata, embedding in confusers:
        execute(dsn, f"INSERT INTO {EMBEDDING_TABLE} (id, collection_id, embedding, document, cmetadata) "
                     "SELECT %s, %s, coalesce(%s::vector, embedding), %s, %s FROM langchain_pg_embedding LIMIT 1",
                     (key, sql_uuid, embedding, document, metadata))


@pytest.mark.parametrize("fmt", ["csv", "csv.zst", "pgcopy", "pgcopy.zst"])
@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_a_collection_restore_copies_only_the_collections_rows(store_db, backup_root, tmp_path, fmt, encrypted):
    key = make_key(tmp_path / "keys") if encrypted else None
    keys = {"encryption": keys_for(key)} if encrypted else {}
    written = run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS, format=fmt, parts=SMALL_PARTS, **keys))
    in_set = rows_of(store_db, ("ddl",))
    delete_collection_rows(store_db, "ddl", 40)
    others = rows_of(store_db, ("ddl",), others=True)

    readers = {"encryption": reader_keys(key.identity_file)} if encrypted else {}
    result, copied = restore_collection(store_db, backup_root, "ddl", **readers)

    assert rows_of(store_db, ("ddl",)) == in_set and rows_of(store_db, ("ddl",), others=True) == others
    assert written.manifest.tables[EMBEDDING_TABLE].rows == 300
    assert copied[EMBEDDING_TABLE] == result.collection.embeddings_in_set == 100  # of the file's 300
    assert result.collection.embeddings_loaded == 100


@pytest.mark.parametrize("fmt", ["csv", "pgcopy"])
def test_rows_holding_the_collections_uuid_bytes_elsewhere_are_not_taken_for_it(store_db, backup_root, fmt):
    add_lookalikes(store_db)
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS, format=fmt))
    in_set = rows_of(store_db, (LOOKALIKE,))
    execute(store_db, f"DELETE FROM {EMBEDDING_TABLE} WHERE collection_id = %s", (str(ASCII_UUID),))
    execute(store_db, f"UPDATE {EMBEDDING_TABLE} SET document = 'changed' WHERE id = 'lookalike-vector'")
    others = rows_of(store_db, (LOOKALIKE,), others=True)

    result, copied = restore_collection(store_db, backup_root, LOOKALIKE)

    assert copied[EMBEDDING_TABLE] == 5 and result.collection.embeddings_loaded == 5
    assert rows_of(store_db, (LOOKALIKE,)) == in_set and rows_of(store_db, (LOOKALIKE,), others=True) == others


class ShortReads(io.RawIOBase):
    """A stream that hands out at most ``step`` bytes a read: every row crosses a chunk's end."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data, self._step, self._at = data, step, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self._data[self._at: self._at + min(self._step, size if size >= 0 else self._step)]
        self._at += len(chunk)
        return chunk


def copy_out(dsn: str, query: str, options: str) -> bytes:
    sink = io.BytesIO()
    with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
        cursor.copy_expert(f"COPY ({query}) TO STDOUT WITH ({options})", sink)
    conn.close()
    return sink.getvalue()


def filtered(fmt, data: bytes, step: int) -> tuple[bytes, CollectionFilter]:
    source = DecodingReader(fmt, ShortReads(data, step), "table.file")
    stream = CollectionFilter(fmt, source, "table.file", CollectionRows(1, len(COLUMNS), ASCII_UUID))
    out = b"".join(iter(lambda: stream.read(1 << 16), b""))
    return out, stream


@pytest.mark.parametrize("fmt", [CSV, PGCOPY], ids=["csv", "pgcopy"])
@pytest.mark.parametrize("step", [1 << 20, 7])
def test_the_filtered_stream_is_what_postgres_writes_for_the_collections_rows_alone(store_db, fmt, step):
    add_lookalikes(store_db)
    columns = ", ".join(COLUMNS)
    whole = copy_out(store_db, f"SELECT {columns} FROM {EMBEDDING_TABLE}", fmt.copy_options)
    alone = copy_out(store_db, f"SELECT {columns} FROM {EMBEDDING_TABLE} WHERE collection_id = '{ASCII_UUID}'",
                     fmt.copy_options)

    out, stream = filtered(fmt, whole, step)

    assert out == alone and alone.count(b"look-") == 5
    assert (stream.rows_read, stream.rows_passed) == (308 if fmt.binary else None, 5)  # CSV passes over what lacks the uuid


@pytest.mark.parametrize("fmt", [CSV, PGCOPY], ids=["csv", "pgcopy"])
def test_a_file_cut_short_is_named_by_the_filter(store_db, fmt):
    whole = copy_out(store_db, f"SELECT {', '.join(COLUMNS)} FROM {EMBEDDING_TABLE}", fmt.copy_options)
    cut = whole[: len(whole) // 2] if fmt.binary else whole[: whole.index(b',"') + 2]  # inside a quoted field

    with pytest.raises(BackupFileError, match=r"^table\.file (ends in the middle of a binary COPY record|ends inside a quoted CSV field)"):
        filtered(fmt, cut, 1 << 20)


CUT_FILE_ERRORS = {
    "pgcopy": "{name} ends in the middle of a binary COPY record: the file is cut short",
    "pgcopy.zst": "{name} ends in the middle of its zstd frame: the file is cut short",
}


@pytest.mark.parametrize("fmt", list(CUT_FILE_ERRORS))
def test_a_cut_set_file_fails_the_collection_restore_in_one_line_and_changes_nothing(store_db, backup_root, fmt):
    written = run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS, format=fmt))
    path = Path(written.paths[EMBEDDING_TABLE])
    path.write_bytes(path.read_bytes()[:-5000])
    delete_collection_rows(store_db, "sql", 10)
    before, files = tables_now(store_db), folder_snapshot(backup_root)

    with pytest.raises(BackupFileError) as raised:
        restore_collection(store_db, backup_root, "sql")

    assert str(raised.value) == CUT_FILE_ERRORS[fmt].format(name=path.name)
    assert tables_now(store_db) == before and folder_snapshot(backup_root) == files
    assert not [thread for thread in threading.enumerate() if thread.name == "vector-assets-collection-filter"]


def test_chains_and_legacy_sets_stage_the_whole_table_and_still_restore_exactly(store_db, backup_root):
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS, format="pgcopy", row_index=True))
    execute(store_db, f"UPDATE {EMBEDDING_TABLE} SET document = 'moved in' WHERE ctid IN (SELECT ctid FROM {EMBEDDING_TABLE} "
                      f"WHERE collection_id <> (SELECT uuid FROM {COLLECTION_TABLE} WHERE name = 'sql') LIMIT 5)")
    execute(store_db, f"UPDATE {EMBEDDING_TABLE} SET collection_id = (SELECT uuid FROM {COLLECTION_TABLE} WHERE name = 'sql') "
                      "WHERE document = 'moved in'")
    increment = run_backup(BackupRequest(dsn=store_db, root=backup_root, format="pgcopy", kind=INCREMENTAL,
                                         timestamp="20250802_120000")).timestamp
    in_increment = rows_of(store_db, ("sql",))
    delete_collection_rows(store_db, "sql", 30)

    result, copied = restore_collection(store_db, backup_root, "sql", timestamp=increment)

    assert rows_of(store_db, ("sql",)) == in_increment and result.collection.embeddings_in_set == 105
    assert copied[EMBEDDING_TABLE] == 300 + 5  # the chain's base staged whole, then the increment's changed rows

    with psycopg2.connect(store_db) as conn:
        write_legacy_set(conn, DiskFolder(backup_root / "task_20250721_213627" / "vector_bak"), "20250721_213627")
    conn.close()
    delete_collection_rows(store_db, "sql", 30)
    result, copied = restore_collection(store_db, backup_root, "sql", timestamp="20250721_213627")
    assert rows_of(store_db, ("sql",)) == in_increment and copied[EMBEDDING_TABLE] == 300
