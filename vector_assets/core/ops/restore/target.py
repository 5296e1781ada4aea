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
)
from vector_assets.core.ops.restore.plan import PlannedTable
from vector_assets.core.pg.catalog import (
    Column,
    read_columns,
    server_versions,
    table_exists,
)
from vector_assets.core.sets.catalog import BackupSet


def check_target(
    conn: psycopg2.extensions.connection, backup_set: BackupSet, planned: list[PlannedTable]
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
    conn.rollback()
    return to_create


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
