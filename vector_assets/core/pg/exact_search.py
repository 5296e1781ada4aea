"""Exact nearest neighbours of many query vectors in one streamed pass over a table.

The table's vectors come out of one binary ``COPY``, a fixed number of rows at a time. Every
query's distances to a chunk are matrix products in float64, and a running top k per query is
merged chunk by chunk, so memory holds one chunk and the queries, never the table. Where the
table has collections, a query meets only its own collection's rows, as a filtered query does.

pgvector sums float4 products in float4; the distances here are float64 sums of the same
float4 values, so the two differ by float4 rounding at most (``float4_rounding``). Operators
and types numpy does not cover here (L1, ``sparsevec``, ``bit``) are not ``one_pass_supported``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import psycopg2.extensions
from psycopg2 import sql
from threadpoolctl import threadpool_limits

from vector_assets.core.pg.catalog import table_identifier
from vector_assets.core.pg.row_digests import whole_row_digest

CHUNK_ROWS = 4096  # 4096 x 384 float64 is 12.6 MB, and a chunk is all the pass holds of the table
ONE_PASS_OPERATORS = ("<->", "<#>", "<=>")
# pgvector's binary form (vector_send, halfvec_send): int16 dimension, int16 unused, then the
# elements big-endian, float4 for vector and IEEE half for halfvec.
ELEMENT_TYPES = {"vector": np.dtype(">f4"), "halfvec": np.dtype(">f2")}
VECTOR_HEADER_BYTES = 4
FLOAT4_UNIT_ROUNDOFF = 2.0**-24
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
COPY_HEADER = struct.Struct(">11sii")
FIELD_COUNT = struct.Struct(">h")
FIELD_LENGTH = struct.Struct(">i")


@dataclass(frozen=True)
class RowIdentity:
    """How an answer names its rows: by the primary key's columns, or in a table without one
    (``key`` empty) by a digest of the whole row. A row unchanged since its set was taken has the
    same digest in the restored table and in the live one, wherever either holds it; its ctid,
    the only other name it has, is wherever a load happened to put it."""

    key: tuple[str, ...] = ()

    def fields(self, cursor: psycopg2.extensions.cursor, table: str) -> list[sql.Composable]:
        """The row's name as text fields, for rows of ``table`` aliased ``t``."""
        if self.key:
            return [sql.SQL("{}::text").format(sql.Identifier("t", name)) for name in self.key]
        return [sql.SQL("{}::text").format(whole_row_digest(cursor, table))]


@dataclass(frozen=True)
class ExactQuery:
    vector: np.ndarray  # float64, the float4 (or half) values pgvector holds
    group: str | None = None  # its collection as text; None with collections matches no row


@dataclass
class ExactPass:
    """The exact answers, one per query: (the row's identity fields as text..., distance), nearest first."""

    answers: list[list[tuple]]
    rows: int = 0  # rows with a vector read from the table
    chunks: int = 0
    largest_chunk: int = 0  # the most rows decoded at once
    largest_norm: float = 0.0  # of any row's vector, for the inner product's rounding bound


def one_pass_supported(column_type: str, operator: str) -> bool:
    """``vector`` and ``halfvec`` with L2, inner product or cosine distance."""
    return element_type(column_type) is not None and operator in ONE_PASS_OPERATORS


def element_type(column_type: str) -> np.dtype | None:
    base = column_type.split("(", 1)[0].rsplit(".", 1)[-1].strip('"')  # extensions.vector(384) -> vector
    return ELEMENT_TYPES.get(base)


def query_vector(text: str) -> np.ndarray:
    """A vector's text form as float64 holding its float4 values (the text is float4's shortest
    round-trip form, for halfvec too)."""
    return np.array(text.strip("[]").split(","), dtype=np.float64).astype(np.float32).astype(np.float64)


def float4_rounding(operator: str, dims: int, distance: float, query_norm: float, largest_norm: float) -> float:
    """How far pgvector's float4 distance can be from the float64 one, at most.

    pgvector multiplies float4s and sums them one after another in float4: each of the
    ``dims`` terms gathers at most (dims + 1) unit roundoffs relative to the sum of the terms'
    magnitudes (the bound of a recursive sum); the subtraction before an L2 square adds two.
    L2's terms are all positive, so the bound is relative to the distance itself; the inner
    product's is relative to |q| |r| (Cauchy-Schwarz); cosine's similarity is a ratio of three
    such sums, each normalised, so its bound is absolute."""
    relative = (dims + 3) * FLOAT4_UNIT_ROUNDOFF
    if operator == "<->":
        return relative * abs(distance)
    if operator == "<#>":
        return relative * query_norm * largest_norm
    return 3 * relative


def exact_answers(
    cursor: psycopg2.extensions.cursor,
    table: str,
    column: str,
    column_type: str,
    operator: str,
    identity: RowIdentity,
    queries: Sequence[ExactQuery],
    k: int,
    collection_column: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ExactPass | None:
    """Every query's exact top k in one pass over the table; None when a row's vector has
    another dimension than the queries' (pgvector refuses to compare those: the caller asks
    per query instead, and sees what the server says)."""
    if not one_pass_supported(column_type, operator) or k < 1:
        raise ValueError(f"{column_type} {operator} is not searched in one pass")
    if not queries:
        return ExactPass(answers=[])
    dims = {len(query.vector) for query in queries}
    if len(dims) > 1:
        return None
    encoding = psycopg2.extensions.encodings[cursor.connection.encoding]
    search = _RunningSearch(queries, k, operator, dims.pop(), element_type(column_type), encoding,
                            collections=collection_column is not None)
    group = sql.Identifier(collection_column) if collection_column else sql.SQL("NULL")
    selected = [*identity.fields(cursor, table), sql.SQL("{}::text").format(group), sql.Identifier(column)]
    reader = _CopyTuples(fields=len(selected), chunk_rows=chunk_rows, on_chunk=search.add_chunk)
    statement = sql.SQL(
        "COPY (SELECT {selected} FROM {table} AS t WHERE {column} IS NOT NULL) TO STDOUT (FORMAT binary)"
    ).format(
        selected=sql.SQL(", ").join(selected), table=table_identifier(table), column=sql.Identifier(column),
    )
    # One BLAS thread: a chunk's products are small, and OpenBLAS's idle threads spin between
    # them, taking the CPU the server's COPY and the parsing need (the pass took 3x as long with
    # two threads on a loaded 2-core machine).
    with threadpool_limits(limits=1, user_api="blas"):
        cursor.copy_expert(statement, reader)
        reader.finish()
    if search.other_dimension:
        return None
    return ExactPass(
        answers=search.answers(), rows=search.rows, chunks=search.chunks,
        largest_chunk=search.largest_chunk, largest_norm=search.largest_norm,
    )


class _CopyTuples:
    """The file ``copy_expert`` writes a binary COPY into: tuples parsed as they arrive (each a
    list of its fields' bytes, None for NULL), handed on ``chunk_rows`` at a time; at most one
    chunk and one partial tuple are held."""

    def __init__(self, fields: int, chunk_rows: int, on_chunk: Callable[[list[list]], None]) -> None:
        if chunk_rows < 1:
            raise ValueError("a chunk holds at least one row")
        self._fields, self._chunk_rows, self._on_chunk = fields, chunk_rows, on_chunk
        self._pending = b""
        self._header_read = False
        self._rows: list[list] = []

    def write(self, data: bytes) -> int:
        written = len(data)
        if self._pending:
            data = self._pending + data
        end = self._parse(data)
        self._pending = data[end:]
        return written

    def finish(self) -> None:
        if self._pending:
            raise ValueError(f"the binary COPY ended inside a tuple ({len(self._pending)} bytes left)")
        if self._rows:
            self._hand_on()

    def _parse(self, data: bytes) -> int:
        """Where the complete tuples in ``data`` end. One loop, locals only: it runs once a row."""
        position = 0 if self._header_read else self._header_end(data)
        if position is None:
            return 0
        size, fields, rows = len(data), self._fields, self._rows
        count_at, length_at = FIELD_COUNT.unpack_from, FIELD_LENGTH.unpack_from
        while position + 2 <= size:
            start = position
            (count,) = count_at(data, position)
            position += 2
            if count == -1:  # the trailer
                continue
            if count != fields:
                raise ValueError(f"a binary COPY tuple of {count} fields, expected {fields}")
            values = []
            for _ in range(fields):
                if position + 4 > size:
                    return start
                (length,) = length_at(data, position)
                position += 4
                if length < 0:
                    values.append(None)
                    continue
                if position + length > size:
                    return start
                values.append(data[position : position + length])
                position += length
            rows.append(values)
            if len(rows) >= self._chunk_rows:
                self._hand_on()
                rows = self._rows
        return position

    def _header_end(self, data: bytes) -> int | None:
        if len(data) < COPY_HEADER.size:
            return None
        signature, _flags, extension = COPY_HEADER.unpack_from(data)
        if signature != COPY_SIGNATURE:
            raise ValueError("not a binary COPY stream")
        self._header_read = True
        return COPY_HEADER.size + extension

    def _hand_on(self) -> None:
        rows, self._rows = self._rows, []
        self._on_chunk(rows)


class _RunningSearch:
    """Each query's nearest rows so far: distances (float64) and the rows' identities, per group
    of queries that share a collection."""

    def __init__(
        self, queries: Sequence[ExactQuery], k: int, operator: str, dims: int, element: np.dtype, encoding: str,
        collections: bool,
    ) -> None:
        self._k, self._operator, self._dims, self._element = k, operator, dims, element
        self._encoding, self._collections = encoding, collections
        self._count = len(queries)
        members: dict[bytes | None, list[int]] = {}
        for position, query in enumerate(queries):
            group = query.group.encode(encoding) if collections and query.group is not None else None
            members.setdefault(group, []).append(position)
        self._groups = {group: np.array(positions) for group, positions in members.items()}
        matrix = np.array([query.vector for query in queries]).reshape(len(queries), dims)
        self._queries = matrix
        self._query_norms = np.einsum("ij,ij->i", matrix, matrix)  # squared
        self._distances = {group: np.empty((len(p), 0)) for group, p in self._groups.items()}
        self._keys: dict[bytes | None, list[list]] = {group: [[] for _ in p] for group, p in self._groups.items()}
        self.rows = self.chunks = self.largest_chunk = 0
        self.largest_norm = 0.0
        self.other_dimension = False

    def add_chunk(self, rows: list[list]) -> None:
        """One chunk of (identity fields..., collection, vector) rows, as bytes."""
        self.rows += len(rows)
        self.chunks += 1
        self.largest_chunk = max(self.largest_chunk, len(rows))
        if self.other_dimension:
            return
        vectors = self._decode([row[-1] for row in rows])
        if vectors is None:
            self.other_dimension = True
            return
        row_norms = np.einsum("ij,ij->i", vectors, vectors)  # squared
        self.largest_norm = max(self.largest_norm, float(np.sqrt(row_norms.max(initial=0.0))))
        for group, members in self._rows_by_group([row[-2] for row in rows]).items():
            self._merge(group, vectors[members], row_norms[members], [rows[member] for member in members])

    def _decode(self, vectors: list[bytes]) -> np.ndarray | None:
        width = VECTOR_HEADER_BYTES + self._dims * self._element.itemsize
        if set(map(len, vectors)) != {width}:
            return None
        joined = b"".join(vectors)
        headers = np.ndarray((len(vectors),), dtype=">i2", buffer=joined, strides=(width,))
        if (headers != self._dims).any():
            return None
        values = np.ndarray((len(vectors), self._dims), dtype=self._element, buffer=joined,
                            offset=VECTOR_HEADER_BYTES, strides=(width, self._element.itemsize))
        return values.astype(np.float64)

    def _rows_by_group(self, groups: list[bytes | None]) -> dict[bytes | None, np.ndarray]:
        if not self._collections:
            return {None: np.arange(len(groups))}
        codes: dict[bytes, list[int]] = {}
        for row, group in enumerate(groups):
            if group is not None and group in self._groups:  # a NULL collection matches no query
                codes.setdefault(group, []).append(row)
        return {group: np.array(rows) for group, rows in codes.items()}

    def _merge(self, group: bytes | None, vectors: np.ndarray, row_norms: np.ndarray, rows: list[list]) -> None:
        members = self._groups[group]
        queries = self._queries[members]
        nearest = min(self._k, len(vectors))
        ranking = self._ranking(queries, self._query_norms[members], vectors, row_norms)
        candidates = np.argpartition(ranking, nearest - 1, axis=1)[:, :nearest]
        distances = np.concatenate([self._distances[group], self._distances_of(queries, vectors[candidates])], axis=1)
        kept = np.argsort(distances, axis=1, kind="stable")[:, : self._k]
        self._distances[group] = np.take_along_axis(distances, kept, axis=1)
        running = self._keys[group]
        for position, (order, candidates_of_query) in enumerate(zip(kept, candidates)):
            merged = running[position] + [tuple(rows[candidate][:-2]) for candidate in candidates_of_query]
            running[position] = [merged[index] for index in order]

    def _ranking(
        self, queries: np.ndarray, query_norms: np.ndarray, vectors: np.ndarray, row_norms: np.ndarray
    ) -> np.ndarray:
        """A quantity that orders the rows as the distance does, by one matrix product; the
        candidates' distances are then computed term by term (no cancellation near zero)."""
        products = queries @ vectors.T
        if self._operator == "<->":
            return query_norms[:, None] + row_norms[None, :] - 2 * products  # squared L2
        if self._operator == "<#>":
            return -products
        with np.errstate(divide="ignore", invalid="ignore"):
            return -products / np.sqrt(np.outer(query_norms, row_norms))  # NaN for a zero vector, sorted last

    def _distances_of(self, queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """pgvector's distance, in float64, of each query to its candidate rows."""
        if self._operator == "<->":
            difference = candidates - queries[:, None, :]
            return np.sqrt(np.einsum("qcd,qcd->qc", difference, difference))
        products = np.einsum("qcd,qd->qc", candidates, queries)
        if self._operator == "<#>":
            return -products
        norms = np.einsum("qd,qd->q", queries, queries)[:, None] * np.einsum("qcd,qcd->qc", candidates, candidates)
        with np.errstate(divide="ignore", invalid="ignore"):
            similarity = np.clip(products / np.sqrt(norms), -1.0, 1.0)
        return 1.0 - similarity

    def answers(self) -> list[list[tuple]]:
        found: list[list[tuple]] = [[] for _ in range(self._count)]
        for group, members in self._groups.items():
            for position, query in enumerate(members):
                found[query] = [
                    (*(None if part is None else part.decode(self._encoding) for part in key), float(distance))
                    for key, distance in zip(self._keys[group][position], self._distances[group][position])
                ]
        return found
