"""The command line at parity with the UI: every command builds the same request as its op,
works with no Dagster process running, and exits 0, 2 (will fail again) or 75 (retry)."""

import os
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

from vector_assets.cli import main
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.sets.catalog import scan_root
from vector_assets.core.tables import EMBEDDING_TABLE
from vector_assets.dev.demo import create_tables
from vector_assets_tests.support.database import execute, tables_now
from vector_assets_tests.support.files import folder_snapshot

CLI = str(Path(sys.executable).with_name("vector-assets"))


@pytest.fixture
def cli_env(monkeypatch, store_db, backup_root):
    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", store_db)
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", str(backup_root))
    return store_db, backup_root


def cli(*args: str) -> int:
    return main(list(args))


def test_restore_latest_twice_restores_the_backup_both_times_not_the_first_restores_safety_set(store_db, backup_root):
    before = tables_now(store_db)
    run_backup(BackupRequest(dsn=store_db, root=backup_root))
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "VECTOR_ASSETS_"))}
    environment.update(VECTOR_ASSETS_PG_DSN=store_db, VECTOR_ASSETS_ROOT=str(backup_root))
    for _ in range(2):
        execute(store_db, "DELETE FROM langchain_pg_embedding WHERE id IN (SELECT id FROM langchain_pg_embedding LIMIT 50)")
        result = subprocess.run([CLI, "restore", "latest", "--replace", "--apply"], env=environment, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert tables_now(store_db) == before


def test_list_into_a_pipe_its_reader_has_closed_ends_quietly(store_db, backup_root):
    """As ``vector-assets list | head`` does once head has what it wants."""
    run_backup(BackupRequest(dsn=store_db, root=backup_root))
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "VECTOR_ASSETS_"))}
    environment.update(VECTOR_ASSETS_ROOT=str(backup_root))
    reader, writer = os.pipe()
    os.close(reader)
    try:
        result = subprocess.run([CLI, "list"], env=environment, stdout=writer, stderr=subprocess.PIPE, text=True)
    finally:
        os.close(writer)
    assert result.returncode == 0 and "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr


def test_restore_latest_replaces_the_tables_with_no_dagster_process_running(store_db, backup_root):
    before = tables_now(store_db)
    run_backup(BackupRequest(dsn=store_db, root=backup_root))
    execute(store_db, "DELETE FROM langchain_pg_embedding WHERE id IN (SELECT id FROM langchain_pg_embedding LIMIT 50)")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "VECTOR_ASSETS_"))}
    environment.update(VECTOR_ASSETS_PG_DSN=store_db, VECTOR_ASSETS_ROOT=str(backup_root))
    result = subprocess.run([CLI, "restore", "latest", "--replace", "--apply"], env=environment, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "restored set" in result.stdout and "300 loaded" in result.stdout
    assert tables_now(store_db) == before


def test_restore_into_a_target_named_by_an_environment_variable(cli_env, second_db, monkeypatch, capsys):
    store_db, backup_root = cli_env
    key = run_backup(BackupRequest(dsn=store_db, root=backup_root)).timestamp
    with psycopg2.connect(second_db) as conn, conn.cursor() as cursor:
        create_tables(cursor)
    conn.close()
    monkeypatch.setenv("SCRATCH_VECTORS_DSN", second_db)
    assert cli("restore", key, "--target", "SCRATCH_VECTORS_DSN", "--apply") == 0
    assert tables_now(second_db) == tables_now(store_db)


def test_a_dsn_given_as_the_target_is_refused_and_not_echoed(cli_env, capsys):
    store_db, backup_root = cli_env
    key = run_backup(BackupRequest(dsn=store_db, root=backup_root)).timestamp
    before, files_before = tables_now(store_db), folder_snapshot(backup_root)
    assert cli("restore", key, "--target", "postgresql://u:hunter2@db/x", "--apply") == 2
    message = capsys.readouterr().err
    assert "NAME of an environment variable" in message and "hunter2" not in message
    assert tables_now(store_db) == before and folder_snapshot(backup_root) == files_before


def test_restoring_a_set_that_does_not_exist_names_the_nearest_keys(cli_env, capsys):
    store_db, backup_root = cli_env
    key = run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp="20250101_000000")).timestamp
    before = tables_now(store_db)
    assert cli("restore", "20250101_000001", "--apply") == 2
    message = capsys.readouterr().err
    assert "no complete backup set '20250101_000001'" in message and key in message
    assert tables_now(store_db) == before


def test_truncate_dry_run_counts_and_changes_nothing_then_truncate_backs_up_first(cli_env, capsys):
    store_db, backup_root = cli_env
    before = tables_now(store_db)
    assert cli("truncate") == 0  # a dry run unless --apply
    out = capsys.readouterr().out
    assert "dry run:" in out and "would remove langchain_pg_embedding: 300 rows" in out and "rolled back" in out
    assert "run with --apply to truncate" in out
    assert tables_now(store_db) == before and list(backup_root.iterdir()) == []

    assert cli("truncate", "--apply") == 0
    out = capsys.readouterr().out
    assert "verified); truncate performed: yes; langchain_pg_embedding: 300 -> 0 rows" in out
    (backup_set,) = scan_root(backup_root)
    assert backup_set.manifest.tables[EMBEDDING_TABLE].rows == 300
    assert execute(store_db, "SELECT count(*) FROM langchain_pg_embedding") == [(0,)]


def test_verify_passes_an_intact_set_and_fails_a_damaged_one_with_exit_2(cli_env, capsys):
    store_db, backup_root = cli_env
    result = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    assert cli("verify", result.timestamp) == 0
    assert capsys.readouterr().out.rstrip().endswith("verified")
    path = result.paths[EMBEDDING_TABLE]
    path.write_bytes(path.read_bytes().replace(b"question", b"Question", 1))
    assert cli("verify") == 2
    assert "FAIL sha256_matches_manifest" in capsys.readouterr().out


def test_drill_restores_the_newest_set_into_a_scratch_database_and_passes(cli_env, capsys):
    store_db, backup_root = cli_env
    run_backup(BackupRequest(dsn=store_db, root=backup_root))
    assert cli("drill") == 0
    out = capsys.readouterr().out
    assert "passed" in out and "scratch database dropped" in out


def test_prune_shows_the_plan_and_deletes_only_with_apply(cli_env, monkeypatch, capsys):
    store_db, backup_root = cli_env
    for timestamp in ("20250101_020000", "20250102_020000", "20250103_020000"):
        run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=timestamp))
    monkeypatch.setenv("VECTOR_ASSETS_KEEP_DAILY", "1")
    monkeypatch.setenv("VECTOR_ASSETS_KEEP_WEEKLY", "0")
    monkeypatch.setenv("VECTOR_ASSETS_KEEP_MONTHLY", "0")
    before = folder_snapshot(backup_root)
    assert cli("prune") == 0
    assert "and delete 2 sets" in capsys.readouterr().out
    assert folder_snapshot(backup_root) == before
    assert cli("prune", "--apply") == 0
    assert "deleted 2 sets" in capsys.readouterr().out
    assert [s.key for s in scan_root(backup_root)] == ["20250103_020000"]


def test_an_unreachable_database_exits_75(backup_root, monkeypatch, capsys):
    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", "postgresql://nobody:secret@127.0.0.1:1/none?connect_timeout=2")
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", str(backup_root))
    assert cli("truncate", "--dry-run") == 75
    message = capsys.readouterr().err
    assert "cannot connect to database 'none' on 127.0.0.1:1" in message and "secret" not in message


def test_a_target_that_is_not_declared_is_refused_by_name(cli_env, monkeypatch, capsys):
    store_db, backup_root = cli_env
    key = run_backup(BackupRequest(dsn=store_db, root=backup_root)).timestamp
    monkeypatch.setenv("UNDECLARED_DSN", store_db)
    before = tables_now(store_db)
    assert cli("restore", key, "--target", "UNDECLARED_DSN", "--apply") == 2
    err = capsys.readouterr().err
    assert "'UNDECLARED_DSN' is not declared in VECTOR_ASSETS_RESTORE_TARGETS; declared: default, SCRATCH_VECTORS_DSN" in err
    assert tables_now(store_db) == before


def cli_environment(store_db: str, backup_root: Path, **extra: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "VECTOR_ASSETS_"))}
    environment.update(VECTOR_ASSETS_PG_DSN=store_db, VECTOR_ASSETS_ROOT=str(backup_root), **extra)
    return environment


def test_backup_piped_prints_plain_progress_lines_on_stderr(store_db, backup_root):
    environment = cli_environment(store_db, backup_root, VECTOR_ASSETS_PROGRESS_INTERVAL="0.000001")

    result = subprocess.run([CLI, "backup"], env=environment, capture_output=True, text=True)

    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("backup langchain_pg_embedding: ")]
    assert len(lines) >= 3 and "MB/s" in lines[1] and lines[-1].endswith("done")
    assert "MB/s" in result.stdout and "backup langchain_pg_embedding:" not in result.stdout


def test_backup_in_a_terminal_draws_a_progress_bar(store_db, backup_root):
    import pty

    environment = cli_environment(store_db, backup_root, COLUMNS="120", TERM="xterm")
    leader, follower = pty.openpty()
    process = subprocess.Popen([CLI, "backup"], env=environment, stdout=follower, stderr=follower, stdin=follower)
    os.close(follower)
    output = bytearray()
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closes when the process ends
            break
        if not chunk:
            break
        output.extend(chunk)
    assert process.wait(timeout=60) == 0, output.decode(errors="replace")
    text = output.decode(errors="replace")
    assert "━" in text and "backup langchain_pg_embedding" in text and "set " in text
    assert not any(line.startswith("backup langchain_pg_embedding: ") for line in text.splitlines())


def test_a_missing_sets_error_suggests_the_nearest_backup_never_a_safety_set_and_says_its_kind(cli_env, capsys):
    store_db, backup_root = cli_env
    backup = run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp="20250101_000000")).timestamp
    assert cli("restore", backup, "--apply") == 0  # its safety set is the newest set now
    capsys.readouterr()
    assert cli("restore", "20990101_000000", "--apply") == 2
    message = capsys.readouterr().err
    assert f"nearest existing: {backup} (full)" in message and "pre_restore" not in message
