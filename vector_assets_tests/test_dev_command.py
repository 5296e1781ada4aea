"""`make dev` / `vector-assets dev` as a new user meets it: the port, the alert links, the terminal,
what the backup assets say they are."""

import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg

from vector_assets import settings
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.sets.catalog import scan_root
from vector_assets.core.sets.formats import FORMATS
from vector_assets.core.sets.naming import new_timestamp
from vector_assets.dev.demo import ensure_fresh_demo_backup
from vector_assets.dev.documents import DEMO_STORES, DEMO_TABLES, demo_stores, start_documents_demo
from vector_assets.dev.server import FailureCondenser, dev_environment
from vector_assets.store_files import PACKAGE_STORES, declared_stores
from vector_assets_tests.support.dagster import Ticker, asset_checks, definitions
from vector_assets_tests.support.database import execute

REPO = Path(__file__).resolve().parents[1]

STEP = "2026-12-06 09:51:13 +0000 - dagster - ERROR - restore_vector_tables - 06ca6936 - 6890 - restore_from_backup_set"
RUN = "2026-12-06 09:51:14 +0000 - dagster - ERROR - restore_vector_tables - 06ca6936 - 6811"
MESSAGE = "restore failed: set 20250721_213627 holds no collection named 'x'; it holds 3: 'ddl', 'documentation', 'sql'"
TRACE = [
    "Stack Trace:",
    '  File "/venv/dagster/_core/execution/plan/execute_plan.py", line 243, in dagster_event_sequence_for_step',
    "    yield from check.generator(step_events)",
    '  File "/work/main/vector_assets/defs/restore.py", line 92, in restore_from_backup_set',
    '    raise as_failure(error, "restore") from None',
]


def terminal(lines: list[str]) -> list[str]:
    condenser = FailureCondenser()
    return [shown.rstrip("\n") for line in lines for shown in condenser.feed(line + "\n")]


def test_make_dev_takes_a_port():
    def command(*args: str) -> str:
        done = subprocess.run(["make", "--no-print-directory", "-n", "dev", *args], cwd=REPO, capture_output=True,
                              text=True, check=True)  # under `make test`, make would print "Leaving directory"
        return next(line for line in done.stdout.splitlines() if "vector-assets dev" in line)

    assert command("PORT=3300").endswith("vector-assets dev --port 3300")
    assert command().endswith("vector-assets dev --port 3000")


def test_alert_links_follow_the_port_unless_the_user_said_where_the_ui_is(tmp_path):
    root = {"VECTOR_ASSETS_ROOT": str(tmp_path / "root")}

    assert dev_environment("127.0.0.1", "3300", root)["VECTOR_ASSETS_UI_URL"] == "http://127.0.0.1:3300"
    told = {**root, "VECTOR_ASSETS_UI_URL": "https://dagster.example.com"}
    assert dev_environment("127.0.0.1", "3300", told)["VECTOR_ASSETS_UI_URL"] == "https://dagster.example.com"


def test_a_user_error_reaches_the_terminal_in_one_line_once_without_its_stack_trace():
    failure = f"dagster._core.definitions.events.Failure: {MESSAGE}"
    shown = terminal([
        f"{STEP} - STEP_FAILURE - Execution of step \"restore_from_backup_set\" failed.", "", failure, "", *TRACE, "",
        f"{RUN} - RUN_FAILURE - Execution of run for \"restore_vector_tables\" failed.", "", failure, "", *TRACE, "",
        f"{RUN} - restore_from_backup_set - the next INFO line",
    ])

    assert shown == [
        f"{STEP} - STEP_FAILURE - Execution of step \"restore_from_backup_set\" failed.",
        f"    {MESSAGE}",
        f"{RUN} - RUN_FAILURE - Execution of run for \"restore_vector_tables\" failed.",
        f"{RUN} - restore_from_backup_set - the next INFO line",
    ]


def test_an_unexpected_error_shows_its_cause_and_other_output_passes_unchanged():
    shown = terminal([
        "Serving dagster-webserver on http://127.0.0.1:3000 in process 1",
        f"{STEP} - STEP_FAILURE - Execution of step \"restore_from_backup_set\" failed.", "",
        "dagster._core.errors.DagsterExecutionStepExecutionError: Error occurred while executing op \"restore\":", "",
        *TRACE, "", "The above exception was caused by the following exception:", "KeyError: 'langchain_pg_embedding'", "",
        *TRACE,
    ])

    assert shown == [
        "Serving dagster-webserver on http://127.0.0.1:3000 in process 1",
        f"{STEP} - STEP_FAILURE - Execution of step \"restore_from_backup_set\" failed.",
        "    Error occurred while executing op \"restore\":",
        "    KeyError: 'langchain_pg_embedding'",
    ]


def test_the_backup_assets_say_they_hold_sets_in_every_format():
    graph = definitions().resolve_asset_graph()
    for table in ("langchain_pg_collection", "langchain_pg_embedding"):
        description = graph.get(dg.AssetKey(f"{table}_backup")).description
        assert "CSV backups" not in description
        assert all(name in description for name in FORMATS), description


def test_the_demo_store_is_backed_up_at_start_up_only_when_no_set_is_fresh(store_db, backup_root):
    old = run_backup(BackupRequest(dsn=store_db, root=backup_root, timestamp=new_timestamp(datetime.now() - timedelta(days=30))))

    note = ensure_fresh_demo_backup(store_db, backup_root)

    assert note is not None and f"the newest set, {old.timestamp}, is older than 26h" in note
    assert len(scan_root(backup_root)) == 2, "the old set stays as history"
    assert ensure_fresh_demo_backup(store_db, backup_root) is None and len(scan_root(backup_root)) == 2


def test_the_freshness_sensor_reads_past_a_check_run_in_progress(dagster_instance, store_db, backup_root):
    """Execute all on the Checks tab plans freshness_check in a run; until it ends, the last
    evaluation is the one to compare with."""
    run_backup(BackupRequest(dsn=store_db, root=backup_root))
    Ticker(dagster_instance).tick()
    job = dg.define_asset_job("freshness_only", selection=dg.AssetSelection.checks(asset_checks("backup_freshness_checks")))
    resolved = dg.Definitions.merge(definitions(), dg.Definitions(jobs=[job])).resolve_job_def("freshness_only")
    dagster_instance.create_run_for_job(resolved)  # created, not yet executed: its checks are planned
    check = dg.AssetCheckKey(dg.AssetKey("langchain_pg_embedding_backup"), "freshness_check")
    latest = dagster_instance.event_log_storage.get_latest_asset_check_execution_by_key([check])[check]
    assert latest.status.value == "PLANNED"

    context = dg.build_sensor_context(instance=dagster_instance, definitions=definitions())
    result = definitions().resolve_sensor_def("vector_freshness_sensor").evaluate_tick(context)

    assert result.run_requests == [] and result.asset_events == []


def test_the_documents_demo_is_a_pgvectorstore_and_a_llamaindex_table_each_a_store_with_a_fresh_set(empty_db, tmp_path):
    environment = {"VECTOR_ASSETS_ROOT": str(tmp_path / "root")}

    notes = start_documents_demo(empty_db, environment)

    assert (environment["DOCUMENTS_PG_DSN"], environment["VECTOR_ASSETS_STORES_DIR"]) == (empty_db, str(DEMO_STORES))
    stores = {store.name: store for store in demo_stores(environment)}
    assert {name: (store.layout, store.table_names, store.dsn_variable) for name, store in stores.items()} == {
        "docs": ("langchain_postgres", ("product_docs",), "DOCUMENTS_PG_DSN"),
        "notes": ("llamaindex", ("data_notes",), "DOCUMENTS_PG_DSN"),
    }
    for name, (layout, client_name, rows, _) in DEMO_TABLES.items():
        table = layout.table_name(client_name)
        assert execute(empty_db, f"SELECT count(*) FROM {table}") == [(rows,)]
        assert execute(empty_db, "SELECT count(*) FROM pg_indexes WHERE tablename = %s AND indexdef LIKE %s",
                       (table, "%USING hnsw (embedding vector_cosine_ops) WITH (m='16', ef_construction='64')")) == [(1,)]
        sets = scan_root(settings.ROOT.get(stores[name].environment()))
        assert [backup_set.manifest.tables[table].rows for backup_set in sets] == [rows]
    assert execute(empty_db, "SELECT attgenerated FROM pg_attribute WHERE attrelid = 'data_notes'::regclass "
                             "AND attname = 'text_search_tsv'") == [("s",)]
    assert execute(empty_db, "SELECT last_value FROM data_notes_id_seq") == [(DEMO_TABLES["notes"][2],)]
    assert [note.split(" as set ")[0] for note in notes[1:]] == ["backed store docs up", "backed store notes up"]
    assert start_documents_demo(empty_db, environment) == [], "a restart makes nothing and backs nothing up again"


def test_the_package_declares_no_store_so_a_users_code_location_has_no_demo_store():
    assert declared_stores(PACKAGE_STORES) == []
    assert DEMO_STORES != PACKAGE_STORES and not DEMO_STORES.is_relative_to(PACKAGE_STORES)
