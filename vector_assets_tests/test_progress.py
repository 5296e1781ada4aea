"""Progress of every COPY: in the core through its callback, and in the run log of the jobs."""


from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets.core.progress import CopyProgress, ProgressReporter
from vector_assets.core.tables import EMBEDDING_TABLE
from vector_assets_tests.support.database import STORE_TABLES
from vector_assets_tests.support.dagster import run_job
from vector_assets_tests.support.database import execute, fill_store

PROGRESS_LINE = "backup langchain_pg_embedding: "


def collecting(interval: float) -> tuple[ProgressReporter, list[CopyProgress]]:
    events: list[CopyProgress] = []
    return ProgressReporter(events.append, interval), events


def slow_down_inserts(dsn: str, seconds_per_row: float) -> None:
    """A row trigger that sleeps: the restore's COPY then really takes longer than the interval."""
    execute(dsn, f"""
        CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN PERFORM pg_sleep({seconds_per_row}); RETURN NEW; END $$;
        CREATE TRIGGER slow_row BEFORE INSERT ON langchain_pg_embedding FOR EACH ROW EXECUTE FUNCTION slow_row();
    """)


def test_backup_reports_rows_bytes_and_a_share_of_the_estimate_while_copying(store_db, backup_root):
    execute(store_db, "ANALYZE langchain_pg_embedding")
    reporter, events = collecting(interval=0.0)

    result = run_backup(BackupRequest(dsn=store_db, root=backup_root, progress=reporter))

    entry = result.manifest.tables[EMBEDDING_TABLE]
    ours = [e for e in events if e.table == EMBEDDING_TABLE]
    during, last = ours[1:-1], ours[-1]
    assert during and all(0 <= e.rows <= entry.rows and 0 < e.bytes <= entry.bytes for e in during)
    assert [e.rows for e in during] == sorted(e.rows for e in during)
    assert during[-1].rows > 0 and during[-1].fraction is not None and 0 < during[-1].fraction <= 0.99
    assert (last.done, last.rows, last.bytes) == (True, entry.rows, entry.bytes)
    assert "MB/s" in during[-1].describe() and "ETA" in during[-1].describe()


def test_restore_of_a_copy_slower_than_the_interval_reports_lines_in_between(empty_db, backup_root):
    fill_store(empty_db, embeddings=3000)  # several of COPY's 1 MiB reads
    made = run_backup(BackupRequest(dsn=empty_db, root=backup_root))
    rows = made.manifest.tables[EMBEDDING_TABLE].rows
    slow_down_inserts(empty_db, 0.0005)
    reporter, events = collecting(interval=0.2)

    run_restore(RestoreRequest(
        fire_triggers=True,  # the test's trigger holds the load
        target_dsn=empty_db, root=backup_root, timestamp=made.timestamp, truncate_before_restore=True,
        safety_backup=False, progress=reporter,
    ))

    loads = [e for e in events if isinstance(e, CopyProgress) and e.action == "restore" and e.table == EMBEDDING_TABLE]
    assert loads[0].bytes == 0 and loads[-1].done and loads[-1].rows == rows
    in_between = [e for e in loads[1:-1] if e.bytes]
    assert len(in_between) >= 2  # 3000 rows at 0.5 ms each take over a second, at one line per 0.2 s
    assert all(e.seconds >= 0.2 and not e.rows_exact and 0 < e.rows <= rows for e in in_between)


def test_backup_job_logs_progress_lines(dagster_instance, monkeypatch):
    monkeypatch.setenv("VECTOR_ASSETS_PROGRESS_INTERVAL", "0.000001")

    result = run_job(dagster_instance, "backup_vector_tables")

    assert result.success
    messages = [
        record.user_message for record in dagster_instance.all_logs(result.run_id)
        if record.user_message.startswith(PROGRESS_LINE)
    ]
    assert len(messages) >= 3 and "MB/s" in messages[1] and messages[-1].endswith("done")


def test_a_malformed_progress_interval_fails_the_run_naming_the_variable(dagster_instance, monkeypatch):
    monkeypatch.setenv("VECTOR_ASSETS_PROGRESS_INTERVAL", "soon")

    result = run_job(dagster_instance, "backup_vector_tables")

    assert not result.success
    message = result.failure_data_for_node("back_up_tables").error.message
    assert "VECTOR_ASSETS_PROGRESS_INTERVAL" in message and "soon" in message
    assert dagster_instance.get_dynamic_partitions("vector_backups") == []


def test_without_a_reporter_nothing_is_wrapped(store_db, backup_root):
    result = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    assert set(result.manifest.tables) == set(STORE_TABLES)
    assert all(entry.copy_seconds is not None and entry.copy_seconds > 0 for entry in result.manifest.tables.values())


def test_progress_interval_setting_reads_durations(monkeypatch):
    from vector_assets import settings

    monkeypatch.setenv("VECTOR_ASSETS_PROGRESS_INTERVAL", "2m")
    assert settings.PROGRESS_INTERVAL.seconds() == 120.0
    monkeypatch.delenv("VECTOR_ASSETS_PROGRESS_INTERVAL")
    assert settings.PROGRESS_INTERVAL.seconds() == 5.0




def test_the_drill_reports_its_restore_and_its_export(store_db, backup_root):
    from vector_assets.core.ops.drill import DrillRequest, run_drill

    made = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    reporter, events = collecting(interval=0.0)

    run_drill(DrillRequest(dsn=store_db, root=backup_root, progress=reporter))

    rows = made.manifest.tables[EMBEDDING_TABLE].rows
    finished = {(e.action, e.table): e.rows for e in events if isinstance(e, CopyProgress) and e.done}
    assert finished[("restore", EMBEDDING_TABLE)] == finished[("drill export", EMBEDDING_TABLE)] == rows


def test_the_first_line_shows_no_eta_until_one_can_be_estimated():
    start = CopyProgress("restore", "langchain_pg_collection", 0, 0, 0.0, None, 244, rows_exact=False)
    later = CopyProgress("restore", "langchain_pg_collection", 1, 122, 0.5, None, 244, rows_exact=False)

    assert start.describe().endswith("0% of 244 B") and "ETA" not in start.describe()
    assert later.describe().endswith("50% of 244 B, ETA 0.5s")
