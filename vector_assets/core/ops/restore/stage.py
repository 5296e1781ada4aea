"""Staging a set's rows, and appending them: the rows of a table go into a temporary stage first
(with an increment's chain applied there), so that conflicts with the target can be named or
skipped before anything is inserted."""

from __future__ import annotations

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.errors import RestoreConflictError, RestoreLoadError
from vector_assets.core.ops.restore.chain import apply_chain_to_stage
from vector_assets.core.ops.restore.load import copy_file_into
from vector_assets.core.ops.restore.plan import PlannedTable
from vector_assets.core.ops.restore.request import RestoreRequest, TableRestore
from vector_assets.core.pg.catalog import primary_key
from vector_assets.core.pg.row_changes import analyze
from vector_assets.core.pg.table_changes import (
    count_conflicts,
    count_repeated_keys,
    create_stage,
    insert_from_stage,
    other_unique_constraints,
)
from vector_assets.core.progress import ProgressReporter
from vector_assets.core.sets.collection_filter import CollectionRows
from vector_assets.core.units import count_of

KEY_IN_TABLE = "key already in the table"
KEY_REPEATED = "key repeated in the file"


def stage_rows(
    cursor: psycopg2.extensions.cursor, plan: PlannedTable, progress: ProgressReporter | None
) -> tuple[sql.Identifier, int]:
    """Load the set's rows of this table into a temporary stage; returns the stage and the rows staged.

    Whatever reads a set's rows before deciding what to insert (an append, a collection restore)
    reads them through here, so it sees the rows as the set holds them.
    """
    stage = create_stage(cursor, plan.table)
    staged = copy_file_into(cursor, plan, stage, progress=progress)
    if plan.increments:
        staged = apply_chain_to_stage(cursor, plan, stage, progress)
    return stage, staged


def stage_collection_rows(
    cursor: psycopg2.extensions.cursor, plan: PlannedTable, only: CollectionRows, progress: ProgressReporter | None
) -> tuple[sql.Identifier, int]:
    """Load just one collection's rows of the set's files into a temporary stage, the others
    left out of the stream before COPY; returns the stage and the rows staged. Each file is
    still read whole, hashed, and its rows counted against the manifest. The stage is analyzed:
    its few rows are then matched with the target through its key's index, not by a scan."""
    stage = create_stage(cursor, plan.table)
    staged = copy_file_into(cursor, plan, stage, progress=progress, only=only)
    analyze(cursor, stage)
    return stage, staged


def append_through_stage(
    cursor: psycopg2.extensions.cursor, plan: PlannedTable, outcome: TableRestore, request: RestoreRequest
) -> None:
    """Load into a temporary copy first, so conflicts can be named or skipped before inserting.

    The stage's COPY counts the file's rows independently of the insert, so loaded + skipped is
    checked against the set, never computed from it.
    """
    stage, staged = stage_rows(cursor, plan, request.progress)
    append_from_stage(cursor, plan, outcome, request, stage, staged)


def append_from_stage(
    cursor: psycopg2.extensions.cursor,
    plan: PlannedTable,
    outcome: TableRestore,
    request: RestoreRequest,
    stage: sql.Identifier,
    staged: int,
) -> None:
    """Insert the ``staged`` rows of ``stage``, refusing or skipping conflicts as the request says."""
    key = primary_key(cursor, plan.table)
    outcome.conflicts, outcome.first_conflict = count_conflicts(cursor, plan.table, stage, key)
    repeated, first_repeated = count_repeated_keys(cursor, plan.table, stage, key)
    if request.on_conflict == "error":
        _refuse_conflicts(plan, outcome, key, repeated, first_repeated)
        outcome.rows_loaded = _insert_or_name_the_conflict(cursor, plan, stage)
    else:
        outcome.rows_loaded = insert_from_stage(cursor, plan.table, stage, plan.header, skip_conflicts=True)
        outcome.rows_skipped = staged - outcome.rows_loaded
        outcome.skipped_because = _why_skipped(cursor, plan, outcome, repeated)


def _refuse_conflicts(
    plan: PlannedTable, outcome: TableRestore, key: list[str], repeated: int, first_repeated: str | None
) -> None:
    hint = "(to skip them: on_conflict: skip, --on-conflict skip; to replace the rows: truncate_before_restore: true, --replace)"
    if outcome.conflicts:
        raise RestoreConflictError(
            f"table {plan.table}: {count_of(outcome.conflicts, 'row')} of {plan.label} already "
            f"{'exists' if outcome.conflicts == 1 else 'exist'}; "
            f"first conflicting {', '.join(key)} = {outcome.first_conflict} {hint}"
        )
    if repeated:
        raise RestoreConflictError(
            f"table {plan.table}: {plan.label} repeats {count_of(repeated, 'key')}; first repeated "
            f"{', '.join(key)} = {first_repeated}; nothing was restored {hint}"
        )


def _insert_or_name_the_conflict(cursor: psycopg2.extensions.cursor, plan: PlannedTable, stage: sql.Identifier) -> int:
    try:
        return insert_from_stage(cursor, plan.table, stage, plan.header, skip_conflicts=False)
    except psycopg2.IntegrityError as error:
        detail = (error.diag.message_detail or "").strip()
        raise RestoreConflictError(
            f"table {plan.table}: a row of {plan.label} conflicts with constraint "
            f"{error.diag.constraint_name}: {detail or str(error).strip()}; nothing was restored "
            "(use on_conflict: skip, or truncate_before_restore)"
        ) from None


def _why_skipped(
    cursor: psycopg2.extensions.cursor, plan: PlannedTable, outcome: TableRestore, repeated: int
) -> dict[str, int]:
    """Split the skipped rows by cause; what the key explains not, another unique index did."""
    reasons = {KEY_IN_TABLE: outcome.conflicts, KEY_REPEATED: repeated}
    other = outcome.rows_skipped - outcome.conflicts - repeated
    if other < 0:
        raise RestoreLoadError(
            f"table {plan.table}: {count_of(outcome.rows_skipped, 'row')} skipped but {outcome.conflicts + repeated} "
            "conflict by key; the table changed during the restore"
        )
    if other:
        reasons["UNIQUE " + ", ".join(other_unique_constraints(cursor, plan.table))] = other
    return {reason: rows for reason, rows in reasons.items() if rows}
