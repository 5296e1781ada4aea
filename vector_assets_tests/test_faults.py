"""Faults: a killed backup, an interrupted restore, a full disk, and a password in the DSN.

Each fault is real (SIGKILL, pg_terminate_backend, a stopped server, ENOSPC) and lands at a
known point: the operation is made to wait on a lock the test holds, and the fault strikes
while it waits. Afterwards the database and the backup root are consistent, and running the
same request again succeeds.
"""

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
from dagster._serdes import serialize_value
from psycopg2 import sql

from vector_assets.core.errors import (
    BackupWriteError,
    DatabaseUnreachableError,
    GuardedTruncateError,
)
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets.core.ops.truncate import TruncateRequest, run_guarded_truncate
from vector_assets.core.ops.verify import verify_set
from vector_assets.core.pg.connection import server_gone
from vector_assets.core.sets.catalog import scan_root
from vector_assets.core.sets.naming import new_timestamp
from vector_assets_tests.support.database import STORE_TABLES
from vector_assets.dev.demo import create_tables
from vector_assets.dev.embedded import EmbeddedServer, start_embedded
from vector_assets_tests.support.database import execute, fill_store, tables_now
from vector_assets_tests.support.faults import (
    PASSWORD,
    REPO,
    advisory_lock,
    assert_names_target_without_password,
    backend_waiting_on_lock,
    change_the_store,
    failure_message,
    fault_while_waiting,
    hold_embedding_inserts,
    index_names,
    locked,
    random_password,
    restore_in_child,
    run_job,
    url_with_password,
    with_password,
)
from vector_assets_tests.support.files import folder_snapshot

pytestmark = pytest.mark.faults

TS = "20250721_213627"
SMALL_DISK_BYTES = 256 * 1024
BACKUP_JOB = ("backup_vector_tables", "back_up_tables")
TRUNCATE_JOB = ("truncate_vector_tables", "truncate_after_verified_backup")
RESTORE_JOB = ("restore_vector_tables", "restore_from_backup_set")


# --- backup killed --------------------------------------------------------------------------


def start_cli_backup(dsn: str, root: Path, output) -> subprocess.Popen:
    environment = {**os.environ, "VECTOR_ASSETS_PG_DSN": dsn, "VECTOR_ASSETS_ROOT": str(root)}
    command = [sys.executable, "-m", "vector_assets.cli", "backup"]
    return subprocess.Popen(command, cwd=REPO, env=environment, stdout=output, stderr=subprocess.STDOUT)


def test_sigkilled_backup_leaves_only_tmp_files_and_the_next_backup_is_complete(store_db, backup_root, tmp_path):
    """The CLI backup is killed with SIGKILL while its embedding COPY waits behind our lock."""
    folder = backup_root / "vector_bak"
    output_path = tmp_path / "cli.out"
    with locked(store_db, "langchain_pg_embedding", "ACCESS EXCLUSIVE"), open(output_path, "wb") as output:
        process = start_cli_backup(store_db, backup_root, output)
        try:
            still_running = lambda: process.poll() is None  # noqa: E731
            try:
                backend_waiting_on_lock(store_db, 'COPY "langchain_pg_embedding"', still_running)
            except AssertionError as error:
                raise AssertionError(f"{error}; CLI output: {output_path.read_text()}") from None
            process.send_signal(signal.SIGKILL)
            assert process.wait(timeout=10) == -signal.SIGKILL
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

    leftovers = {path.name: path.read_bytes() for path in folder.iterdir()}
    (killed,) = {re.search(r"\d{8}_\d{6}", name).group() for name in leftovers}
    assert sorted(leftovers) == [f"langchain_pg_collection_{killed}.csv.tmp", f"langchain_pg_embedding_{killed}.csv.tmp"]
    assert leftovers[f"langchain_pg_collection_{killed}.csv.tmp"].startswith(b"uuid,name,cmetadata\n")
    assert scan_root(backup_root) == []

    result = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    (backup_set,) = scan_root(backup_root)
    assert backup_set.timestamp == result.timestamp != killed
    assert all(outcome.passed for outcome in verify_set(backup_set))
    in_table = execute(store_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0]
    assert backup_set.manifest.tables["langchain_pg_embedding"].rows == in_table > 0
    # The killed run's files stay as they were: only their writer may remove them.
    assert {name: (folder / name).read_bytes() for name in leftovers} == leftovers


def test_a_new_backup_takes_its_own_timestamp_next_to_a_set_still_being_written(store_db, backup_root):
    """A timestamp with only .tmp files may be another process's backup in progress: not free."""
    folder = backup_root / "vector_bak"
    folder.mkdir()
    now = datetime.now()
    in_progress, busy = {}, []
    for seconds in (0, 1):
        busy.append(new_timestamp(now + timedelta(seconds=seconds)))
        path = folder / f"langchain_pg_embedding_{busy[-1]}.csv.tmp"
        path.write_bytes(b"id,collection_id,embedding,document,cmetadata\n")
        in_progress[path.name] = path.read_bytes()
    # The backup's first try is at this second or later: if the busy seconds had passed, no
    # collision would be tested, and the test says so instead of passing.
    assert new_timestamp() in busy, "the set-up took over a second: the busy timestamps have passed"

    result = run_backup(BackupRequest(dsn=store_db, root=backup_root))

    assert result.timestamp > busy[-1]  # it waited the busy seconds out
    assert {name: (folder / name).read_bytes() for name in in_progress} == in_progress
    assert [backup_set.timestamp for backup_set in scan_root(backup_root)] == [result.timestamp]


# --- restore interrupted ----------------------------------------------------------------------


@pytest.fixture
def changed_since_backup(store_db: str, backup_root: Path) -> dict:
    """A set of the store, then the store changed (10 rows deleted, one edited); the set's rows."""
    run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS))
    in_set = tables_now(store_db)
    change_the_store(store_db)
    return in_set


def test_restore_whose_connection_is_terminated_mid_copy_changes_nothing_and_a_retry_succeeds(
    store_db, backup_root, changed_since_backup
):
    hold_embedding_inserts(store_db)
    before, indexes, files = tables_now(store_db), index_names(store_db), folder_snapshot(backup_root)
    request = RestoreRequest(
        fire_triggers=True,  # the test's trigger holds the load
        target_dsn=with_password(store_db, PASSWORD), root=backup_root, timestamp=TS, truncate_before_restore=True
    )
    holder = advisory_lock(store_db)
    terminate = lambda pid: execute(store_db, "SELECT pg_terminate_backend(%s)", (pid,))  # noqa: E731
    with fault_while_waiting(store_db, 'COPY "langchain_pg_embedding"', terminate, holder.close):
        error = restore_in_child(request)

    assert error is not None and error.error_type == DatabaseUnreachableError.__name__, error
    assert error.retryable
    assert_names_target_without_password(error, store_db)
    assert tables_now(store_db) == before
    assert index_names(store_db) == indexes  # the GIN index dropped for the load is back
    assert folder_snapshot(backup_root) == files

    run_restore(request)
    assert tables_now(store_db) == changed_since_backup


@pytest.fixture
def own_server() -> Iterator[EmbeddedServer]:
    """A second embedded server this test may stop; a short path keeps its socket name short."""
    data_dir = Path(tempfile.mkdtemp(prefix="va-f-"))
    server = start_embedded(data_dir)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


SHUTDOWN_SIGNALS = {
    "fast": signal.SIGINT,  # what pg_ctl stop -m fast sends: sessions are terminated, clean shutdown
    "immediate": signal.SIGQUIT,  # as after a crash: no checkpoint, recovery on the next start
}


def stop_server(server: EmbeddedServer, mode: str) -> None:
    """Signal the postmaster directly: pixeltable's stop() takes a lock shared by every process
    on the machine, and a fault that blocks on it would leave the restore waiting forever."""
    postmaster = server.server.get_postmaster_info().process
    postmaster.send_signal(SHUTDOWN_SIGNALS[mode])
    postmaster.wait(30)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_restore_interrupted_by_the_target_server_stopping_changes_nothing_and_a_retry_succeeds(
    own_server, backup_root, mode
):
    dsn = own_server.dsn()
    fill_store(dsn)
    run_backup(BackupRequest(dsn=dsn, root=backup_root, timestamp=TS))
    in_set = tables_now(dsn)
    change_the_store(dsn)
    hold_embedding_inserts(dsn)
    before, indexes = tables_now(dsn), index_names(dsn)
    request = RestoreRequest(
        fire_triggers=True,  # the test's trigger holds the load
        target_dsn=with_password(dsn, PASSWORD), root=backup_root, timestamp=TS, truncate_before_restore=True
    )
    holder = advisory_lock(dsn)
    with fault_while_waiting(dsn, 'COPY "langchain_pg_embedding"', lambda pid: stop_server(own_server, mode), holder.close):
        error = restore_in_child(request)

    # Under load the [immediate] stop once read as a refused load: libpq had reported the COPY's
    # failed write before it read the end of the connection (see the test below).
    assert error is not None and error.error_type == DatabaseUnreachableError.__name__, error
    assert error.retryable and "\n" not in str(error)
    assert_names_target_without_password(error, dsn)
    own_server.server.start()
    assert own_server.dsn() == dsn
    assert tables_now(dsn) == before
    assert index_names(dsn) == indexes

    run_restore(request)
    assert tables_now(dsn) == in_set


def server_error(dsn: str, statement: str, terminated: bool = False) -> psycopg2.Error:
    """What the server answers ``statement`` with, on a session of its own (terminated first)."""
    conn = psycopg2.connect(dsn)
    try:
        if terminated:
            execute(dsn, "SELECT pg_terminate_backend(%s, 10000)", (conn.info.backend_pid,))
        with pytest.raises(psycopg2.Error) as raised, conn.cursor() as cursor:
            cursor.execute(statement)
        return raised.value
    finally:
        conn.close()


def test_an_error_libpq_made_itself_says_the_server_is_gone_and_the_servers_refusals_do_not(store_db):
    """libpq reports a COPY's write that found the server gone as a plain DatabaseError with no
    SQLSTATE, sometimes before it has read the end of the connection (still flagged OK): the
    [immediate] restore above once failed so under load. The error says it on its own."""
    libpq_own = psycopg2.DatabaseError("server closed the connection unexpectedly")  # as libpq words it, no SQLSTATE
    shut_down = server_error(store_db, "SELECT 1", terminated=True)
    refused = [server_error(store_db, "SELEC 1"), server_error(store_db, "SELECT '[1,x]'::vector"),
               server_error(store_db, "SELECT 1/0")]

    assert server_gone(libpq_own) and isinstance(shut_down, psycopg2.OperationalError) and server_gone(shut_down)
    assert [error.pgcode for error in refused] == ["42601", "22P02", "22012"]
    assert not any(server_gone(error) for error in refused)
    assert not server_gone(psycopg2.ProgrammingError("no results to fetch"))  # psycopg2's own misuse errors


# --- disk full --------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs: writes hit a real ENOSPC once it is full. Needs the right to mount."""
    mount_point = tmp_path / "small_disk"
    mount_point.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK_BYTES}", "tmpfs", str(mount_point)],
            capture_output=True, text=True,
        )
    except FileNotFoundError:
        pytest.skip("no mount command; the /dev/full tests cover disk-full portably")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip()}); the /dev/full tests cover it")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def test_disk_filling_mid_copy_fails_backup_and_truncate_cleanly_and_truncates_nothing(monkeypatch, empty_db, small_disk):
    """About 400 KB of embeddings onto a 256 KiB disk: the write that fills it must be the one reported."""
    fill_store(empty_db, embeddings=100)
    root = small_disk / "training_data"
    root.mkdir()
    folder = root / "vector_bak"
    before, free = tables_now(empty_db), free_bytes(small_disk)
    disk_full_at_embeddings = r"disk full while writing \S+/langchain_pg_embedding_\d{8}_\d{6}\.csv"

    with pytest.raises(BackupWriteError, match=disk_full_at_embeddings):
        run_backup(BackupRequest(dsn=empty_db, root=root))
    assert list(folder.iterdir()) == []
    with pytest.raises(GuardedTruncateError, match="step 'backup', nothing was truncated: " + disk_full_at_embeddings):
        run_guarded_truncate(TruncateRequest(dsn=empty_db, root=root))
    assert list(folder.iterdir()) == []

    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", empty_db)
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", str(root))
    with dg.instance_for_test() as instance:
        for job in (BACKUP_JOB, TRUNCATE_JOB):
            message = failure_message(run_job(instance, job), job)
            assert re.search(disk_full_at_embeddings, message), message
            assert list(folder.iterdir()) == []
        assert "nothing was truncated" in message
        assert instance.get_dynamic_partitions("vector_backups") == []
    assert tables_now(empty_db) == before
    assert free_bytes(small_disk) == free  # every partial file was removed


def test_disk_full_at_the_log_after_the_csvs_were_published_leaves_only_the_earlier_set(dagster_instance, store_db, backup_root):
    """Writes to /dev/full fail with ENOSPC. The log is written after the CSVs are renamed into place."""
    earlier = run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=TS))
    log_tmp = earlier.folder.path / "vector_backup_log.txt.tmp"
    files, before = folder_snapshot(backup_root), tables_now(store_db)
    for job in (BACKUP_JOB, TRUNCATE_JOB):
        os.symlink("/dev/full", log_tmp)
        message = failure_message(run_job(dagster_instance, job), job)
        assert f"disk full while writing {earlier.folder.path / 'vector_backup_log.txt'}" in message
        assert not os.path.lexists(log_tmp)
        assert folder_snapshot(backup_root) == files
    assert "nothing was truncated" in message
    assert tables_now(store_db) == before
    assert [backup_set.timestamp for backup_set in scan_root(backup_root)] == [TS]
    assert dagster_instance.get_dynamic_partitions("vector_backups") == []


def test_disk_full_after_the_truncate_committed_reports_the_truncate_as_done(dagster_instance, store_db, backup_root):
    """The log's truncate note is rewritten after the commit; a full disk then must not make the run
    claim that nothing was truncated. Our reader's lock parks the TRUNCATE while the disk fills."""
    rows = execute(store_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0]
    log_tmp = backup_root / "vector_bak" / "vector_backup_log.txt.tmp"
    reader = psycopg2.connect(store_db)
    with reader.cursor() as cursor:
        cursor.execute("LOCK TABLE langchain_pg_embedding IN ACCESS SHARE MODE")
    with fault_while_waiting(store_db, "TRUNCATE", lambda pid: os.symlink("/dev/full", log_tmp), reader.close):
        result = run_job(dagster_instance, TRUNCATE_JOB)

    assert result.success
    assert execute(store_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0] == 0
    (backup_set,) = scan_root(backup_root)
    assert backup_set.manifest.tables["langchain_pg_embedding"].rows == rows
    assert all(outcome.passed for outcome in verify_set(backup_set))
    assert dagster_instance.get_dynamic_partitions("vector_backups") == [backup_set.key]
    warnings = [
        entry.user_message for entry in dagster_instance.all_logs(result.run_id) if entry.level == logging.WARNING
    ]
    assert any("truncate committed" in text and "disk full while writing" in text for text in warnings), warnings
    assert not os.path.lexists(log_tmp)


# --- secrets ----------------------------------------------------------------------------------


@pytest.fixture
def secret_role(store_db: str) -> Iterator[tuple[str, str]]:
    """A login role with a random password. Over the embedded server's socket the password is
    accepted and ignored (trust), which is enough: the DSN carrying it flows through our code."""
    role, password = f"va_secret_{uuid.uuid4().hex[:8]}", random_password()
    create = sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
    execute(store_db, create)
    try:
        yield role, password
    finally:
        execute(store_db, sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def places_in_the_instance(instance, results) -> dict[str, str]:
    """Everything Dagster kept about the runs: run records, every event, asset events, its files."""
    places: dict[str, str] = {}
    for result in results:
        run = instance.get_run_by_id(result.run_id)
        places[f"run record of {run.job_name}"] = serialize_value(run) + repr(run.run_config)
        events = instance.all_logs(result.run_id)
        places[f"event log of {run.job_name}"] = "\n".join(serialize_value(entry) for entry in events)
    for key in [dg.AssetKey(name) for table in STORE_TABLES for name in (table, f"{table}_backup")]:
        records = [*instance.fetch_materializations(key, limit=100).records, *instance.fetch_observations(key, limit=100).records]
        places[f"asset events of {key.to_user_string()}"] = "\n".join(serialize_value(r.event_log_entry) for r in records)
    for path in Path(instance.root_directory).rglob("*"):
        if path.is_file():
            places[f"instance file {path}"] = path.read_bytes().decode("utf-8", errors="replace")
    return places


def test_a_password_in_the_dsn_is_in_no_event_run_config_metadata_log_or_file(
    monkeypatch, capfd, store_db, second_db, backup_root, secret_role
):
    role, password = secret_role
    with psycopg2.connect(second_db) as conn, conn.cursor() as cursor:
        create_tables(cursor)
    conn.close()
    source_rows = tables_now(store_db)
    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", url_with_password(store_db, role, password))
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", str(backup_root))
    monkeypatch.setenv("FAULTS_TARGET_DSN", with_password(second_db, password, user=role))
    monkeypatch.setenv("FAULTS_UNREACHABLE_DSN", f"postgresql://{role}:{password}@127.0.0.1:1/vectors?connect_timeout=2")
    with dg.instance_for_test() as instance:
        results = [run_job(instance, BACKUP_JOB), run_job(instance, TRUNCATE_JOB)]
        key = scan_root(backup_root)[-1].key
        results.append(run_job(instance, RESTORE_JOB, {"target": "FAULTS_TARGET_DSN"}, partition_key=key))
        unreachable = run_job(instance, RESTORE_JOB, {"target": "FAULTS_UNREACHABLE_DSN"}, partition_key=key)
        assert [result.success for result in results] == [True, True, True]
        assert "cannot connect to database 'vectors' on 127.0.0.1:1" in failure_message(unreachable, RESTORE_JOB)
        places = places_in_the_instance(instance, [*results, unreachable])

    assert tables_now(second_db) == source_rows  # the runs really used the DSNs with the password
    for backup_set in scan_root(backup_root):
        assert backup_set.manifest.source["user"] == role
    for name, content in folder_snapshot(backup_root).items():
        places[f"backup root file {name}"] = content.decode("utf-8", errors="replace")
    captured = capfd.readouterr()
    places["console output"] = captured.out + captured.err
    # The search looked where the data is: manifests, the log, Dagster's own files, the console.
    assert any("vector_backup_" in name and name.endswith(".json") for name in places)
    assert any(name.endswith("vector_backup_log.txt") for name in places)
    assert any(name.startswith("instance file") and "truncate_performed" in text for name, text in places.items())
    assert "restore_from_backup_set" in places["console output"]
    assert [place for place, text in places.items() if password in text] == []
