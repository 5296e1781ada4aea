"""How well a table's vector indexes answer: recall@k of each HNSW or IVFFlat index against
exact search, the index queries' latency, and how many came back short.

Query vectors are sampled from the table itself, in an order fixed by a seed, so a drill
repeats. Each query runs twice in one transaction: through the index (sequential scans off,
so the index is what is measured even on a small table), then exactly (index scans off).
Collections, where the layout has them, filter both queries, as the store's own queries do;
pgvector's iterative scans are set as the store sets them (off unless told).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.pg.catalog import primary_key, regclass_literal, table_identifier

VECTOR_INDEX_METHODS = ("hnsw", "ivfflat")
# pgvector's operator classes, by the distance they order by.
DISTANCE_OPERATORS = {"l2": "<->", "ip": "<#>", "cosine": "<=>", "l1": "<+>", "hamming": "<~>", "jaccard": "<%>"}
ITERATIVE_SCANS = ("off", "relaxed_order", "strict_order")
TIE_TOLERANCE = 1e-6  # relative: the index and the exact scan compute the same distance in float4/float8


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
    With ``live`` (a cursor on the database the set was taken from), each exact query runs there
    too, and the answers that differ are counted."""
    results = []
    key = primary_key(cursor, request.table)
    for index in vector_indexes(cursor, request.table):
        result = IndexRecall(request.table, index.name, index.method, request.k)
        found = expected = 0
        for vector, group in _sample(cursor, request, index, key):
            by_index, seconds = _top_k(cursor, request, index, key, vector, group, exact=False)
            exact, _ = _top_k(cursor, request, index, key, vector, group, exact=True)
            result.queries += 1
            result.latencies_ms.append(seconds * 1000)
            found += _neighbours_found(by_index, exact)
            expected += len(exact)
            result.short_answers += len(by_index) < len(exact)
            if live is not None:
                live_exact, _ = _top_k(live, request, index, key, vector, group, exact=True)
                result.live_queries += 1
                result.live_differences += not same_answers(exact, live_exact)
        result.recall = found / expected if expected else 1.0
        results.append(result)
    return results


def _neighbours_found(by_index: list[tuple], exact: list[tuple]) -> int:
    """The index's answers that are true nearest neighbours: as near as the exact k-th one.
    Rows at the same distance are equally right (a store holding the same chunk twice has ties),
    so an answer counts by its distance, not by which of the tied rows it named."""
    if not exact:
        return 0
    kth = exact[-1][-1]
    tolerance = TIE_TOLERANCE * max(abs(kth), 1.0)
    return min(len(exact), sum(1 for row in by_index if row[-1] <= kth + tolerance))


def same_answers(first: list[tuple], second: list[tuple]) -> bool:
    """Two exact top-k answers agree: the same distances, and the same rows nearer than the k-th
    (rows tied with the k-th are equally right, whichever of them an answer names)."""
    if len(first) != len(second):
        return False
    if not all(abs(a[-1] - b[-1]) <= TIE_TOLERANCE * max(abs(a[-1]), 1.0) for a, b in zip(first, second)):
        return False
    if not first:
        return True
    kth = first[-1][-1] - TIE_TOLERANCE * max(abs(first[-1][-1]), 1.0)
    return {row[:-1] for row in first if row[-1] < kth} == {row[:-1] for row in second if row[-1] < kth}


def _sample(
    cursor: psycopg2.extensions.cursor, request: RecallRequest, index: VectorIndex, key: list[str]
) -> list[tuple[str, object]]:
    """(query vector as text, its collection or None), ``queries`` per collection, in seeded order."""
    group = sql.Identifier(request.collection_column) if request.collection_column else sql.SQL("NULL")
    order = sql.SQL("md5(concat_ws('|', {}, %s))").format(sql.SQL(", ").join(map(sql.Identifier, key)))
    cursor.execute(
        sql.SQL(
            "SELECT v, g FROM (SELECT {column}::text AS v, {group} AS g, "
            "row_number() OVER (PARTITION BY {group} ORDER BY {order}) AS n FROM {table} WHERE {column} IS NOT NULL) s "
            "WHERE n <= %s ORDER BY g, n"
        ).format(column=sql.Identifier(index.column), group=group, order=order, table=table_identifier(request.table)),
        (request.seed, request.queries),
    )
    return cursor.fetchall()


def _top_k(
    cursor: psycopg2.extensions.cursor, request: RecallRequest, index: VectorIndex, key: list[str],
    vector: str, group: object, exact: bool,
) -> tuple[list[tuple], float]:
    scans = ("enable_indexscan", "enable_bitmapscan") if exact else ("enable_seqscan",)
    cursor.execute("SAVEPOINT vector_assets_recall")
    for setting in scans:
        cursor.execute(sql.SQL("SET LOCAL {} = off").format(sql.Identifier(setting)))
    if not exact:
        cursor.execute(sql.SQL("SET LOCAL {} = %s").format(sql.Identifier(f"{index.method}.iterative_scan")),
                       (request.iterative_scan,))
    where, params = sql.SQL(""), {"vector": vector, "k": request.k, "group": group}
    if request.collection_column:
        where = sql.SQL(" WHERE {} = %(group)s").format(sql.Identifier(request.collection_column))
    query = sql.SQL(
        "SELECT {key}, {column} {op} %(vector)s::{type} FROM {table}{where} "
        "ORDER BY {column} {op} %(vector)s::{type} LIMIT %(k)s"
    ).format(
        key=sql.SQL(", ").join(map(sql.Identifier, key)), table=table_identifier(request.table), where=where,
        column=sql.Identifier(index.column), op=sql.SQL(index.operator), type=sql.SQL(index.column_type),
    )
    started = time.perf_counter()
    cursor.execute(query, params)
    rows = cursor.fetchall()
    seconds = time.perf_counter() - started
    cursor.execute("ROLLBACK TO SAVEPOINT vector_assets_recall")
    return rows, seconds
