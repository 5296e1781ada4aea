"""Session settings of the database or role never change what is backed up, restored or drilled.

pg_dump pins DateStyle, IntervalStyle, extra_float_digits and friends on its connection; so do
we, on every connection. Values are compared through the types' binary send functions, which no
session setting can change.
"""

import psycopg2
from psycopg2 import sql

from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.drill import DrillRequest, run_drill
from vector_assets.core.ops.restore import RestoreRequest, run_restore
from vector_assets_tests.support.database import execute, fill_store

USER_COLUMNS = (
    "ADD COLUMN score real, ADD COLUMN weight double precision, ADD COLUMN seen timestamptz, "
    "ADD COLUMN age interval, ADD COLUMN day date"
)
VALUES = (
    "UPDATE langchain_pg_embedding SET score = 1.0 / (3 + ascii(id)), weight = pi() / (7 + ascii(id)), "
    "seen = '2025-07-21 21:36:27.123456+02', age = '1 day 02:03:04.5', day = '2025-03-04'"
)
HOSTILE_SETTINGS = {
    "extra_float_digits": "-3",
    "DateStyle": "SQL, DMY",
    "IntervalStyle": "sql_standard",
    "TimeZone": "Asia/Kolkata",
}


def exact_values(dsn: str) -> list[tuple]:
    """The user columns as bytes, independent of every session setting."""
    rows = execute(
        dsn,
        "SELECT id, float4send(score), float8send(weight), timestamptz_send(seen), interval_send(age), date_send(day) "
        "FROM langchain_pg_embedding ORDER BY id",
    )
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows]


def store_with_user_columns(dsn: str) -> None:
    fill_store(dsn, embeddings=60)
    execute(dsn, f"ALTER TABLE langchain_pg_embedding {USER_COLUMNS}")
    execute(dsn, VALUES)


def set_database_defaults(maintenance_dsn: str, dsn: str, settings: dict[str, str]) -> None:
    database = psycopg2.extensions.parse_dsn(dsn)["dbname"]
    for name, value in settings.items():
        execute(maintenance_dsn, sql.SQL("ALTER DATABASE {} SET {} = {}").format(
            sql.Identifier(database), sql.Identifier(name), sql.Literal(value)
        ).as_string(psycopg2.connect(maintenance_dsn)))


def test_database_settings_do_not_round_or_reformat_what_is_backed_up_and_restored(
    maintenance_dsn, empty_db, second_db, backup_root
):
    store_with_user_columns(empty_db)
    expected = exact_values(empty_db)
    set_database_defaults(maintenance_dsn, empty_db, HOSTILE_SETTINGS)
    key = run_backup(BackupRequest(dsn=empty_db, root=backup_root)).timestamp

    fill_store(second_db, embeddings=0)
    execute(second_db, f"ALTER TABLE langchain_pg_embedding {USER_COLUMNS}")
    set_database_defaults(maintenance_dsn, second_db, {"DateStyle": "ISO, MDY", "TimeZone": "America/New_York"})
    run_restore(RestoreRequest(target_dsn=second_db, root=backup_root, timestamp=key, truncate_before_restore=True))

    assert exact_values(second_db) == expected


def test_the_drill_passes_a_healthy_set_whatever_the_source_database_sets(maintenance_dsn, empty_db, backup_root):
    store_with_user_columns(empty_db)
    set_database_defaults(maintenance_dsn, empty_db, HOSTILE_SETTINGS)
    run_backup(BackupRequest(dsn=empty_db, root=backup_root))

    result = run_drill(DrillRequest(dsn=empty_db, root=backup_root))

    assert result.passed, [table.message for table in result.tables]
