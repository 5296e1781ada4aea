"""The restore command: load a set into the same or another database, in one transaction.

Checked before the transaction starts: the set's files, headers and row counts, the pgvector
extension on the target (or the right to create it), and the columns by name and type. A table
the target lacks is created from the definition in the set's manifest, and its indexes are
built after its rows are in. Each file's sha256 is checked on
the same read that feeds COPY, before anything commits. Then, in one transaction:
optional TRUNCATE, COPY collections before embeddings, compare row counts, commit. Any error
rolls back, so the tables are exactly as before.

A restore of one collection (``collection``) runs its own transaction, built on the same
stage (``stage_rows``): see ``collection``.

The stages, in order, each a module that imports only the ones before it:

1. ``request``: what the restore is asked to do, and the results it returns.
2. ``plan``: the copy chosen, the set's files of each table (and an increment's chain) checked
   before the database is touched.
3. ``target``: the target checked: pgvector or the right to create it, the columns by name and type.
4. ``transaction``: the one transaction, and the safety set of what the restore replaces.
5. ``load``: the in-place load: tables created or truncated, keys and indexes dropped and put
   back, the files copied in with their sha256 checked, indexes built, sequences advanced.
6. ``chain``: an increment's chain applied, to the tables in place or to a stage.
7. ``stage``: a table's rows staged, and appended from there with conflicts named or skipped.
8. ``whole_tables`` and ``collection``: the two restores, of whole tables or of one collection.

``run_restore`` here runs them: choose the copy, plan, check the target, then restore one
collection or the whole tables.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from vector_assets.core.ops.restore.collection import load_collection
from vector_assets.core.ops.restore.plan import PlannedTable, plan_table, readable_chain, require_same_store, split_chain
from vector_assets.core.ops.restore.request import (
    APPEND,
    ON_CONFLICT_CHOICES,
    REPLACE,
    CollectionRestore,
    RestoreRequest,
    RestoreResult,
    TableRestore,
)
from vector_assets.core.ops.restore.target import check_target
from vector_assets.core.ops.restore.whole_tables import load_whole_tables
from vector_assets.core.pg.connection import connect, database_errors
from vector_assets.core.sets.copies import choose_copy

if TYPE_CHECKING:
    from vector_assets.core.ops.diff import ReplacedRows

__all__ = [
    "APPEND",
    "ON_CONFLICT_CHOICES",
    "REPLACE",
    "CollectionRestore",
    "RestoreRequest",
    "RestoreResult",
    "TableRestore",
    "run_restore",
]

DURING_RESTORE = "during the restore, on the target"


def run_restore(request: RestoreRequest) -> RestoreResult:
    started = time.monotonic()
    chosen = choose_copy(
        request.root, request.offsite_root, request.timestamp, request.backup_path, request.configured_root
    )
    backup_set = chosen.backup_set
    require_same_store(backup_set, request.store)
    base_set, increments = split_chain(backup_set)
    base_set = readable_chain(base_set, increments, request.encryption.identity_file)
    planned = [plan_table(base_set, table, increments) for table in in_set_order(base_set.tables, request.tables)]
    result = RestoreResult(
        backup_set, request.dry_run, request.truncate_before_restore, safety_backup=request.safety_backup,
        read_from_offsite=chosen.note,
    )
    compares = request.truncate_before_restore and (request.dry_run or request.name_replaced_rows)
    comparison = replaced_rows(request, result, planned) if compares else None
    conn = connect(request.target_dsn)
    try:
        with database_errors(conn, DURING_RESTORE):
            to_create = check_target(conn, backup_set, planned, request)
            if request.collection is not None:
                load_collection(conn, request, planned, to_create, result, comparison)
            else:
                load_whole_tables(conn, request, planned, to_create, result, comparison)
    finally:
        conn.close()
        if comparison is not None:
            comparison.close()
    result.changes = comparison.result if comparison is not None else None
    result.duration_seconds = time.monotonic() - started
    return result


def in_set_order(set_tables: tuple[str, ...], requested: tuple[str, ...]) -> list[str]:
    """The requested tables in the order the set wrote them (parents before the tables that
    reference them, as the source's foreign keys said); any the set lacks last, to be named."""
    return sorted(requested, key=lambda table: set_tables.index(table) if table in set_tables else len(set_tables))


def replaced_rows(request: RestoreRequest, result: RestoreResult, planned: list[PlannedTable]) -> ReplacedRows:
    """For a replacing restore and its dry run: the rows it replaces, compared in its transaction,
    of its tables, or of its one collection (not when renamed: the copy gets new keys)."""
    from vector_assets.core.ops.diff import ReplacedRows  # the diff stages sets through this package

    def collection() -> CollectionRestore | None:
        return result.collection

    return ReplacedRows(request.store, result.backup_set, planned, collection)
