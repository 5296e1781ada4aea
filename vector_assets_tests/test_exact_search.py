"""The drill's exact answers in one streamed pass: the same neighbours as one exact SQL query
per sampled vector, across chunk boundaries, in flat memory; on a real PostgreSQL with pgvector."""

from __future__ import annotations

import tracemalloc

import psycopg2
import pytest

from vector_assets.core.pg.exact_search import ExactQuery, RowIdentity, exact_answers, query_vector
from vector_assets.core.pg.search_quality import (
    RecallRequest,
    VectorIndex,
    _sample,
    exact_search,
    measure_recall,
    same_answers,
    vector_indexes,
)
from vector_assets_tests.support.database import execute

DIMS = 24
ID = RowIdentity(("id",))
OPERATOR_CLASSES = {"l2": "l2_ops", "cosine": "cosine_ops", "ip": "ip_ops"}


def make_table(dsn: str, column_type: str, distance: str) -> None:
    """500 rows in three collections, 120 of them repeating another row's vector in its
    collection (ties at every distance), and rows without a vector or without a collection."""
    execute(dsn, f"""
        CREATE TABLE items (id bigint PRIMARY KEY, collection text, embedding {column_type}({DIMS}));
        SELECT setseed(0.29);
        INSERT INTO items
        SELECT n, 'c' || (n % 3),
               (SELECT array_agg(round((random() * 2 - 1)::numeric, 3)::real) FROM generate_series(1, {DIMS}) WHERE n > 0)::vector::{column_type}
        FROM generate_series(1, 380) n;
        INSERT INTO items SELECT 1000 + id, collection, embedding FROM items WHERE id <= 120;
        INSERT INTO items VALUES (2001, 'c1', NULL), (2002, NULL, (SELECT embedding FROM items WHERE id = 1));
        CREATE INDEX items_embedding ON items USING hnsw (embedding {column_type}_{OPERATOR_CLASSES[distance]});
    """)


def exact_both_ways(dsn: str, request: RecallRequest) -> tuple:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
        (index,) = vector_indexes(cursor, request.table)
        samples = _sample(cursor, request, index, ID)
        one_pass = exact_search(cursor, request, index, ID, samples)
        by_query = exact_search(cursor, request, index, ID, samples, one_pass=False)
    return samples, one_pass, by_query


@pytest.mark.parametrize("column_type", ["vector", "halfvec"])
@pytest.mark.parametrize("distance", ["l2", "cosine", "ip"])
def test_one_pass_finds_the_neighbours_one_exact_query_each_finds(empty_db, column_type, distance):
    make_table(empty_db, column_type, distance)
    request = RecallRequest("items", queries=12, k=10, collection_column="collection")
    samples, one_pass, by_query = exact_both_ways(empty_db, request)

    # 12 per collection, and the one row without a collection, whose filtered query finds nothing
    assert [group for _, group in samples].count(None) == 1 and len(samples) == 37
    strictly_nearer = 0
    for (_, group), found, expected, tolerance in zip(samples, one_pass.answers, by_query.answers, one_pass.tolerances):
        assert len(found) == len(expected) == (0 if group is None else 10)
        if group is None:
            continue
        assert all(abs(a[-1] - b[-1]) <= tolerance for a, b in zip(found, expected)), (found, expected)
        # Rows tied with the k-th (a repeated vector) are equally right; the nearer ones are the same rows.
        boundary = expected[-1][-1] - tolerance
        nearer = {row[:-1] for row in expected if row[-1] < boundary}
        assert {row[:-1] for row in found if row[-1] < boundary} == nearer
        strictly_nearer += len(nearer)
    assert strictly_nearer > 36 * 5  # the comparison is not carried by ties alone
    assert any(answer[0][-1] == answer[1][-1] for answer in one_pass.answers)  # the repeats tie


def test_the_float4_rounding_bound_is_tight_enough_to_tell_neighbours_apart(empty_db):
    make_table(empty_db, "vector", "l2")
    _, one_pass, by_query = exact_both_ways(empty_db, RecallRequest("items", queries=12, collection_column="collection"))
    gaps = [b[-1] - a[-1] for answer in by_query.answers for a, b in zip(answer, answer[1:]) if b[-1] > a[-1]]
    assert max(one_pass.tolerances) < min(gaps) / 10


def test_a_query_without_collections_meets_every_row_and_a_null_collection_none(empty_db):
    make_table(empty_db, "vector", "l2")
    whole, _, by_query = exact_both_ways(empty_db, RecallRequest("items", queries=5))
    assert {group for _, group in whole} == {None}
    with psycopg2.connect(empty_db) as conn, conn.cursor() as cursor:
        vector = cursor.execute("SELECT embedding::text FROM items WHERE id = 1") or cursor.fetchone()[0]
        queries = [ExactQuery(query_vector(vector), None)]
        filtered = exact_answers(cursor, "items", "embedding", "vector(24)", "<->", ID, queries, 5, "collection")
        unfiltered = exact_answers(cursor, "items", "embedding", "vector(24)", "<->", ID, queries, 5)
    assert filtered.answers == [[]]  # as `collection = NULL` finds no row
    assert {row[0] for row in unfiltered.answers[0][:3]} == {"1", "1001", "2002"}  # the row, its repeat, the uncollected one
    assert unfiltered.rows == 501  # every row with a vector, none without


def test_a_chunk_boundary_inside_the_table_gives_the_same_answers(empty_db):
    make_table(empty_db, "vector", "cosine")
    request = RecallRequest("items", queries=10, collection_column="collection")
    small = RecallRequest("items", queries=10, collection_column="collection", chunk_rows=7)
    samples, whole, _ = exact_both_ways(empty_db, request)
    with psycopg2.connect(empty_db) as conn, conn.cursor() as cursor:
        (index,) = vector_indexes(cursor, "items")
        chunked = exact_search(cursor, small, index, ID, samples)
        queries = [ExactQuery(query_vector(vector), group) for vector, group in samples]
        passed = exact_answers(cursor, "items", "embedding", "vector(24)", "<=>", ID, queries, 10, "collection", 7)
    assert all(same_answers(a, b) for a, b in zip(whole.answers, chunked.answers))
    assert passed.chunks == -(-501 // 7) and passed.largest_chunk == 7


def test_the_pass_holds_a_chunk_of_the_table_never_the_table(empty_db):
    execute(empty_db, """
        CREATE TABLE wide (id bigint PRIMARY KEY, embedding vector(128));
        SELECT setseed(0.5);
        INSERT INTO wide SELECT n, (SELECT array_agg(random()::real) FROM generate_series(1, 128) WHERE n > 0)::vector
        FROM generate_series(1, 20000) n;
    """)
    table_bytes = 20000 * 128 * 8  # the vectors as the float64 the distances are computed in
    with psycopg2.connect(empty_db) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT embedding::text FROM wide ORDER BY id LIMIT 20")
        queries = [ExactQuery(query_vector(vector)) for (vector,) in cursor.fetchall()]

        def peak(chunk_rows: int) -> tuple[int, object]:
            tracemalloc.start()
            try:
                found = exact_answers(cursor, "wide", "embedding", "vector(128)", "<->", ID, queries, 10,
                                      chunk_rows=chunk_rows)
                return tracemalloc.get_traced_memory()[1], found
            finally:
                tracemalloc.stop()

        chunked_peak, chunked = peak(512)
        whole_peak, whole = peak(20000)
    assert chunked.largest_chunk == 512 and chunked.rows == 20000
    assert chunked_peak < table_bytes / 8 < whole_peak, (chunked_peak, whole_peak)
    assert all(same_answers(a, b) for a, b in zip(chunked.answers, whole.answers))
    assert [answer[0][0] for answer in chunked.answers] == [str(n) for n in range(1, 21)]  # each query finds its row


def test_a_neighbour_moved_by_a_millionth_changes_the_exact_answer_it_is_in(empty_db):
    """The live comparison holds both exact answers to float64 rounding: a vector nudged far
    less than pgvector's own float4 rounding of a distance still reads as a change."""
    make_table(empty_db, "vector", "l2")
    with psycopg2.connect(empty_db) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT embedding::text FROM items WHERE id = 5")
        queries = [ExactQuery(query_vector(cursor.fetchone()[0]), "c2")]

        def answer() -> list[tuple]:
            (found,) = exact_answers(cursor, "items", "embedding", "vector(24)", "<->", ID, queries, 10, "collection").answers
            return found

        before = answer()
        neighbour = before[3][0]
        cursor.execute("UPDATE items SET embedding = (SELECT array_agg(CASE WHEN n = 1 THEN x + 1e-6 ELSE x END ORDER BY n) "
                       "FROM unnest(embedding::real[]) WITH ORDINALITY AS e(x, n))::vector WHERE id = %s", (int(neighbour),))
        after = answer()
        cursor.execute("SELECT id::text FROM items WHERE collection = 'c2' AND id <> %s ORDER BY id LIMIT 1", (int(neighbour),))
        (other,) = cursor.fetchone()
        conn.rollback()
    moved = {row[0]: row[-1] for row in before}[neighbour] - {row[0]: row[-1] for row in after}[neighbour]
    assert 0 < abs(moved) < 1e-6 * before[3][-1]  # below what the former 1e-6 tolerance could see
    assert not same_answers(before, after)
    assert same_answers(before, answer_with_row_renamed(before, neighbour, neighbour))
    assert not same_answers(before, answer_with_row_renamed(before, neighbour, other))


def answer_with_row_renamed(answer: list[tuple], old: str, new: str) -> list[tuple]:
    return [(new, *row[1:]) if row[0] == old else row for row in answer]


def test_vectors_of_two_dimensions_are_searched_one_query_each(empty_db):
    """pgvector compares vectors of one dimension only: a column without a declared dimension
    whose collections differ in it is left to per-query SQL, which filters first."""
    execute(empty_db, """
        CREATE TABLE mixed (id bigint PRIMARY KEY, collection text, embedding vector);
        SELECT setseed(0.7);
        INSERT INTO mixed SELECT n, 'c' || (n % 2),
            (SELECT array_agg(random()::real) FROM generate_series(1, 8 + 8 * (n % 2)) WHERE n > 0)::vector
        FROM generate_series(1, 200) n;
    """)
    index = VectorIndex("mixed_by_hand", "hnsw", "embedding", "vector", "<->")
    request = RecallRequest("mixed", queries=5, collection_column="collection")
    with psycopg2.connect(empty_db) as conn, conn.cursor() as cursor:
        samples = _sample(cursor, request, index, ID)
        queries = [ExactQuery(query_vector(vector), group) for vector, group in samples]
        one_pass = exact_answers(cursor, "mixed", "embedding", "vector", "<->", ID, queries, 10, "collection")
        found = exact_search(cursor, request, index, ID, samples)
        by_query = exact_search(cursor, request, index, ID, samples, one_pass=False)
    assert one_pass is None and {len(query.vector) for query in queries} == {8, 16}
    assert found == by_query and all(len(answer) == 10 for answer in found.answers)


def test_an_l1_index_keeps_one_exact_query_each_and_drills(empty_db):
    make_table(empty_db, "vector", "l2")
    execute(empty_db, "DROP INDEX items_embedding; CREATE INDEX items_l1 ON items USING hnsw (embedding vector_l1_ops)")
    with psycopg2.connect(empty_db) as conn, conn.cursor() as cursor:
        (measured,) = measure_recall(cursor, RecallRequest("items", queries=10, collection_column="collection"))
        conn.rollback()
    assert (measured.index, measured.queries) == ("items_l1", 31) and measured.recall >= 0.9, measured.describe()
