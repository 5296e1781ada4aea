"""Checking the target before the restore's transaction: the pgvector extension (or the right to
create it), and every table's columns by name and type, or the set's definition of a table the
target lacks."""

from __future__ import annotations

import psycopg2
import psycopg2.extensions

from vector_assets.core.errors import (
    ColumnMismatchError,
    ExtensionMissingError,
    MissingTableDefinitionError,
    SourceTableMissingError,
    TriggersError,
)
from vector_assets.core.ops.restore.plan import PlannedTable
from vector_assets.core.ops.restore.request import RestoreRequest
from vector_assets.core.pg.catalog import (
    Column,
    read_columns,
    server_versions,
    table_exists,
)
from vector_assets.core.pg.store_tables import triggers_we_may_not_hold
from vector_assets.core.sets.catalog import BackupSet
from vector_assets.core.stores import Store


def check_target(
    conn: psycopg2.extensions.connection, backup_set: BackupSet, planned: list[PlannedTable], request: RestoreRequest
) -> list[PlannedTable]:
    """The target has pgvector (or the role may create it), and every table has the set's
    columns by name and type, or is missing and can be created from the set: those are returned."""
    with conn.cursor() as cursor:
        to_create = [plan for plan in planned if not table_exists(cursor, plan.table)]
        for plan in to_create:
            if plan.definition is None:
                raise MissingTableDefinitionError(
                    f"table {plan.table} does not exist in the target, and set {backup_set.key} holds no table "
                    "definitions (it was made before vector_assets 0.3, or by another tool): create the tables first"
                )
        if server_versions(cursor)[1] is None:
            _require_right_to_create_the_extension(cursor)
        for plan in planned:
            if plan not in to_create:
                _compare_columns(plan, read_columns(cursor, plan.table), backup_set)
        _require_sources(cursor, request.store, [plan.table for plan in planned])
        if not request.fire_triggers:
            _require_right_to_hold_triggers(cursor, [plan.table for plan in planned if plan not in to_create])
    conn.rollback()
    return to_create


def _require_sources(cursor: psycopg2.extensions.cursor, store: Store, tables: list[str]) -> None:
    """A pgai embedding store is kept in step with its source table by triggers on it: restored
    without it, the first change to the source would be lost, so it is refused here."""
    for table in tables:
        source = store.source_table_of(table)
        if source and source not in tables and not table_exists(cursor, source):
            raise SourceTableMissingError(
                f"table {table} is made from table {source}, which the target lacks: restore {source} "
                "first or with it (--tables); nothing was changed"
            )


def _require_right_to_hold_triggers(cursor: psycopg2.extensions.cursor, tables: list[str]) -> None:
    """A restore loads without firing the tables' own triggers (a pgai source table's would queue
    every row for embedding again); a role that may not turn them off is stopped here."""
    blocked = triggers_we_may_not_hold(cursor, tables)
    if blocked:
        first = blocked[0]
        raise TriggersError(
            f"table {first.table} has trigger {first.name}, which the restore would fire for every row, and role "
            "may not turn it off (it does not own the table): restore as the table's owner, or let the triggers "
            "fire (--fire-triggers; fire_triggers: true); nothing was changed"
        )


def _require_right_to_create_the_extension(cursor: psycopg2.extensions.cursor) -> None:
    """Try it, and take it back: the real CREATE EXTENSION runs in the restore's transaction."""
    cursor.execute("SAVEPOINT probe_extension")
    try:
        cursor.execute("CREATE EXTENSION vector")
    except psycopg2.Error as error:
        cursor.execute("ROLLBACK TO SAVEPOINT probe_extension")
        cursor.execute("SELECT current_user, current_database()")
        role, database = cursor.fetchone()
        raise ExtensionMissingError(
            f"the target database {database} has no 'vector' extension and role {role} may not create it "
            f"({error.pgerror.splitlines()[0].removeprefix('ERROR:').strip() if error.pgerror else type(error).__name__}): "
            "ask a superuser to run CREATE EXTENSION vector there; nothing was changed"
        ) from None
    cursor.execute("ROLLBACK TO SAVEPOINT probe_extension")


def _compare_columns(plan: PlannedTable, target: list[Column], backup_set: BackupSet) -> None:
    target_names = [column.name for column in target]
    missing = [name for name in plan.header if name not in target_names]
    extra = [name for name in target_names if name not in plan.header]
    if missing or extra:
        raise ColumnMismatchError(
            f"table {plan.table}: set columns not in the target: {missing or 'none'}; "
            f"target columns not in the set: {extra or 'none'}"
        )
    entry = backup_set.manifest.tables.get(plan.table) if backup_set.manifest else None
    target_types = {column.name: column.type for column in target}
    for column in entry.columns if entry else []:
        if target_types[column.name] != column.type:
            raise ColumnMismatchError(
                f"table {plan.table} column {column.name}: the set has {column.type}, the target has {target_types[column.name]}"
            )
