"""How well a table's vector indexes answer: recall@k of each HNSW or IVFFlat index against
exact search, the index queries' latency, and how many came back short.

Query vectors are sampled from the table itself, in an order fixed by a seed, so a drill
repeats. Answers name rows by their primary key, or in a table without one by a digest of the
whole row (``RowIdentity``), which the seeded order hashes too. Each query runs through the
index (sequential scans off, so the index is what is measured even on a small table), one
query at a time, timed. The exact answers of all of them
come from one streamed pass over the table (``exact_search``) where numpy covers the column's
type and the operator; otherwise each query also runs exactly (index scans off). Collections,
where the layout has them, filter both, as the store's own queries do; pgvector's iterative
scans are set as the store sets them (off unless told).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.pg.catalog import primary_key, regclass_literal, table_identifier
from vector_assets.core.pg.exact_search import (
    CHUNK_ROWS, ExactQuery, RowIdentity, exact_answers, float4_rounding, one_pass_supported, query_vector,
)

VECTOR_INDEX_METHODS = ("hnsw", "ivfflat")
# pgvector's operator classes, by the distance they order by.
DISTANCE_OPERATORS = {"l2": "<->", "ip": "<#>", "cosine": "<=>", "l1": "<+>", "hamming": "<~>", "jaccard": "<%>"}
ITERATIVE_SCANS = ("off", "relaxed_order", "strict_order")
TIE_TOLERANCE = 1e-6  # relative: an index answer and a per-query exact one are the same pgvector function
# relative: two exact answers computed the same way (both in one pass, or both per query) agree to
# float64 rounding, so a vector moved far less than float4's rounding of a distance still shows
SAME_DISTANCE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class VectorIndex:
    name: str
    method: str
    column: str
    column_type: str  # as format_type() prints it, e.g. vector(384)
    operator: str


@dataclass(frozen=True)
class RecallRequest:
    table: str
    queries: int = 100  # per table, or per collection where there are collections
    k: int = 10
    seed: str = "vector_assets"
    collection_column: str | None = None  # filter each query by the sampled row's value of this column
    iterative_scan: str = "off"
    chunk_rows: int = CHUNK_ROWS  # rows the exact pass holds at once


@dataclass(frozen=True)
class ExactAnswers:
    """Each query's exact top k, (identity as text..., distance) nearest first, and how far an index
    answer's distance may lie beyond the k-th and still be as near (the two were computed apart)."""

    answers: list[list[tuple]]
    tolerances: list[float]


@dataclass
class IndexRecall:
    table: str
    index: str
    method: str
    k: int
    queries: int = 0
    recall: float = 1.0
    short_answers: int = 0  # index queries that returned fewer rows than the exact search found
    live_queries: int = 0  # the same exact queries run on the live table too (the newest set only)
    live_differences: int = 0  # ...whose answers there differ from the restored table's
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else 0.0

    @property
    def p95_ms(self) -> float:
        if len(self.latencies_ms) < 2:
            return self.p50_ms
        return statistics.quantiles(self.latencies_ms, n=20, method="inclusive")[18]

    def describe(self) -> str:
        live = (f", {self.live_differences} of {self.live_queries} exact answers differ from the live table"
                if self.live_queries else "")
        return (f"{self.index} ({self.method}): recall@{self.k} {self.recall:.3f} over {self.queries} queries, "
                f"p50 {self.p50_ms:.1f} ms, p95 {self.p95_ms:.1f} ms, {self.short_answers} short{live}")


def vector_indexes(cursor: psycopg2.extensions.cursor, table: str) -> list[VectorIndex]:
    """The table's HNSW and IVFFlat indexes on one column each, with the operator they order by."""
    cursor.execute(
        """
        SELECT i.relname, am.amname, a.attname, format_type(a.atttypid, a.atttypmod), opc.opcname
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_am am ON am.oid = i.relam
        JOIN pg_opclass opc ON opc.oid = x.indclass[0]
        JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
        WHERE x.indrelid = to_regclass(%s) AND am.amname = ANY(%s) AND x.indnatts = 1
        ORDER BY i.relname
        """,
        (regclass_literal(cursor, table), list(VECTOR_INDEX_METHODS)),
    )
    found = []
    for name, method, column, column_type, opclass in cursor.fetchall():
        distance = opclass.rsplit("_", 2)[-2]  # vector_cosine_ops -> cosine
        if distance in DISTANCE_OPERATORS:
            found.append(VectorIndex(name, method, column, column_type, DISTANCE_OPERATORS[distance]))
    return found


def measure_recall(
    cursor: psycopg2.extensions.cursor, request: RecallRequest, live: psycopg2.extensions.cursor | None = None
) -> list[IndexRecall]:
    """recall@k of every vector index of the table; the transaction is the caller's to roll back.
    With ``live`` (a cursor on the database the set was taken from), the exact answers are read
    there too, and the ones that differ are counted."""
    results = []
    identity = RowIdentity(tuple(primary_key(cursor, request.table)))
    searched: dict[tuple[str, str], tuple[list, ExactAnswers, ExactAnswers | None]] = {}
    for index in vector_indexes(cursor, request.table):
        if (index.column, index.operator) not in searched:  # indexes of one column and distance share the exact answers
            samples = _sample(cursor, request, index, identity)
            exact = exact_search(cursor, request, index, identity, samples)
            live_exact = exact_search(live, request, index, identity, samples) if live is not None else None
            searched[index.column, index.operator] = samples, exact, live_exact
        samples, exact, live_exact = searched[index.column, index.operator]
        results.append(_index_recall(cursor, request, index, identity, samples, exact, live_exact))
    return results


def _index_recall(
    cursor: psycopg2.extensions.cursor, request: RecallRequest, index: VectorIndex, identity: RowIdentity,
    samples: list[tuple[str, object]], exact: ExactAnswers, live_exact: ExactAnswers | None,
) -> IndexRecall:
    result = IndexRecall(request.table, index.name, index.method, request.k)
    found = expected = 0
    query = _top_k_query(cursor, request, index, identity, exact=False)
    with _scans(cursor, request, index, exact=False):
        for position, (vector, group) in enumerate(samples):
            by_index, seconds = _top_k(cursor, request, query, vector, group)
            answer = exact.answers[position]
            result.queries += 1
            result.latencies_ms.append(seconds * 1000)
            found += _neighbours_found(by_index, answer, exact.tolerances[position])
            expected += len(answer)
            result.short_answers += len(by_index) < len(answer)
            if live_exact is not None:
                result.live_queries += 1
                result.live_differences += not same_answers(answer, live_exact.answers[position])
    result.recall = found / expected if expected else 1.0
    return result


def exact_search(
    cursor: psycopg2.extensions.cursor, request: RecallRequest, index: VectorIndex, identity: RowIdentity,
    samples: list[tuple[str, object]], one_pass: bool = True,
) -> ExactAnswers:
    """Every sample's exact top k: in one pass over the table where numpy covers the column's
    type and the operator and the vectors share one dimension, else (or not ``one_pass``) one
    query each."""
    if one_pass and one_pass_supported(index.column_type, index.operator):
        queries = [ExactQuery(query_vector(vector), group) for vector, group in samples]
        passed = exact_answers(
            cursor, request.table, index.column, index.column_type, index.operator, identity, queries, request.k,
            request.collection_column, request.chunk_rows,
        )
        if passed is not None:
            tolerances = [
                float4_rounding(index.operator, len(query.vector), answer[-1][-1] if answer else 0.0,
                                float(np.linalg.norm(query.vector)), passed.largest_norm)
                for query, answer in zip(queries, passed.answers)
            ]
            return ExactAnswers(passed.answers, tolerances)
    query = _top_k_query(cursor, request, index, identity, exact=True)
    with _scans(cursor, request, index, exact=True):
        answers = [_top_k(cursor, request, query, vector, group)[0] for vector, group in samples]
    return ExactAnswers(answers, [TIE_TOLERANCE * max(abs(answer[-1][-1]), 1.0) if answer else 0.0 for answer in answers])


def _neighbours_found(by_index: list[tuple], exact: list[tuple], tolerance: float) -> int:
    """The index's answers that are true nearest neighbours: as near as the exact k-th one.
    Rows at the same distance are equally right (a store holding the same chunk twice has ties),
    so an answer counts by its distance, not by which of the tied rows it named; ``tolerance``
    covers the rounding between the index's distance and the exact one."""
    if not exact:
        return 0
    kth = exact[-1][-1]
    return min(len(exact), sum(1 for row in by_index if row[-1] <= kth + tolerance))


def same_answers(first: list[tuple], second: list[tuple]) -> bool:
    """Two exact top-k answers agree: the same distances, and the same rows nearer than the k-th
    (rows tied with the k-th are equally right, whichever of them an answer names)."""
    if len(first) != len(second):
        return False
    if not all(_same_distance(a[-1], b[-1]) for a, b in zip(first, second)):
        return False
    if not first:
        return True
    kth = first[-1][-1] - SAME_DISTANCE_TOLERANCE * max(abs(first[-1][-1]), 1.0)
    return {row[:-1] for row in first if row[-1] < kth} == {row[:-1] for row in second if row[-1] < kth}


def _same_distance(first: float, second: float) -> bool:
    if first != first or second != second:  # NaN: a cosine distance to a zero vector
        return (first != first) and (second != second)
    return abs(first - second) <= SAME_DISTANCE_TOLERANCE * max(abs(first), 1.0)


def _sample(
    cursor: psycopg2.extensions.cursor, request: RecallRequest, index: VectorIndex, identity: RowIdentity
) -> list[tuple[str, object]]:
    """(query vector as text, its collection as text or None), ``queries`` per collection, in seeded order."""
    group = sql.SQL("NULL")
    if request.collection_column:
        group = sql.SQL("{}::text").format(sql.Identifier(request.collection_column))
    order = sql.SQL("md5(concat_ws('|', {}, %s))").format(sql.SQL(", ").join(identity.fields(cursor, request.table)))
    cursor.execute(
        sql.SQL(
            "SELECT v, g FROM (SELECT {column}::text AS v, {group} AS g, "
            "row_number() OVER (PARTITION BY {group} ORDER BY {order}) AS n FROM {table} AS t WHERE {column} IS NOT NULL) s "
            "WHERE n <= %s ORDER BY g, n"
        ).format(column=sql.Identifier(index.column), group=group, order=order, table=table_identifier(request.table)),
        (request.seed, request.queries),
    )
    return cursor.fetchall()


@contextmanager
def _scans(cursor: psycopg2.extensions.cursor, request: RecallRequest, index: VectorIndex, exact: bool) -> Iterator[None]:
    """Index scans off for exact queries; sequential scans off and the store's iterative scans
    for index queries; set in a savepoint, and gone after it."""
    cursor.execute("SAVEPOINT vector_assets_recall")
    for setting in ("enable_indexscan", "enable_bitmapscan") if exact else ("enable_seqscan",):
        cursor.execute(sql.SQL("SET LOCAL {} = off").format(sql.Identifier(setting)))
    if not exact:
        cursor.execute(sql.SQL("SET LOCAL {} = %s").format(sql.Identifier(f"{index.method}.iterative_scan")),
                       (request.iterative_scan,))
    yield
    cursor.execute("ROLLBACK TO SAVEPOINT vector_assets_recall")


def _top_k_query(
    cursor: psycopg2.extensions.cursor, request: RecallRequest, index: VectorIndex, identity: RowIdentity, exact: bool
) -> sql.Composable:
    conditions = []
    if exact:  # as the one pass: rows without a vector are no answer (an index holds none)
        conditions.append(sql.SQL("{} IS NOT NULL").format(sql.Identifier(index.column)))
    if request.collection_column:
        conditions.append(sql.SQL("{} = %(group)s").format(sql.Identifier(request.collection_column)))
    where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")
    return sql.SQL(
        "SELECT {identity}, {column} {op} %(vector)s::{type} FROM {table} AS t{where} "
        "ORDER BY {column} {op} %(vector)s::{type} LIMIT %(k)s"
    ).format(
        identity=sql.SQL(", ").join(identity.fields(cursor, request.table)),
        table=table_identifier(request.table), where=where,
        column=sql.Identifier(index.column), op=sql.SQL(index.operator), type=sql.SQL(index.column_type),
    )


def _top_k(
    cursor: psycopg2.extensions.cursor, request: RecallRequest, query: sql.Composable, vector: str, group: object
) -> tuple[list[tuple], float]:
    started = time.perf_counter()
    cursor.execute(query, {"vector": vector, "k": request.k, "group": group})
    rows = cursor.fetchall()
    return rows, time.perf_counter() - started
