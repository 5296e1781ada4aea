"""Data checks: counts of the rows a RAG store should not hold, read in the backup's snapshot.

One aggregate scan of a vector table gives most counts: NULL and all-zero vectors, empty
documents, rows whose collection does not exist (a LEFT JOIN to the small collection table), and,
for a column declared without a dimension, each vector's dimension grouped by collection, so it is
held to the dimension most of its collection has (a declared dimension is enforced on input: its
count is 0 without a look). Duplicate ids need a second, grouped scan, and only
where no unique index already rules them out (a primary key cannot repeat, so it is never
scanned for repeats).

A count is None when the table has nothing that check could look at (no document column, no
collection). The checks never stop the set they describe: a statement the server refuses (a
store's own column types the checks do not expect) is rolled back to a savepoint and recorded
as the reason nothing was counted. Vector columns of every pgvector type are checked for NULLs; ``sparsevec`` has no
dimension function (its declared dimension is enforced on input), and an all-zero ``bit``
vector is a valid binary code, so those two checks skip those types.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, fields
from functools import partial

import psycopg2
import psycopg2.errorcodes
import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.layouts import LayoutColumns
from vector_assets.core.pg.catalog import regclass_literal, table_exists, table_identifier

TEXT_TYPES = ("text", "varchar", "bpchar")
# pgvector's types (and bit), with the function giving a value's dimension and the one giving
# its norm; None where the check does not apply to the type.
VECTOR_FUNCTIONS = {
    "vector": ("vector_dims", "vector_norm"),
    "halfvec": ("vector_dims", "l2_norm"),
    "sparsevec": (None, "l2_norm"),
    "bit": ("length", None),
}
CHECK_NAMES = ("wrong_dimensions", "null_vectors", "zero_vectors", "duplicate_ids", "missing_collection", "empty_documents")
# How each count reads: (one, several).
CHECK_NOUNS = {
    "wrong_dimensions": ("vector of another dimension", "vectors of another dimension"),
    "null_vectors": ("NULL vector", "NULL vectors"),
    "zero_vectors": ("all-zero vector", "all-zero vectors"),
    "duplicate_ids": ("row repeating an id in its collection", "rows repeating an id in their collection"),
    "missing_collection": ("row of a missing collection", "rows of a missing collection"),
    "empty_documents": ("empty document", "empty documents"),
}


@dataclass(frozen=True)
class DataChecks:
    """One table's counts at one snapshot (None: not applicable to this table), and what they cost."""

    wrong_dimensions: int | None = None  # vectors whose dimension is not the column's, or not their collection's
    null_vectors: int | None = None
    zero_vectors: int | None = None
    duplicate_ids: int | None = None  # rows repeating a client id already held in their collection
    missing_collection: int | None = None  # vector rows naming no collection, or one that does not exist
    empty_documents: int | None = None  # NULL or blank
    seconds: float = 0.0
    failed: str | None = None  # why nothing could be counted (the server refused the checks' statement)

    def counts(self) -> dict[str, int]:
        """The checks that apply, by name."""
        return {name: getattr(self, name) for name in CHECK_NAMES if getattr(self, name) is not None}

    def problems(self) -> dict[str, int]:
        return {name: count for name, count in self.counts().items() if count}

    def describe(self) -> str:
        """One line: the problems found, or which checks found none."""
        if self.failed:
            return f"not counted: {self.failed}"
        problems = self.problems()
        if problems:
            return ", ".join(_count_of(name, count) for name, count in problems.items())
        return "no " + ", ".join(CHECK_NOUNS[name][1] for name in self.counts()) if self.counts() else "nothing to check"

    def to_json(self) -> dict[str, int | float | str]:
        return {**self.counts(), "seconds": round(self.seconds, 3), **({"failed": self.failed} if self.failed else {})}

    @classmethod
    def from_json(cls, data: dict) -> DataChecks:
        known = {field.name for field in fields(cls)}
        return cls(**{name: value for name, value in data.items() if name in known})


def _count_of(name: str, count: int) -> str:
    one, several = CHECK_NOUNS[name]
    return f"{count:,} {one if count == 1 else several}"


@dataclass(frozen=True)
class DataCheckPlan:
    """Which tables of a set get data checks (a store's vector tables), what the store's layout
    calls its columns, and the table its collections are in (None: no collections)."""

    tables: tuple[str, ...]
    columns: LayoutColumns
    collection_table: str | None = None

    def check(self, cursor: psycopg2.extensions.cursor, table: str) -> DataChecks | None:
        """The table's counts, in the caller's transaction; None for a table that is not checked."""
        if table not in self.tables:
            return None
        cursor.execute("SAVEPOINT vector_assets_data_checks")
        # one process: the backup's own connections are using the cores, and parallel workers
        # would take them from the export and add their own overhead to the same work
        cursor.execute("SELECT current_setting('max_parallel_workers_per_gather'), "
                       "set_config('max_parallel_workers_per_gather', '0', true)")
        parallel_workers = cursor.fetchone()[0]
        try:
            checks = run_data_checks(cursor, checked_table(cursor, table, self.columns, self.collection_table))
        except psycopg2.DatabaseError as error:
            if cursor.connection.closed:
                raise
            cursor.execute("ROLLBACK TO SAVEPOINT vector_assets_data_checks")
            # the message may quote a value of the table, and table data never goes into a manifest
            reason = psycopg2.errorcodes.lookup(error.pgcode) if error.pgcode else type(error).__name__
            return DataChecks(failed=f"the server refused the checks' statement ({reason}) on {table}")
        cursor.execute("SELECT set_config('max_parallel_workers_per_gather', %s, true)", (parallel_workers,))
        cursor.execute("RELEASE SAVEPOINT vector_assets_data_checks")
        return checks


@dataclass(frozen=True)
class VectorColumn:
    name: str
    type: str  # the base type: vector, halfvec, sparsevec or bit
    dimensions: int | None  # declared (vector(384)); None when the column has no dimension

    @property
    def dims_function(self) -> str | None:
        return VECTOR_FUNCTIONS[self.type][0]

    @property
    def norm_function(self) -> str | None:
        return VECTOR_FUNCTIONS[self.type][1]


@dataclass(frozen=True)
class CheckedTable:
    """What a table is checked with: its vector columns, and the layout's columns it has."""

    table: str
    vectors: tuple[VectorColumn, ...]
    document: str | None = None
    ids: tuple[str, ...] = ()  # client ids a unique index does not already cover
    covered_ids: tuple[str, ...] = ()  # client ids that cannot repeat: a unique index covers them
    collection_reference: str | None = None
    collection_table: str | None = None
    collection_key: str | None = None


def checked_vector_columns(cursor: psycopg2.extensions.cursor, table: str) -> tuple[VectorColumn, ...]:
    """The table's columns of pgvector's types or bit, with their declared dimension."""
    cursor.execute(
        """
        SELECT a.attname, t.typname, a.atttypmod FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
        WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped AND t.typname = ANY (%s)
        ORDER BY a.attnum
        """,
        (regclass_literal(cursor, table), list(VECTOR_FUNCTIONS)),
    )
    return tuple(VectorColumn(name, type_name, typmod if typmod > 0 else None) for name, type_name, typmod in cursor.fetchall())


def checked_table(
    cursor: psycopg2.extensions.cursor, table: str, columns: LayoutColumns, collection_table: str | None
) -> CheckedTable:
    """The table as the checks see it, from the catalog and the layout's column names."""
    cursor.execute(
        """
        SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
        WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
        """,
        (regclass_literal(cursor, table),),
    )
    types = dict(cursor.fetchall())
    document = next((name for name in columns.documents if types.get(name) in TEXT_TYPES), None)
    has_collections = collection_table is not None and table_exists(cursor, collection_table)
    reference = columns.collection_reference if has_collections and columns.collection_reference in types else None
    present_ids = [name for name in columns.ids if name in types]
    covered = _unique_within(cursor, table, present_ids, reference)
    return CheckedTable(
        table, checked_vector_columns(cursor, table), document,
        tuple(name for name in present_ids if name not in covered), tuple(covered),
        reference, collection_table if reference else None, columns.collection_key if reference else None,
    )


def _unique_within(cursor: psycopg2.extensions.cursor, table: str, ids: list[str], reference: str | None) -> list[str]:
    """The ids that a unique, non-partial index on the id (alone, or with the collection) keeps from repeating."""
    cursor.execute(
        """
        SELECT array_agg(a.attname::text) FROM pg_index i
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
        WHERE i.indrelid = %s::regclass AND i.indisunique AND i.indpred IS NULL AND 0 <> ALL (i.indkey)
        GROUP BY i.indexrelid
        """,
        (regclass_literal(cursor, table),),
    )
    unique_sets = [set(names) for (names,) in cursor.fetchall()]
    return [name for name in ids if any(names <= {name, reference} and name in names for names in unique_sets)]


def run_data_checks(cursor: psycopg2.extensions.cursor, checked: CheckedTable) -> DataChecks:
    """Every count for one table, in the caller's transaction (the backup's snapshot)."""
    started = time.monotonic()
    counts = _scan_counts(cursor, checked)
    duplicates = sum(_duplicates(cursor, checked, name) for name in checked.ids) if checked.ids or checked.covered_ids else None
    return DataChecks(**counts, duplicate_ids=duplicates, seconds=time.monotonic() - started)


def _scan_counts(cursor: psycopg2.extensions.cursor, checked: CheckedTable) -> dict[str, int | None]:
    """The one aggregate scan: the rows and the NULL, zero, empty and orphaned counts among them,
    per (collection, each vector's dimension) group where a column has no declared dimension.

    Without groups each row's flags are aggregated as the scan reads it. With groups, each row
    is reduced to its group and its flags first (``OFFSET 0`` keeps that a step of its own), so
    the planner hashes a few narrow groups instead of sorting whole rows, vectors and all, which
    it would otherwise do, spilling to disk, on the row estimate of ``vector_dims``."""
    t = partial(sql.Identifier, "t")
    groups: list[sql.Composable] = []
    # a declared dimension is enforced on input, so only undeclared ones are grouped and compared
    dimensioned = [column for column in checked.vectors if column.dims_function and column.dimensions is None]
    by_collection = bool(dimensioned and checked.collection_reference)
    if by_collection:
        groups.append(sql.SQL("{}::text").format(t(checked.collection_reference)))
    groups += [sql.SQL("{}({})").format(sql.SQL(c.dims_function), t(c.name)) for c in dimensioned]
    flags = [sql.SQL("{} IS NULL").format(t(c.name)) for c in checked.vectors]
    zeroable = [column for column in checked.vectors if column.norm_function]
    flags += [_is_zero(column, t(column.name)) for column in zeroable]
    if checked.document:
        flags.append(_is_blank(t(checked.document)))
    join = sql.SQL("")
    if checked.collection_reference:
        # a NULL reference joins nothing either, so one test counts both
        flags.append(sql.SQL("c.present IS NULL"))
        join = sql.SQL(" LEFT JOIN (SELECT DISTINCT {key} AS key, true AS present FROM {collections}) c ON c.key = {reference}").format(
            key=sql.Identifier(checked.collection_key), collections=table_identifier(checked.collection_table),
            reference=t(checked.collection_reference),
        )
    cursor.execute(_grouped_scan(checked, groups, flags, join) if groups else _plain_scan(checked, flags, join))
    results = cursor.fetchall()
    width = len(groups)
    collection_at = 1 if by_collection else 0
    totals = [sum(result[width + 1 + n] for result in results) for n in range(len(flags))]
    vectors = len(checked.vectors)
    has_dimensions = any(column.dims_function for column in checked.vectors)
    return {
        "wrong_dimensions": _wrong_dimensions(results, dimensioned, collection_at, width) if has_dimensions else None,
        "null_vectors": sum(totals[:vectors]) if checked.vectors else None,
        "zero_vectors": sum(totals[vectors:vectors + len(zeroable)]) if zeroable else None,
        "empty_documents": totals[vectors + len(zeroable)] if checked.document else None,
        "missing_collection": totals[-1] if checked.collection_reference else None,
    }


def _plain_scan(checked: CheckedTable, flags: list[sql.Composable], join: sql.Composable) -> sql.Composed:
    counts = [sql.SQL("count(*)"), *(sql.SQL("count(*) FILTER (WHERE {})").format(flag) for flag in flags)]
    return sql.SQL("SELECT {counts} FROM {table} AS t{join}").format(
        counts=sql.SQL(", ").join(counts), table=table_identifier(checked.table), join=join,
    )


def _grouped_scan(
    checked: CheckedTable, groups: list[sql.Composable], flags: list[sql.Composable], join: sql.Composable
) -> sql.Composed:
    columns = [*(sql.SQL("{} AS g{}").format(group, sql.SQL(str(n))) for n, group in enumerate(groups)),
               *(sql.SQL("{} AS f{}").format(flag, sql.SQL(str(n))) for n, flag in enumerate(flags))]
    outer = [*(sql.SQL(f"g{n}") for n in range(len(groups))), sql.SQL("count(*)"),
             *(sql.SQL(f"count(*) FILTER (WHERE f{n})") for n in range(len(flags)))]
    return sql.SQL("SELECT {outer} FROM (SELECT {columns} FROM {table} AS t{join} OFFSET 0) rows GROUP BY {groups}").format(
        outer=sql.SQL(", ").join(outer), columns=sql.SQL(", ").join(columns), table=table_identifier(checked.table),
        join=join, groups=sql.SQL(", ").join(sql.SQL(f"g{n}") for n in range(len(groups))),
    )


def _is_zero(column: VectorColumn, value: sql.Composable) -> sql.Composable:
    """Equal to the zero vector of the declared dimension: pgvector compares element by element
    and stops at the first that differs, where a norm reads every float. An undeclared column
    (zero vectors of any dimension) and ``sparsevec`` (its norm reads only the stored non-zeros)
    take the norm."""
    if column.dimensions is None or column.type not in ("vector", "halfvec"):
        return sql.SQL("{}({}) = 0").format(sql.SQL(column.norm_function), value)
    zero = "[" + ",".join("0" * column.dimensions) + "]"
    return sql.SQL("{} = {}").format(value, sql.Literal(zero))


def _is_blank(document: sql.Composable) -> sql.Composable:
    """NULL, or nothing but white space. A document that starts with a visible ASCII character
    (codes 33 to 126, never white space in any locale or server encoding) is not blank, and that
    is read from its first character alone; only the rest go through the regex, which would
    first convert the whole document to wide characters."""
    return sql.SQL("{0} IS NULL OR CASE WHEN ascii({0}) BETWEEN 33 AND 126 THEN false ELSE {0} ~ '^\\s*$' END").format(document)


def _wrong_dimensions(results: list[tuple], dimensioned: list[VectorColumn], collection_at: int, width: int) -> int:
    """Per column declared without a dimension: within each collection (or the table), the
    vectors not of the dimension most of them have (the smallest, if two tie)."""
    wrong = 0
    for position, column in enumerate(dimensioned, start=collection_at):
        by_group: dict[object, Counter] = defaultdict(Counter)
        for result in results:
            if result[position] is not None:
                by_group[result[0] if collection_at else None][result[position]] += result[width]
        for dimensions in by_group.values():
            expected = min(dimensions, key=lambda dims: (-dimensions[dims], dims))
            wrong += sum(rows for dims, rows in dimensions.items() if dims != expected)
    return wrong


def _duplicates(cursor: psycopg2.extensions.cursor, checked: CheckedTable, id_column: str) -> int:
    """Rows whose id another row of their collection already has (each repeat beyond the first)."""
    group = [sql.Identifier(id_column)]
    if checked.collection_reference:
        group.append(sql.Identifier(checked.collection_reference))
    cursor.execute(sql.SQL(
        "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {table} WHERE {id} IS NOT NULL "
        "GROUP BY {group} HAVING count(*) > 1) repeats"
    ).format(table=table_identifier(checked.table), id=sql.Identifier(id_column), group=sql.SQL(", ").join(group)))
    return int(cursor.fetchone()[0])
