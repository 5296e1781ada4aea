"""Index rebuilds after a replacing restore: sized from the estimated graph, capped, parallel,
watched on a second connection, and honest when the graph does not fit in memory."""

import os
import re

import psycopg2
import pytest

from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets.core.pg.index_builds import (
    FLOOR_BYTES,
    IndexBuildProgress,
    IndexBuildSettings,
    plan_build_memory,
    server_available_memory,
    server_is_local,
)
from vector_assets.core.units import human_size
from vector_assets.core.progress import ProgressReporter
from vector_assets_tests.support.database import execute, fill_store, tables_now

HNSW = "CREATE INDEX emb_hnsw ON langchain_pg_embedding USING hnsw (embedding vector_cosine_ops) WITH (m = 16)"


@pytest.fixture
def indexed_set(empty_db, backup_root) -> tuple[str, str]:
    fill_store(empty_db, embeddings=3000)
    execute(empty_db, HNSW)
    return empty_db, run_backup(BackupRequest(dsn=empty_db, root=backup_root)).timestamp


def replace(dsn: str, root, key: str, **kwargs):
    return run_restore(RestoreRequest(
        target_dsn=dsn, root=root, timestamp=key, truncate_before_restore=True, safety_backup=False, **kwargs
    ))


def builds_by_name(result) -> dict:
    return {build.name: build for build in result.index_builds}


def test_each_build_gets_memory_for_its_graph_and_the_servers_workers(indexed_set, backup_root):
    dsn, key = indexed_set
    before = tables_now(dsn)
    server_workers = int(execute(dsn, "SELECT current_setting('max_parallel_workers')")[0][0])

    result = replace(dsn, backup_root, key)

    hnsw = builds_by_name(result)["emb_hnsw"]
    # 3000 vectors of 384 floats with 2 x 16 neighbours each is a few MB: PostgreSQL's default suffices
    assert (hnsw.method, hnsw.memory_bytes, hnsw.spilled) == ("hnsw", FLOOR_BYTES, None)
    # the embedded server listens on this machine's Unix socket: the leader builds too, so one core is its own
    assert hnsw.workers == min(server_workers, 4, os.cpu_count() - 1) and hnsw.seconds > 0
    assert tables_now(dsn) == before


def test_only_a_server_on_this_machine_is_held_to_its_cores(empty_db):
    conn = psycopg2.connect(empty_db)
    try:
        assert server_is_local(conn.info.host)
    finally:
        conn.close()
    assert [server_is_local(host) for host in ("localhost", "127.0.0.1", "::1", "/var/run/postgresql")] == [True] * 4
    assert [server_is_local(host) for host in ("db.internal", "10.0.0.5", "", None)] == [False] * 4


def test_a_cap_below_the_graph_is_obeyed_and_the_spill_is_reported(indexed_set, backup_root):
    dsn, key = indexed_set

    result = replace(dsn, backup_root, key, index_builds=IndexBuildSettings(memory_cap_bytes=10**6, workers=0))

    hnsw = builds_by_name(result)["emb_hnsw"]
    assert (hnsw.memory_bytes, hnsw.workers) == (10**6, 0)
    assert hnsw.spilled is not None and "no longer fits into maintenance_work_mem" in hnsw.spilled
    assert "did not fit in memory" in hnsw.message


def test_a_build_whose_estimate_exceeds_the_limit_says_so_first_and_sets_no_more_than_the_limit(indexed_set, backup_root):
    dsn, key = indexed_set
    events = []
    limit = 10**6

    result = replace(dsn, backup_root, key, progress=ProgressReporter(events.append, 0.02),
                     index_builds=IndexBuildSettings(memory_cap_bytes=limit, workers=0, memory_cap_name="MY_LIMIT"))

    hnsw = builds_by_name(result)["emb_hnsw"]
    assert hnsw.needed_bytes > limit and hnsw.memory_bytes == limit
    builds = [e for e in events if isinstance(e, IndexBuildProgress) and e.index == "emb_hnsw"]
    said = builds[0].describe()  # before any reading of the build itself
    assert said == hnsw.shortfall and "\n" not in said
    assert said.startswith(f"index emb_hnsw would need about {human_size(hnsw.needed_bytes)} of maintenance_work_mem")
    assert f"it gets {human_size(limit)} (MY_LIMIT)" in said and said.endswith("x as long")
    # what the server really had: pgvector's notice counts the rows whose vectors (1,544 bytes
    # each at 384 dimensions, before their neighbour lists) fit in it
    fitted = int(re.search(r"after (\d+) tuples", hnsw.spilled).group(1))
    assert 0 < fitted * (8 + 4 * 384) <= limit


def test_a_build_never_asks_for_more_than_half_of_what_the_server_has_available():
    settings = IndexBuildSettings(memory_cap_bytes=10 * 10**9, memory_cap_name="MY_LIMIT")

    short = plan_build_memory(8 * 10**9, settings, server_available_bytes=4 * 10**9)
    assert (short.granted_bytes, short.fits) == (2 * 10**9, False)
    assert "it gets 2.0 GB (half of the 4.0 GB the server has available)" in short.shortfall("emb_hnsw")
    assert 1 < short.slowdown < plan_build_memory(8 * 10**9, settings, 2 * 10**9).slowdown

    capped = plan_build_memory(8 * 10**9, IndexBuildSettings(memory_cap_bytes=10**9, memory_cap_name="MY_LIMIT"), 64 * 10**9)
    assert (capped.granted_bytes, capped.limited_by) == (10**9, "MY_LIMIT")
    roomy = plan_build_memory(3 * 10**9, settings, 64 * 10**9)
    assert (roomy.granted_bytes, roomy.fits, roomy.shortfall("emb_hnsw")) == (3 * 10**9, True, None)


def test_the_servers_available_memory_is_read_here_or_through_the_server(empty_db):
    conn = psycopg2.connect(empty_db)
    try:
        with conn.cursor() as cursor:
            here = server_available_memory(cursor)
            through_the_server = server_available_memory(cursor, local=False)  # pg_read_file, as for a remote server
            cursor.execute("SELECT 1")  # the transaction is still usable
    finally:
        conn.close()
    assert here is not None and through_the_server is not None
    assert 0.5 < through_the_server / here < 2  # one machine, read twice a moment apart


def test_build_progress_is_read_on_a_second_connection(indexed_set, backup_root):
    dsn, key = indexed_set
    events = []

    replace(dsn, backup_root, key, progress=ProgressReporter(events.append, 0.02),
            index_builds=IndexBuildSettings(workers=0))

    readings = [e for e in events if isinstance(e, IndexBuildProgress) and e.index == "emb_hnsw"]
    assert readings[-1].done
    during = readings[:-1]
    assert during and all(e.phase.startswith("building index") or e.phase == "initializing" for e in during)
    assert any(e.tuples_done > 0 or e.blocks_done > 0 for e in during)
    assert "emb_hnsw" in during[-1].describe() and "blocks" in during[-1].describe()


def test_malformed_build_settings_name_the_variable(monkeypatch):
    from vector_assets import settings
    from vector_assets.core.errors import ConfigError

    monkeypatch.setenv("VECTOR_ASSETS_INDEX_BUILD_MEMORY", "lots")
    with pytest.raises(ConfigError, match="VECTOR_ASSETS_INDEX_BUILD_MEMORY .*'lots'"):
        settings.index_build_settings()
    monkeypatch.setenv("VECTOR_ASSETS_INDEX_BUILD_MEMORY", "2GB")
    monkeypatch.setenv("VECTOR_ASSETS_INDEX_BUILD_WORKERS", "two")
    with pytest.raises(ConfigError, match="VECTOR_ASSETS_INDEX_BUILD_WORKERS"):
        settings.index_build_settings()
    monkeypatch.setenv("VECTOR_ASSETS_INDEX_BUILD_WORKERS", "2")
    assert settings.index_build_settings() == IndexBuildSettings(2 * 10**9, 2, "VECTOR_ASSETS_INDEX_BUILD_MEMORY")


def test_the_restore_job_logs_each_build_and_its_progress(indexed_set, backup_root, monkeypatch):
    import dagster as dg

    from vector_assets_tests.support.dagster import run_job

    dsn, key = indexed_set
    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", dsn)
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", str(backup_root))
    monkeypatch.setenv("VECTOR_ASSETS_PROGRESS_INTERVAL", "0.02")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("vector_backups", [key])
        result = run_job(instance, "restore_vector_tables", "restore_from_backup_set",
                         {"truncate_before_restore": True, "safety_backup": False, "dry_run": False}, partition_key=key)
        messages = [record.user_message for record in instance.all_logs(result.run_id)]

    assert result.success
    assert any(m.startswith("index emb_hnsw (hnsw) built in ") and "parallel workers" in m for m in messages)
    assert "index emb_hnsw: built" in messages
    assert any(m.startswith("restore langchain_pg_embedding: ") and m.endswith("done") for m in messages)


def test_the_drill_reports_each_builds_time_and_whether_it_spilled(indexed_set, backup_root):
    from vector_assets.cli import format_drill
    from vector_assets.core.ops.drill import DrillRequest, run_drill

    dsn, key = indexed_set

    roomy = run_drill(DrillRequest(dsn=dsn, root=backup_root, key=key, index_builds=IndexBuildSettings(workers=0)))
    tight = run_drill(DrillRequest(dsn=dsn, root=backup_root, key=key,
                                   index_builds=IndexBuildSettings(memory_cap_bytes=10**6, workers=0)))

    assert roomy.passed and tight.passed
    fitted, spilled = roomy.restore.index_builds[0], tight.restore.index_builds[0]
    assert (fitted.name, fitted.spilled, spilled.name) == ("emb_hnsw", None, "emb_hnsw") and spilled.spilled
    assert f"  ok   index emb_hnsw (hnsw) built in {fitted.seconds:.1f}s" in format_drill(roomy)
    assert "  WARN index emb_hnsw (hnsw) built in " in format_drill(tight) and "did not fit in memory" in format_drill(tight)
