"""A new codec is one entry in the format registry: a test-only gzip codec, registered, makes
``csv.gz`` and ``pgcopy.gz`` set formats that back up, check, drill and restore every row like the
built-in ones, whose file names the scans recognise and whose manifest names the codec.
Unregistered, it is gone again, and a set written in it is refused by name."""

import gzip
import json
import zlib

import pytest

from vector_assets.core.errors import BackupFileError, ConfigError
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.drill import DrillRequest, run_drill
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets.core.ops.verify import VerifyRequest, run_verify
from vector_assets.core.sets.catalog import SetCatalog, timestamps_in_folder
from vector_assets.core.sets.formats import (
    FORMATS,
    PGCOPY_SIGNATURE,
    ZSTD,
    Codec,
    format_of_file,
    register_codec,
    set_format,
    unregister_codec,
)
from vector_assets.core.sets.manifest import INCREMENTAL
from vector_assets.core.sets.naming import manifest_file_name, set_timestamp_of
from vector_assets.core.sets.writer import PartPolicy
from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE
from vector_assets_tests.support.chains import change_store
from vector_assets_tests.support.database import execute, fill_store, tables_now
from vector_assets_tests.support.files import folder_snapshot
from vector_assets_tests.test_self_contained_sets import RICHER_STORE, table_shape

GZIP_WBITS = 16 + zlib.MAX_WBITS  # zlib's streams in the gzip container, as Python's gzip reads them
GZIP = Codec(
    "gzip", "gz",
    compressor=lambda: zlib.compressobj(6, zlib.DEFLATED, GZIP_WBITS),
    decompressor=lambda: zlib.decompressobj(GZIP_WBITS),
    errors=(zlib.error,),
)
BUILT_IN = ["csv", "csv.zst", "pgcopy", "pgcopy.zst"]
TS = "20250101_000000"
SMALL_PARTS = PartPolicy(part_bytes=64 * 1024, max_parts=3)


@pytest.fixture
def gzip_codec():
    register_codec(GZIP)
    try:
        yield GZIP
    finally:
        unregister_codec(GZIP.name)
    assert list(FORMATS) == BUILT_IN


@pytest.fixture
def rich_store(empty_db):
    fill_store(empty_db, embeddings=600)
    for statement in RICHER_STORE:
        execute(empty_db, statement)
    return empty_db


def test_a_codec_registered_makes_a_format_of_every_copy_format_and_its_file_names_sets_files():
    names = [f"{EMBEDDING_TABLE}_{TS}.csv.gz", f"{EMBEDDING_TABLE}_{TS}.part0002.pgcopy.gz.tmp",
             f"{EMBEDDING_TABLE}_{TS}.changes.part0001.csv.gz"]
    assert [set_timestamp_of(name) for name in names] == [None, None, None]

    register_codec(GZIP)
    try:
        assert list(FORMATS) == ["csv", "csv.zst", "csv.gz", "pgcopy", "pgcopy.zst", "pgcopy.gz"]
        assert set_format("pgcopy.gz").codec_name == "gzip" and format_of_file(names[0]).name == "csv.gz"
        assert [set_timestamp_of(name) for name in names] == [TS, TS, TS]
        assert set_timestamp_of(f"{EMBEDDING_TABLE}_{TS}.csv.gz.sig") is None  # an operator's own file
    finally:
        unregister_codec("gzip")

    assert list(FORMATS) == BUILT_IN
    assert [set_timestamp_of(name) for name in names] == [None, None, None]
    with pytest.raises(ConfigError, match=r"^format 'csv.gz' is not one of csv, csv.zst, pgcopy, pgcopy.zst$"):
        set_format("csv.gz")


@pytest.mark.parametrize("fmt", ["csv.gz", "pgcopy.gz"])
def test_a_registered_codec_round_trips_every_row_in_parts_on_every_kind_of_root(fmt, gzip_codec, rich_store, second_db, any_root):
    before = tables_now(rich_store)
    backup = run_backup(BackupRequest(dsn=rich_store, root=any_root.url, format=fmt, parts=SMALL_PARTS))

    entry = backup.manifest.tables[EMBEDDING_TABLE]
    assert backup.manifest.format == fmt and backup.manifest.format_version == 2 and len(entry.parts) > 1
    stored = json.loads(backup.folder.read_bytes(manifest_file_name(backup.timestamp)))
    assert stored["format"] == fmt and stored["codec"] == "gzip"
    files = [piece.file for table in backup.manifest.tables.values() for piece in table.pieces]
    assert all(name.endswith("." + fmt) for name in files)
    assert set(files) <= timestamps_in_folder(backup.folder)[backup.timestamp]
    first = gzip.decompress(backup.folder.read_bytes(entry.pieces[0].file))  # Python's own gzip reads it
    columns = [column.name for column in entry.columns]
    assert first.startswith(PGCOPY_SIGNATURE) if fmt == "pgcopy.gz" else first.split(b"\n")[0].decode().split(",") == columns
    assert SetCatalog(any_root.url).newest().timestamp == backup.timestamp
    assert run_verify(VerifyRequest(root=any_root.url, key=backup.timestamp)).passed
    drill = run_drill(DrillRequest(dsn=rich_store, root=any_root.url, key=backup.timestamp))
    assert drill.passed, [t.message for t in drill.tables]

    execute(rich_store, "DELETE FROM langchain_pg_embedding WHERE document IS NULL")
    run_restore(RestoreRequest(target_dsn=rich_store, root=any_root.url, timestamp=backup.timestamp,
                               truncate_before_restore=True, safety_backup=False))
    assert tables_now(rich_store) == before

    execute(second_db, "DROP EXTENSION vector")
    run_restore(RestoreRequest(target_dsn=second_db, root=any_root.url, timestamp=backup.timestamp))
    assert tables_now(second_db) == before
    assert table_shape(second_db) == table_shape(rich_store)


def test_an_increment_in_a_registered_format_restores_its_chain(gzip_codec, store_db, second_db, backup_root):
    run_backup(BackupRequest(dsn=store_db, root=backup_root, format="csv.gz", row_index=True, timestamp=TS))
    change_store(store_db, 1)
    increment = run_backup(BackupRequest(dsn=store_db, root=backup_root, format="csv.gz", kind=INCREMENTAL))
    expected = tables_now(store_db)

    changes = increment.manifest.tables[EMBEDDING_TABLE].file
    assert increment.manifest.kind == INCREMENTAL and changes.endswith(".changes.csv.gz")
    assert changes in timestamps_in_folder(increment.folder)[increment.timestamp]
    run_restore(RestoreRequest(target_dsn=second_db, root=backup_root, timestamp=increment.timestamp))
    assert tables_now(second_db) == expected


def test_a_set_in_a_codec_no_longer_registered_is_refused_naming_its_file_and_nothing_changes(store_db, backup_root):
    register_codec(GZIP)
    try:
        backup = run_backup(BackupRequest(dsn=store_db, root=backup_root, format="pgcopy.gz", timestamp=TS))
    finally:
        unregister_codec("gzip")
    execute(store_db, "DELETE FROM langchain_pg_embedding WHERE document IS NULL")
    before, files = tables_now(store_db), folder_snapshot(backup_root)

    file = backup.manifest.tables[COLLECTION_TABLE].file  # the first the restore reads
    assert file == f"{COLLECTION_TABLE}_{TS}.pgcopy.gz"
    with pytest.raises(BackupFileError, match=rf"^{file} is not a data file of any known format \(csv, csv.zst, pgcopy, pgcopy.zst\)$"):
        run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=backup.timestamp,
                                   truncate_before_restore=True))
    assert tables_now(store_db) == before and folder_snapshot(backup_root) == files


def test_a_name_already_taken_is_refused_and_the_registry_stays_as_it_was():
    with pytest.raises(ConfigError, match=r"^a codec named 'zstd' is already registered$"):
        register_codec(ZSTD)
    with pytest.raises(ConfigError, match=r"^two formats would be named 'csv.zst': a COPY format's and a codec's names collide$"):
        register_codec(Codec("zstd2", "zst", GZIP.compressor, GZIP.decompressor, GZIP.errors))
    with pytest.raises(ConfigError, match=r"^no codec named 'gzip' is registered \(there are: zstd\)$"):
        unregister_codec("gzip")
    assert list(FORMATS) == BUILT_IN and set_format("csv.zst").codec is ZSTD
