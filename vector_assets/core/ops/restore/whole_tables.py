"""Restoring whole tables, in one transaction: tables created, locked, the safety set written,
optional TRUNCATE, COPY collections before embeddings (in place, or through a stage for an
append), the keys back, the increments' chain applied, row counts compared, indexes built."""

from __future__ import annotations

import time

import psycopg2.extensions

from vector_assets.core.errors import BackupFileError
from vector_assets.core.ops.restore.chain import apply_chain_in_place
from vector_assets.core.ops.restore.load import (
    add_keys_back,
    copy_file_into,
    create_tables,
    drop_for_the_load,
    finish_tables,
    hold_target_triggers,
    truncate_tables,
)
from vector_assets.core.ops.restore.plan import PlannedTable
from vector_assets.core.ops.restore.request import RestoreRequest, RestoreResult, RowComparison, TableRestore
from vector_assets.core.ops.restore.stage import append_through_stage
from vector_assets.core.ops.restore.transaction import back_up_what_is_replaced, restore_transaction
from vector_assets.core.pg.catalog import count_rows, table_identifier
from vector_assets.core.pg.ddl import indexes_to_build
from vector_assets.core.pg.store_tables import put_triggers_back
from vector_assets.core.pg.table_changes import lock_against_writers
from vector_assets.core.units import count_of


def load_whole_tables(
    conn: psycopg2.extensions.connection,
    request: RestoreRequest,
    planned: list[PlannedTable],
    to_create: list[PlannedTable],
    result: RestoreResult,
    comparison: RowComparison | None = None,
) -> None:
    """Restore the planned tables whole, in one transaction; dry runs roll back at the end."""
    with restore_transaction(conn, request, result) as cursor:
        result.tables_created = create_tables(cursor, to_create)
        held = hold_target_triggers(cursor, request, planned, result)
        if request.safety_backup:
            lock_against_writers(cursor, tuple(plan.table for plan in planned))
        outcomes = {plan.table: _outcome(cursor, plan) for plan in planned}
        result.safety_set = back_up_what_is_replaced(cursor, request, result.backup_set, outcomes)
        if comparison is not None:
            comparison.before(cursor)
        if request.truncate_before_restore:
            truncate_tables(cursor, planned, outcomes)
        in_place = [plan for plan in planned if _loads_in_place(request, plan in to_create)]
        dropped, dropped_keys = drop_for_the_load(cursor, request.store.vector_tables, [plan.table for plan in in_place])
        for plan in planned:
            _load_table(cursor, plan, outcomes[plan.table], request, created=plan in to_create)
        add_keys_back(cursor, dropped_keys, planned)
        apply_chain_in_place(cursor, in_place, outcomes, request)
        to_build = dropped + [index for plan in to_create for index in indexes_to_build(cursor, plan.table, plan.definition)]
        finish_tables(conn, cursor, request, planned, to_build, outcomes, result)
        if comparison is not None:
            comparison.after(cursor)
        put_triggers_back(cursor, held)


def _outcome(cursor: psycopg2.extensions.cursor, plan: PlannedTable) -> TableRestore:
    return TableRestore(plan.table, plan.label, plan.bytes, plan.rows_after, rows_before=count_rows(cursor, plan.table))


def _load_table(
    cursor: psycopg2.extensions.cursor, plan: PlannedTable, outcome: TableRestore, request: RestoreRequest, created: bool
) -> None:
    started = time.monotonic()
    if _loads_in_place(request, created):
        # FREEZE is allowed because the table was truncated or created in this transaction; it
        # spares the later hint-bit rewrite of every loaded page.
        outcome.rows_loaded = copy_file_into(
            cursor, plan, table_identifier(plan.table), freeze=True, progress=request.progress
        )
        expected = plan.rows_in_set  # an increment's chain is applied to every table afterwards
    else:
        append_through_stage(cursor, plan, outcome, request)
        expected = plan.rows_after
    if outcome.rows_loaded + outcome.rows_skipped != expected:
        raise BackupFileError(
            f"{plan.label}: loaded {count_of(outcome.rows_loaded, 'row')} and skipped {outcome.rows_skipped}, "
            f"but the set has {expected}"
        )
    outcome.duration_seconds = time.monotonic() - started


def _loads_in_place(request: RestoreRequest, created: bool) -> bool:
    return request.truncate_before_restore or created
