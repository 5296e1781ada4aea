"""Restoring one collection of a LangChain store (``RestoreRequest.collection``): its row in
``langchain_pg_collection`` and its embeddings, leaving every other collection as it was, in
one transaction that rolls back on any error.

The collection table goes through the same stage as an append (``stage_rows``). The embedding
files are read once, and only the collection's rows reach COPY (``stage_collection_rows``, the
filter in ``core/sets/collection_filter``); an increment's chain and a legacy set are staged
whole and narrowed in the stage (see ``_filter_for``). Then, in order:

1. The collection is looked up by name in the staged collection table (for an increment, the
   stage holds the table after its chain). An unknown name fails
   here, before the lock, the safety set or any change, listing the names the set holds.
2. The tables are locked against writers (readers go on), and the collection is looked up by
   name in the target. Conflicts that no row-by-row handling could resolve are refused here
   (see below).
3. What the restore might replace is kept in a ``pre_restore`` set (both tables, in the same
   transaction, as for any restore).
4. Replace mode (``truncate_before_restore``): the target collection's embeddings are deleted
   (it is matched by name: its uuid may differ from the set's), its row is overwritten with the
   set's (updated, never deleted, since deleting it would cascade), and the set's embeddings of
   the collection are inserted. The collection ends up exactly as in the set, uuid included.
   Append mode: the row and the embeddings are inserted with the usual ``on_conflict``
   handling (``error`` names the first conflict, ``skip`` fills the gaps).

**Renamed copies** (``rename_collection_to``). The collection is restored as a new collection
beside the current one, with new keys that are deterministic (the same set, collection and new
name always give the same keys, so a renamed restore can be repeated in replace mode) and that
never collide with the originals:

- the collection's uuid is ``uuid5(RENAMED_COLLECTION_NAMESPACE, f"{uuid in the set}:{new name}")``;
- an embedding with a text key (the current ``langchain-postgres`` layout, ``id VARCHAR``)
  gets ``f"{id}:{new name}"``;
- an embedding with a uuid key (the older ``langchain_community`` layout, ``uuid UUID`` plus
  ``custom_id``) gets ``uuid5(new collection uuid, str(its uuid))``, and its ``custom_id``
  (the ids ``PGVector.delete(ids=...)`` matches in every collection) gets ``f"{custom_id}:{new name}"``,
  so deleting from the original never reaches the copy; documents, vectors and metadata are copied unchanged.

Refused, with nothing changed: a collection name the set holds twice or the target holds twice
(the older layout has no UNIQUE name), a target collection of that name under another uuid in
append mode (replace it, or restore it under another name), and a collection uuid the target
uses under another name.

**Undo.** When the restored collection did not exist in the target, the restore's
``pre_restore`` set records its name as absent. Restoring that collection from that set in
replace mode puts it back as it was: it removes the collection (its embeddings, then its row),
and every other collection stays as it is. So the undo of any collection restore touches only
that collection.
"""

from __future__ import annotations

import time
import uuid

import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.errors import (
    BackupFileError,
    ColumnMismatchError,
    RestoreConflictError,
    UnknownCollectionError,
)
from vector_assets.core.ops.restore.load import create_tables, finish_tables, hold_target_triggers
from vector_assets.core.ops.restore.plan import PlannedTable
from vector_assets.core.ops.restore.request import (
    APPEND,
    REPLACE,
    CollectionRestore,
    RestoreRequest,
    RestoreResult,
    RowComparison,
    TableRestore,
)
from vector_assets.core.ops.restore.stage import append_from_stage, stage_collection_rows, stage_rows
from vector_assets.core.ops.restore.transaction import back_up_what_is_replaced, restore_transaction
from vector_assets.core.pg.catalog import count_rows, primary_key, read_columns
from vector_assets.core.pg.collections import (
    COLLECTION_KEY,
    COLLECTION_NAME,
    COLLECTION_REFERENCE,
    StoredCollection,
    collection_with_uuid,
    collections_in,
    collections_named,
    delete_collection_row,
    delete_embeddings_of,
    keep_only,
    map_staged_uuid_keys,
    move_staged_embeddings,
    overwrite_collection_row,
    rename_staged_collection,
    suffix_staged_keys,
)
from vector_assets.core.pg.ddl import indexes_to_build
from vector_assets.core.pg.store_tables import put_triggers_back
from vector_assets.core.pg.table_changes import lock_against_writers
from vector_assets.core.sets.catalog import BackupSet
from vector_assets.core.sets.collection_filter import CollectionRows, can_filter
from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE
from vector_assets.core.units import count_of

CUSTOM_ID = "custom_id"

# Fixed for good: a renamed copy's keys derive from it (uuid5 of the URL namespace and
# "vector_assets:renamed-collection", that is 8dc0ba5b-0688-5138-a177-677815b4cf56).
RENAMED_COLLECTION_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "vector_assets:renamed-collection")
RENAMED_ID_SEPARATOR = ":"
NAMES_LISTED = 20  # an unknown name's message lists at most this many of the set's names
TEXT_TYPES = ("character varying", "text", "character")


def renamed_collection_uuid(set_uuid: str, new_name: str) -> str:
    return str(uuid.uuid5(RENAMED_COLLECTION_NAMESPACE, f"{set_uuid}{RENAMED_ID_SEPARATOR}{new_name}"))


def renamed_text_id(old_id: str, new_name: str) -> str:
    return f"{old_id}{RENAMED_ID_SEPARATOR}{new_name}"


def renamed_uuid_id(old_uuid: str, new_collection_uuid: str) -> str:
    return str(uuid.uuid5(uuid.UUID(new_collection_uuid), old_uuid))


def load_collection(
    conn: psycopg2.extensions.connection,
    request: RestoreRequest,
    planned: list[PlannedTable],
    to_create: list[PlannedTable],
    result: RestoreResult,
    comparison: RowComparison | None = None,
) -> None:
    """Restore one collection in one transaction; dry runs roll back at the end."""
    plans = {plan.table: plan for plan in planned}
    result.truncated = False  # one collection's rows are deleted; no table is truncated
    with restore_transaction(conn, request, result) as cursor:
        result.tables_created = create_tables(cursor, to_create)
        held = hold_target_triggers(cursor, request, planned, result)
        collection_stage, found = _find_in_set(cursor, plans[COLLECTION_TABLE], request, result.backup_set)
        lock_against_writers(cursor, request.store.table_names)
        result.collection = _find_in_target(cursor, request, found)
        outcomes = {plan.table: _outcome(cursor, plan, result.collection) for plan in planned}
        absent = () if result.collection.existed_before else (result.collection.restored_as,)
        result.safety_set = back_up_what_is_replaced(cursor, request, result.backup_set, outcomes, absent)
        if comparison is not None:
            comparison.before(cursor)
        if found is None:
            _remove(cursor, result.collection, outcomes)
        else:
            _load(cursor, request, plans, collection_stage, result.collection, outcomes)
        to_build = [index for plan in to_create for index in indexes_to_build(cursor, plan.table, plan.definition)]
        finish_tables(conn, cursor, request, planned, to_build, outcomes, result)
        if comparison is not None:
            comparison.after(cursor)
        put_triggers_back(cursor, held)


def _find_in_set(
    cursor: psycopg2.extensions.cursor, plan: PlannedTable, request: RestoreRequest, backup_set: BackupSet
) -> tuple[sql.Identifier, StoredCollection | None]:
    """Stage the set's collection table, find the collection by name, and keep only its row.
    None: the set records the collection as absent, and a replace puts it back so (removes it)."""
    _require_columns(plan, (COLLECTION_KEY, COLLECTION_NAME))
    stage, staged = stage_rows(cursor, plan, request.progress)
    _require_every_row(plan, staged)
    held = collections_in(cursor, stage)
    matching = sorted({c.uuid: c for c in held if c.name == request.collection}.values(), key=lambda c: c.uuid)
    if not matching and _recorded_absent(request, backup_set):
        return stage, None
    if not matching:
        raise UnknownCollectionError(
            f"set {backup_set.key} holds no collection named {request.collection!r}; "
            f"it holds {_listing(held)}; nothing was changed"
        )
    if len(matching) > 1:
        raise RestoreConflictError(
            f"set {backup_set.key} holds {len(matching)} collections named {request.collection!r} "
            f"(uuids {', '.join(c.uuid for c in matching)}): which one to restore is ambiguous; nothing was changed"
        )
    if staged - keep_only(cursor, stage, COLLECTION_KEY, matching[0].uuid) > 1:
        raise BackupFileError(f"{plan.label} holds the row of collection {request.collection!r} more than once")
    return stage, matching[0]


def _recorded_absent(request: RestoreRequest, backup_set: BackupSet) -> bool:
    """The set is a collection restore's safety set taken when this collection did not exist."""
    manifest = backup_set.manifest
    absent = manifest is not None and request.collection in manifest.absent_collections
    if absent and not request.truncate_before_restore:
        raise UnknownCollectionError(
            f"set {backup_set.key} records collection {request.collection!r} as absent: only a replace "
            "(truncate_before_restore, --replace) can put it back so, by removing it; nothing was changed"
        )
    if absent and request.rename_collection_to:
        raise UnknownCollectionError(
            f"set {backup_set.key} records collection {request.collection!r} as absent: there is nothing to "
            "restore under another name; nothing was changed"
        )
    return absent


def _remove(cursor: psycopg2.extensions.cursor, collection: CollectionRestore, outcomes: dict[str, TableRestore]) -> None:
    """Put back a collection the set records as absent: its embeddings, then its row, go."""
    started = time.monotonic()
    if collection.existed_before:
        _delete_embeddings(cursor, collection, outcomes[EMBEDDING_TABLE])
        outcomes[COLLECTION_TABLE].rows_truncated = delete_collection_row(cursor, collection.replaced_uuid)
    for outcome in outcomes.values():
        outcome.duration_seconds = time.monotonic() - started


def _listing(held: list[StoredCollection]) -> str:
    names = sorted({repr(c.name) if c.name is not None else "one without a name (NULL)" for c in held})
    if not names:
        return "no collections"
    more = f" and {len(names) - NAMES_LISTED} more" if len(names) > NAMES_LISTED else ""
    return f"{len(names)}: {', '.join(names[:NAMES_LISTED])}{more}"


def _find_in_target(
    cursor: psycopg2.extensions.cursor, request: RestoreRequest, found: StoredCollection | None
) -> CollectionRestore:
    """Which target collection the restore replaces, adds to or removes, or why it must not go ahead."""
    name = request.rename_collection_to or request.collection
    if found is None:
        return _to_remove(cursor, name)
    new_uuid = renamed_collection_uuid(found.uuid, name) if request.rename_collection_to else found.uuid
    mode = REPLACE if request.truncate_before_restore else APPEND
    replaced = _the_one_named(cursor, name, "replace")
    if mode == APPEND and replaced is not None and replaced != new_uuid:
        raise RestoreConflictError(
            f"collection {name!r} already exists in the target under uuid {replaced} (the restored one has {new_uuid}): "
            "replace it (truncate_before_restore) or restore it under another name (rename_collection_to); "
            "nothing was changed"
        )
    holder = collection_with_uuid(cursor, new_uuid)
    if holder is not None and holder.uuid != replaced:
        raise RestoreConflictError(
            f"the target's collection {holder.name!r} already has uuid {new_uuid}, which the restored collection "
            f"{name!r} needs: restore it under another name (rename_collection_to); nothing was changed"
        )
    return CollectionRestore(request.collection, name, found.uuid, new_uuid, mode, replaced_uuid=replaced)


def _to_remove(cursor: psycopg2.extensions.cursor, name: str) -> CollectionRestore:
    replaced = _the_one_named(cursor, name, "remove")
    return CollectionRestore(name, name, "", replaced or "", REPLACE, replaced_uuid=replaced, removed=True)


def _the_one_named(cursor: psycopg2.extensions.cursor, name: str, verb: str) -> str | None:
    """The uuid of the target's collection of this name, None if it has none; two are refused
    (the older layout has no UNIQUE name)."""
    existing = collections_named(cursor, name)
    if len(existing) > 1:
        raise RestoreConflictError(
            f"the target holds {len(existing)} collections named {name!r} (uuids {', '.join(existing)}): "
            f"which one to {verb} is ambiguous; nothing was changed"
        )
    return existing[0] if existing else None


def _outcome(cursor: psycopg2.extensions.cursor, plan: PlannedTable, collection: CollectionRestore) -> TableRestore:
    """Rows before are the whole table's; rows in the set are the collection's, once staged.

    Where the restore deletes the target collection's embeddings, the delete's own scan counts
    the embedding table (``_delete_embeddings``), which has no index to find them by. Until then
    the collection table holds that collection's row, so the safety set is still taken."""
    if plan.table == EMBEDDING_TABLE and _deletes_embeddings(collection):
        return TableRestore(plan.table, plan.label, plan.bytes, 0)
    return TableRestore(plan.table, plan.label, plan.bytes, 0, rows_before=count_rows(cursor, plan.table))


def _deletes_embeddings(collection: CollectionRestore) -> bool:
    """A replace or a removal of a collection the target holds."""
    return collection.mode == REPLACE and collection.existed_before


def _delete_embeddings(cursor: psycopg2.extensions.cursor, collection: CollectionRestore, embeddings: TableRestore) -> None:
    embeddings.rows_before, deleted = delete_embeddings_of(cursor, collection.replaced_uuid)
    collection.embeddings_deleted = embeddings.rows_truncated = deleted


def _load(
    cursor: psycopg2.extensions.cursor,
    request: RestoreRequest,
    plans: dict[str, PlannedTable],
    collection_stage: sql.Identifier,
    collection: CollectionRestore,
    outcomes: dict[str, TableRestore],
) -> None:
    started = time.monotonic()
    embedding_plan = plans[EMBEDDING_TABLE]
    _require_columns(embedding_plan, (COLLECTION_REFERENCE,))
    embedding_stage, rows = _stage_embeddings(cursor, embedding_plan, collection.set_uuid, request)
    collection.embeddings_in_set = outcomes[EMBEDDING_TABLE].rows_in_set = rows
    if collection.renamed:
        rename_staged_collection(cursor, collection_stage, collection.uuid, collection.restored_as)
        move_staged_embeddings(cursor, embedding_stage, collection.uuid)
        _give_new_keys(cursor, embedding_stage, collection)
    _write_collection_row(cursor, request, plans[COLLECTION_TABLE], collection_stage, collection, outcomes)
    embeddings = outcomes[EMBEDDING_TABLE]
    append_from_stage(cursor, embedding_plan, embeddings, request, embedding_stage, rows)
    collection.embeddings_loaded, collection.embeddings_skipped = embeddings.rows_loaded, embeddings.rows_skipped
    for outcome in outcomes.values():
        outcome.duration_seconds = time.monotonic() - started


def _stage_embeddings(
    cursor: psycopg2.extensions.cursor, plan: PlannedTable, set_uuid: str, request: RestoreRequest
) -> tuple[sql.Identifier, int]:
    """The collection's embeddings in a stage: filtered out of the files on their way to COPY
    where that is exact, else the whole table staged and the other collections' rows deleted."""
    only = _filter_for(plan, set_uuid)
    if only is not None:
        return stage_collection_rows(cursor, plan, only, request.progress)
    stage, staged = stage_rows(cursor, plan, request.progress)
    _require_every_row(plan, staged)
    return stage, staged - keep_only(cursor, stage, COLLECTION_REFERENCE, set_uuid)


def _filter_for(plan: PlannedTable, set_uuid: str) -> CollectionRows | None:
    """How the files are narrowed to the collection, or None where they are staged whole: an
    increment's chain (its rows are checked against the whole table's content digest, and a row
    may change collection between increments), a legacy set (no manifest gives the column's type
    or the files' rows), a format no walk reads, or a collection reference that is not a uuid."""
    if plan.increments or plan.column_types.get(COLLECTION_REFERENCE) != "uuid":
        return None
    if any(file.rows is None or file.sha256 is None or not can_filter(file.format) for file in plan.files):
        return None
    return CollectionRows(plan.header.index(COLLECTION_REFERENCE), len(plan.header), uuid.UUID(set_uuid))


def _write_collection_row(
    cursor: psycopg2.extensions.cursor,
    request: RestoreRequest,
    plan: PlannedTable,
    stage: sql.Identifier,
    collection: CollectionRestore,
    outcomes: dict[str, TableRestore],
) -> None:
    """Replace mode over an existing collection: delete its embeddings, overwrite its row.
    Otherwise the row is appended like any staged row."""
    outcome = outcomes[COLLECTION_TABLE]
    outcome.rows_in_set = 1
    if _deletes_embeddings(collection):
        _delete_embeddings(cursor, collection, outcomes[EMBEDDING_TABLE])
        outcome.rows_truncated = outcome.rows_loaded = overwrite_collection_row(
            cursor, stage, plan.header, collection.replaced_uuid
        )
        return
    append_from_stage(cursor, plan, outcome, request, stage, 1)


def _give_new_keys(cursor: psycopg2.extensions.cursor, stage: sql.Identifier, collection: CollectionRestore) -> None:
    """The renamed copy's embedding keys, as the module's docstring documents them."""
    key = primary_key(cursor, EMBEDDING_TABLE)
    types = {column.name: column.type for column in read_columns(cursor, EMBEDDING_TABLE)}
    key_type = types.get(key[0]) if len(key) == 1 else None
    if key_type == "uuid":
        map_staged_uuid_keys(cursor, stage, key[0], lambda old: renamed_uuid_id(old, collection.uuid))
        if CUSTOM_ID in types:  # the ids LangChain's delete(ids=...) matches, in every collection
            suffix_staged_keys(cursor, stage, CUSTOM_ID, renamed_text_id("", collection.restored_as))
    elif key_type is not None and key_type.startswith(TEXT_TYPES):
        suffix_staged_keys(cursor, stage, key[0], renamed_text_id("", collection.restored_as))
    else:
        raise ColumnMismatchError(
            f"table {EMBEDDING_TABLE}: a renamed copy needs a primary key of one text or uuid column to give "
            f"its embeddings new ids; the key is {', '.join(f'{k} {types.get(k)}' for k in key) or 'missing'}"
        )


def _require_columns(plan: PlannedTable, columns: tuple[str, ...]) -> None:
    missing = [column for column in columns if column not in plan.header]
    if missing:
        raise ColumnMismatchError(
            f"table {plan.table}: a collection restore needs the LangChain column(s) {', '.join(missing)}, "
            f"which {plan.label} lacks"
        )


def _require_every_row(plan: PlannedTable, staged: int) -> None:
    """The stage holds the table as the set has it: for an increment, after its chain."""
    if staged != plan.rows_after:
        raise BackupFileError(f"{plan.label}: staged {count_of(staged, 'row')}, but the set has {plan.rows_after}")
