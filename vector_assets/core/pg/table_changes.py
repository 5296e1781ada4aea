"""Statements that change the managed tables: locking, truncating, staged appends."""

from __future__ import annotations

import time

import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.errors import LockTimeoutError
from vector_assets.core.pg.catalog import column_list, regclass_literal, table_identifier

LOCK_TIMEOUT = "60s"
# TRUNCATE needs ACCESS EXCLUSIVE, and while it waits every new reader queues behind it. So it
# waits at most about a second per attempt, and pauses between attempts to let the readers through.
# An autovacuum worker holding the table is cancelled by the server only once a waiter has waited
# deadlock_timeout, so each attempt waits that long and this much more.
EXCLUSIVE_LOCK_MARGIN_MS = 1000
EXCLUSIVE_LOCK_ATTEMPTS = 5
EXCLUSIVE_LOCK_PAUSE_SECONDS = 1.0


def lock_against_writers(cursor: psycopg2.extensions.cursor, tables: tuple[str, ...]) -> None:
    """SHARE ROW EXCLUSIVE: writers wait, readers go on."""
    cursor.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
    cursor.execute(
        sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(sql.SQL(", ").join(map(table_identifier, tables)))
    )


def truncate_tables(cursor: psycopg2.extensions.cursor, tables: list[str] | tuple[str, ...]) -> None:
    # One statement: the foreign key forbids truncating collections on their own.
    cursor.execute(sql.SQL("TRUNCATE TABLE {}").format(sql.SQL(", ").join(map(table_identifier, tables))))


def truncate_with_brief_waits(cursor: psycopg2.extensions.cursor, tables: list[str] | tuple[str, ...]) -> None:
    """TRUNCATE, taking its exclusive lock in short tries inside a savepoint, so readers are
    never held up for more than a try (about two seconds) at a time; the rest of the transaction
    survives a miss.
    """
    timeout_ms = exclusive_lock_timeout_ms(cursor)
    for attempt in range(1, EXCLUSIVE_LOCK_ATTEMPTS + 1):
        cursor.execute("SAVEPOINT vector_assets_truncate")
        cursor.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{timeout_ms}ms")))
        try:
            truncate_tables(cursor, tables)
        except psycopg2.errors.LockNotAvailable:
            cursor.execute("ROLLBACK TO SAVEPOINT vector_assets_truncate")
            if attempt == EXCLUSIVE_LOCK_ATTEMPTS:
                raise LockTimeoutError(_lock_timeout_message(cursor, tables, timeout_ms)) from None
            time.sleep(EXCLUSIVE_LOCK_PAUSE_SECONDS)
            continue
        cursor.execute("RELEASE SAVEPOINT vector_assets_truncate")
        return


def exclusive_lock_timeout_ms(cursor: psycopg2.extensions.cursor) -> int:
    """How long one attempt waits: past the server's deadlock_timeout, when it cancels an
    autovacuum worker in the way (one preventing wraparound it never cancels)."""
    cursor.execute("SELECT setting::int FROM pg_settings WHERE name = 'deadlock_timeout'")  # always in ms
    return cursor.fetchone()[0] + EXCLUSIVE_LOCK_MARGIN_MS


def _lock_timeout_message(
    cursor: psycopg2.extensions.cursor, tables: list[str] | tuple[str, ...], timeout_ms: int
) -> str:
    holders = lock_holders(cursor, tables)
    who = "; ".join(holders) if holders else "the holder had gone by the time we looked"
    return (
        f"could not take the exclusive lock to truncate {', '.join(tables)} in {EXCLUSIVE_LOCK_ATTEMPTS} tries "
        f"of {timeout_ms / 1000:g}s (readers were let through between tries); held by: {who}"
    )


def lock_holders(cursor: psycopg2.extensions.cursor, tables: list[str] | tuple[str, ...]) -> list[str]:
    """Other sessions holding a lock on the tables, as operators find them in pg_stat_activity
    (no query text: it may hold data)."""
    cursor.execute(
        """
        SELECT DISTINCT a.pid, coalesce('user ' || a.usename, a.backend_type), a.application_name, a.state, a.xact_start
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.granted AND l.pid <> pg_backend_pid()
          AND l.relation = ANY (SELECT to_regclass(t) FROM unnest(%s::text[]) AS t)
        ORDER BY a.pid
        """,
        ([regclass_literal(cursor, table) for table in tables],),
    )
    return [
        f"pid {pid} ({who}, application {application or '-'}, {state}, transaction since {started:%Y-%m-%d %H:%M:%S%z})"
        if started else f"pid {pid} ({who}, application {application or '-'}, {state})"
        for pid, who, application, state, started in cursor.fetchall()
    ]


def advance_owned_sequences(cursor: psycopg2.extensions.cursor, table: str) -> list[str]:
    """Set every sequence the table owns (serial and identity columns) past the largest value
    loaded, as pg_dump's restore does, so the application's next insert gets a free value.
    A sequence already further on is left alone. Returns the sequences moved."""
    table_name = regclass_literal(cursor, table)
    cursor.execute(
        """
        SELECT a.attname, pg_get_serial_sequence(%s, a.attname)
        FROM pg_attribute a
        WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
          AND pg_get_serial_sequence(%s, a.attname) IS NOT NULL
        """,
        (table_name, table_name, table_name),
    )
    moved = []
    for column, sequence in cursor.fetchall():
        cursor.execute(
            sql.SQL(
                "SELECT setval(%(seq)s, m) FROM (SELECT max({column})::bigint AS m FROM {table}) loaded,"
                " pg_sequences s WHERE format('%%I.%%I', s.schemaname, s.sequencename)::regclass = %(seq)s::regclass"
                " AND m IS NOT NULL AND m >= coalesce(s.last_value + s.increment_by, s.start_value)"
            ).format(column=sql.Identifier(column), table=table_identifier(table)),
            {"seq": sequence},
        )
        if cursor.fetchone() is not None:
            moved.append(sequence)
    return moved


def create_stage(cursor: psycopg2.extensions.cursor, table: str, name: str | None = None) -> sql.Identifier:
    """A temporary copy of the table's shape, dropped at commit, to load into before inserting."""
    stage = sql.Identifier(name or f"restore_stage_{table}")
    cursor.execute(
        sql.SQL("CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP").format(stage, table_identifier(table))
    )
    return stage


def count_conflicts(
    cursor: psycopg2.extensions.cursor, table: str, stage: sql.Identifier, key: list[str]
) -> tuple[int, str | None]:
    """(rows of the stage whose key exists in the table, the smallest such key as text)."""
    if not key:
        return 0, None
    cursor.execute(
        sql.SQL("SELECT count(*), min({}) FROM {} s JOIN {} t ON {}").format(
            _key_text(key), stage, table_identifier(table), _same_key(key)
        )
    )
    count, first = cursor.fetchone()
    return int(count), first


def count_repeated_keys(
    cursor: psycopg2.extensions.cursor, table: str, stage: sql.Identifier, key: list[str]
) -> tuple[int, str | None]:
    """(staged rows repeating a key an earlier staged row has, that key as text), among keys
    not already in the table (those are counted as conflicts with the table)."""
    if not key:
        return 0, None
    cursor.execute(
        sql.SQL(
            "SELECT coalesce(sum(n - 1), 0), min(k) FILTER (WHERE n > 1) FROM ("
            " SELECT count(*) AS n, min({key_text}) AS k FROM {stage} s"
            " WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {join}) GROUP BY {keys}) g"
        ).format(key_text=_key_text(key), stage=stage, table=table_identifier(table), join=_same_key(key),
                 keys=column_list(key))
    )
    count, first = cursor.fetchone()
    return int(count), first


def _same_key(key: list[str]) -> sql.Composable:
    """Stage row ``s`` and table row ``t`` have the same key."""
    return sql.SQL(" AND ").join(sql.SQL("s.{0} = t.{0}").format(sql.Identifier(column)) for column in key)


def _key_text(key: list[str]) -> sql.Composable:
    """A stage row's key as text, for naming it in a message."""
    return sql.SQL(" || ', ' || ").join(sql.SQL("s.{}::text").format(sql.Identifier(column)) for column in key)


def other_unique_constraints(cursor: psycopg2.extensions.cursor, table: str) -> list[str]:
    """Names of the unique indexes (constraints or not) other than the primary key."""
    cursor.execute(
        """
        SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = %s::regclass AND i.indisunique AND NOT i.indisprimary ORDER BY 1
        """,
        (regclass_literal(cursor, table),),
    )
    return [name for (name,) in cursor.fetchall()]


def insert_from_stage(
    cursor: psycopg2.extensions.cursor, table: str, stage: sql.Identifier, columns: list[str], *, skip_conflicts: bool
) -> int:
    """Insert the staged rows; returns the rows inserted.

    Without ``skip_conflicts`` any unique violation raises, whichever constraint it is on.
    With it, rows that conflict on any unique constraint are left out. The set's keys are kept
    even in a GENERATED ALWAYS identity column, as COPY keeps them.
    """
    names = column_list(columns)
    conflict = sql.SQL(" ON CONFLICT DO NOTHING") if skip_conflicts else sql.SQL("")
    cursor.execute(
        sql.SQL("INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {}{}").format(
            table_identifier(table), names, names, stage, conflict
        )
    )
    return cursor.rowcount
