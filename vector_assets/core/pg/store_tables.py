"""What the catalog says of a store's tables: whether each is there and holds a vector column,
the order the foreign keys between them ask for, and the triggers a load would fire."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.pg.catalog import read_columns, regclass_literal, table_exists, table_identifier

VECTOR_TYPES = ("vector", "halfvec", "sparsevec", "bit")


def vector_columns(cursor: psycopg2.extensions.cursor, table: str) -> tuple[str, ...]:
    return tuple(column.name for column in read_columns(cursor, table) if column.type.split("(")[0] in VECTOR_TYPES)


def table_problem(cursor: psycopg2.extensions.cursor, table: str, needs_vectors: bool) -> str | None:
    """Why ``table`` cannot be one of a store's tables, or None."""
    if not table_exists(cursor, table):
        return f"{table!r} is not a table of this database"
    if needs_vectors and not vector_columns(cursor, table):
        return f"{table!r} holds no {', '.join(VECTOR_TYPES[:-1])} or {VECTOR_TYPES[-1]} column"
    return rows_a_copy_would_miss(cursor, table)


def rows_a_copy_would_miss(cursor: psycopg2.extensions.cursor, table: str) -> str | None:
    """Why ``COPY table TO`` would not hold every row ``SELECT`` sees, or None: rows of child
    tables (inheritance) are left out by COPY, yet counted by ``count(*)`` and emptied by TRUNCATE,
    and a partitioned table cannot be copied at all."""
    cursor.execute(
        """
        SELECT c.relkind, array(SELECT i.inhrelid::regclass::text FROM pg_inherits i WHERE i.inhparent = c.oid ORDER BY 1)
        FROM pg_class c WHERE c.oid = to_regclass(%s)
        """,
        (regclass_literal(cursor, table),),
    )
    found = cursor.fetchone()
    if found is None:
        return None
    kind, children = found
    if kind == "p":
        return (f"{table} is a partitioned table: a backup copies plain tables; declare its partitions "
                f"({', '.join(children) or 'none yet'}) as the store's tables")
    if children:
        return (f"{table} has child tables ({', '.join(children)}) whose rows a COPY of it leaves out; "
                "declare them as tables of the store too, or move their rows into it")
    return None


def references_among(cursor: psycopg2.extensions.cursor, tables: tuple[str, ...]) -> dict[str, set[str]]:
    """For each table, the others of ``tables`` its foreign keys reference."""
    oids = {table: _oid(cursor, table) for table in tables}
    by_oid = {oid: table for table, oid in oids.items() if oid is not None}
    cursor.execute(
        "SELECT conrelid, confrelid FROM pg_constraint WHERE contype = 'f' AND conrelid = ANY(%s) AND confrelid = ANY(%s)",
        (list(by_oid), list(by_oid)),
    )
    references: dict[str, set[str]] = {table: set() for table in tables}
    for child, parent in cursor.fetchall():
        if child != parent:
            references[by_oid[child]].add(by_oid[parent])
    return references


def load_order(cursor: psycopg2.extensions.cursor, tables: tuple[str, ...]) -> tuple[str, ...]:
    """``tables`` with every table after the ones it references; otherwise as given. Tables in a
    cycle of references keep their given order (their keys are dropped around a load anyway)."""
    references = references_among(cursor, tables)
    ordered: list[str] = []
    waiting = list(tables)
    while waiting:
        ready = next((t for t in waiting if references[t] <= set(ordered)), waiting[0])
        ordered.append(ready)
        waiting.remove(ready)
    return tuple(ordered)


@dataclass(frozen=True)
class UserTrigger:
    table: str
    name: str
    enabled: str  # pg_trigger.tgenabled: O (origin), R (replica), A (always), D (disabled)


def user_triggers(cursor: psycopg2.extensions.cursor, table: str) -> list[UserTrigger]:
    """The table's own triggers (not the ones the server makes for keys), as they are set now."""
    cursor.execute(
        "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal ORDER BY tgname",
        (regclass_literal(cursor, table),),
    )
    return [UserTrigger(table, name, enabled) for name, enabled in cursor.fetchall()]


def _oid(cursor: psycopg2.extensions.cursor, table: str) -> int | None:
    cursor.execute("SELECT to_regclass(%s)::oid", (regclass_literal(cursor, table),))
    return cursor.fetchone()[0]


def triggers_we_may_not_hold(cursor: psycopg2.extensions.cursor, tables: list[str]) -> list[UserTrigger]:
    """The enabled triggers of ``tables`` that this role may not turn off (it does not own the table)."""
    blocked: list[UserTrigger] = []
    for table in tables:
        cursor.execute("SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class WHERE oid = %s::regclass",
                       (regclass_literal(cursor, table),))
        if not cursor.fetchone()[0]:
            blocked += [trigger for trigger in user_triggers(cursor, table) if trigger.enabled != DISABLED]
    return blocked


def hold_triggers(cursor: psycopg2.extensions.cursor, tables: list[str]) -> list[UserTrigger]:
    """Turn off the tables' enabled triggers for the rest of this transaction (nobody else sees
    them off: the change commits with the load, after ``put_triggers_back``)."""
    held = [trigger for table in tables for trigger in user_triggers(cursor, table) if trigger.enabled != DISABLED]
    for trigger in held:
        cursor.execute(sql.SQL("ALTER TABLE {} DISABLE TRIGGER {}").format(
            table_identifier(trigger.table), sql.Identifier(trigger.name)))
    return held


def put_triggers_back(cursor: psycopg2.extensions.cursor, held: list[UserTrigger]) -> None:
    for trigger in held:
        cursor.execute(sql.SQL("ALTER TABLE {} ENABLE {} TRIGGER {}").format(
            table_identifier(trigger.table), sql.SQL(ENABLE_MODES[trigger.enabled]), sql.Identifier(trigger.name)))


DISABLED = "D"
ENABLE_MODES = {"O": "", "R": "REPLICA", "A": "ALWAYS"}
