"""A restore's TRUNCATE gets past an autovacuum worker on the table, as PostgreSQL means it to.

The server cancels an autovacuum worker that holds up a lock waiter, but only once the waiter
has waited ``deadlock_timeout``; a try that gives up sooner never gets it cancelled, and a
large table's autovacuum outlasts every try (the benchmark's 800,000-row restore failed so)."""

import time

from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets_tests.support.database import execute, tables_now

SLOW_AUTOVACUUM = (
    "autovacuum_vacuum_threshold = 0, autovacuum_vacuum_scale_factor = 0, "
    "autovacuum_vacuum_cost_delay = 100, autovacuum_vacuum_cost_limit = 1"
)


def autovacuum_worker_on(dsn: str, table: str, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = execute(dsn, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
                            " AND datname = current_database() AND query LIKE %s", (f"%{table}%",))
        if rows:
            return rows[0][0]
        time.sleep(0.2)
    raise AssertionError(f"no autovacuum worker started on {table} within {timeout:.0f}s")


def test_a_replace_restore_truncates_a_table_an_autovacuum_worker_is_vacuuming(store_db, backup_root, maintenance_dsn):
    backup = run_backup(BackupRequest(dsn=store_db, root=backup_root))
    the_set = tables_now(store_db)
    # Enough dead rows on enough pages that this throttled autovacuum takes minutes.
    execute(store_db, "INSERT INTO langchain_pg_embedding (id, collection_id, embedding, document, cmetadata) "
                      "SELECT id || '-' || g, collection_id, embedding, document, cmetadata "
                      "FROM langchain_pg_embedding, generate_series(1, 20) AS g")
    execute(store_db, "UPDATE langchain_pg_embedding SET document = document || ' '")
    execute(store_db, f"ALTER TABLE langchain_pg_embedding SET ({SLOW_AUTOVACUUM})")
    execute(maintenance_dsn, "ALTER SYSTEM SET autovacuum_naptime = '1s'")
    execute(maintenance_dsn, "SELECT pg_reload_conf()")
    try:
        worker = autovacuum_worker_on(store_db, "langchain_pg_embedding")
        started = time.monotonic()
        run_restore(RestoreRequest(target_dsn=store_db, root=backup_root, timestamp=backup.manifest.timestamp,
                                   truncate_before_restore=True, safety_backup=False))
        took = time.monotonic() - started
    finally:
        execute(maintenance_dsn, "ALTER SYSTEM RESET autovacuum_naptime")
        execute(maintenance_dsn, "SELECT pg_reload_conf()")
        execute(store_db, "ALTER TABLE langchain_pg_embedding RESET (autovacuum_vacuum_threshold, "
                          "autovacuum_vacuum_scale_factor, autovacuum_vacuum_cost_delay, autovacuum_vacuum_cost_limit)")

    assert tables_now(store_db) == the_set
    assert not execute(store_db, "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND query LIKE %s",
                       (worker, "%langchain_pg_embedding%")), "the autovacuum worker was not cancelled"
    assert took < 30, f"the restore took {took:.1f}s"
