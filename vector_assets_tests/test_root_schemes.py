"""A root's scheme picks its storage driver: a path or ``file://`` is a folder, the object-store
schemes go to their provider, and any other scheme is refused before anything is touched."""

from __future__ import annotations

from vector_assets.cli import EXIT_FAILED, main
from vector_assets.core.sets.catalog import scan_root
from vector_assets.core.tables import EMBEDDING_TABLE
from vector_assets_tests.support.database import tables_now


def test_a_file_url_root_is_the_folder_it_names(store_db, backup_root, monkeypatch, capsys):
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", backup_root.as_uri())
    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", store_db)
    assert main(["backup"]) == 0
    (made,) = scan_root(str(backup_root))
    assert str(backup_root / "vector_bak" / f"{EMBEDDING_TABLE}_{made.timestamp}.csv") in capsys.readouterr().out
    assert [backup_set.timestamp for backup_set in scan_root(backup_root.as_uri())] == [made.timestamp]


def test_a_root_of_an_unknown_scheme_fails_in_one_line_naming_the_schemes_and_nothing_is_truncated(
    store_db, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)  # a path-like root would be made here
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", "ftp://backups.example/rag")
    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", store_db)
    before = tables_now(store_db)

    assert main(["truncate", "--apply"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'ftp://backups.example/rag': no storage driver for ftp://" in err, err
    assert all(scheme in err for scheme in ("file://", "s3://", "az://", "gs://")), err
    assert tables_now(store_db) == before and list(tmp_path.iterdir()) == []


def test_a_file_url_naming_another_host_is_refused(monkeypatch, capsys):
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", "file://nas.example/backups")
    assert main(["list"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a folder on this machine; write it as file:///absolute/path" in err, err
