"""Every OS error on the backup root becomes one clear, typed error naming the path (exit 2 at
the command line, never a traceback), and nothing changes in the database or under the root.

The read-only root is a real read-only file system: a tmpfs mounted by the test and remounted
read-only once it holds a set (the tests run as root, as CI does on this machine kind).
"""

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from vector_assets.cli import main
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets_tests.support.database import tables_now
from vector_assets_tests.support.files import folder_snapshot


@pytest.fixture
def read_only_root(tmp_path: Path, store_db: str) -> Iterator[tuple[Path, str]]:
    mount_point = tmp_path / "mounted"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)], check=True)
    try:
        root = mount_point / "training_data"
        key = run_backup(BackupRequest(dsn=store_db, root=root)).timestamp
        subprocess.run(["mount", "-o", "remount,ro", str(mount_point)], check=True)
        yield root, key
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


@pytest.fixture
def root_that_is_a_file(tmp_path: Path) -> Path:
    root = tmp_path / "training_data"
    root.write_text("someone put a file where the backup root should be")
    return root


def run_cli(monkeypatch, dsn: str, root: Path, *args: str) -> int:
    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", dsn)
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", str(root))
    return main(list(args))


@pytest.mark.faults
@pytest.mark.parametrize("command", [["backup"], ["truncate"], ["truncate", "--apply"], ["backup", "--task-id", "manual_20250101_000000"]])
def test_a_read_only_root_gives_one_clear_line_and_exit_2_and_changes_nothing(
    read_only_root, store_db, monkeypatch, capsys, command
):
    root, _ = read_only_root
    before, files_before = tables_now(store_db), folder_snapshot(root)
    assert run_cli(monkeypatch, store_db, root, *command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Read-only file system" in err and str(root) in err
    assert "Traceback" not in err
    assert tables_now(store_db) == before and folder_snapshot(root) == files_before


@pytest.mark.faults
def test_a_read_only_root_can_still_be_listed_and_restored_from_without_a_safety_backup(read_only_root, store_db, monkeypatch, capsys):
    root, key = read_only_root
    before = tables_now(store_db)
    assert run_cli(monkeypatch, store_db, root, "list") == 0
    assert key in capsys.readouterr().out
    files_before = folder_snapshot(root)
    assert run_cli(monkeypatch, store_db, root, "restore", key, "--replace", "--apply") == 2
    assert "safety backup of what the restore would replace failed, so nothing was restored" in capsys.readouterr().err
    assert tables_now(store_db) == before and folder_snapshot(root) == files_before
    assert run_cli(monkeypatch, store_db, root, "restore", key, "--replace", "--no-safety-backup", "--apply") == 0
    assert "was not backed up" in capsys.readouterr().err
    assert tables_now(store_db) == before


def test_a_file_where_the_root_should_be_gives_one_clear_line_and_exit_2(root_that_is_a_file, store_db, monkeypatch, capsys):
    before = tables_now(store_db)
    assert run_cli(monkeypatch, store_db, root_that_is_a_file, "backup") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(root_that_is_a_file) in err and "Not a directory" in err
    assert tables_now(store_db) == before
    assert root_that_is_a_file.read_text() == "someone put a file where the backup root should be"
