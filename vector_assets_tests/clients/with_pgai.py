"""A store made by pgai 0.12.1's vectorizer: ``pgai install`` puts its catalog (schema ``ai``)
into the database, ``ai.create_vectorizer`` on a source table ``blog`` makes the embedding store
``blog_embedding_store`` beside it, the view ``blog_embedding`` joining the two, a queue, and
triggers on the source that queue every change.

No embedding API is reachable, so this plays pgai's worker: it takes the queued rows, cuts each
document into chunks, writes their embeddings (the hash embedding) into the store, and empties
the queue, as the worker does. It adds an HNSW index on the embeddings, as an operator does
(the vectorizer's default indexing makes none for a store this small).
"""

from __future__ import annotations

import pgai
import psycopg
from psycopg import sql

from corpus import DIMENSIONS, KEYWORD_MATCHES, TOP_K, Document, documents, embed, questions, ranked
from engines import EXACT_SETTINGS, connect_args, url

SOURCE = "blog"
STORE = f"{SOURCE}_embedding_store"
CHUNK_WORDS = 6  # short chunks, so a document has several (chunk_seq 0, 1, ...)
CHUNK_CHARACTERS = 40  # what the vectorizer is told; the worker's splitter cuts about as often
ADDED = 12
ADDED_LATER_FROM = 1000  # where add() numbers its documents, past those change() adds
CHANGED = range(0, 60, 10)
DELETED = range(5, 95, 10)


def connect(*, exact: bool = False) -> psycopg.Connection:
    link = url("psycopg").set(drivername="postgresql").render_as_string(hide_password=False)
    return psycopg.connect(link, autocommit=True, **connect_args("psycopg", exact))


def make() -> dict:
    pgai.install(url("psycopg").set(drivername="postgresql").render_as_string(hide_password=False))
    with connect() as conn:
        conn.execute(
            f"CREATE TABLE {SOURCE} (id serial PRIMARY KEY, title text NOT NULL, category text NOT NULL, "
            "contents text NOT NULL)"
        )
        insert(conn, documents())
        conn.execute(
            f"SELECT ai.create_vectorizer('{SOURCE}'::regclass, "
            "loading => ai.loading_column('contents'), "
            f"embedding => ai.embedding_openai('text-embedding-3-small', {DIMENSIONS}), "
            f"chunking => ai.chunking_recursive_character_text_splitter({CHUNK_CHARACTERS}, 0))"
        )
        embed_queued(conn)
        conn.execute(f"CREATE INDEX {STORE}_embedding_idx ON {STORE} USING hnsw (embedding vector_cosine_ops)")
    return {"table": STORE, "documents": len(documents())}


def insert(conn: psycopg.Connection, docs: list[Document]) -> None:
    with conn.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {SOURCE} (title, category, contents) VALUES (%s, %s, %s)",
            [(doc.key, doc.category, doc.text) for doc in docs],
        )


def embed_queued(conn: psycopg.Connection) -> int:
    """What pgai's worker does with the queue, with the hash embedding for the API."""
    (queue,) = conn.execute(
        "SELECT format('%%I.%%I', queue_schema, queue_table) FROM ai.vectorizer WHERE source_table = %s", (SOURCE,)
    ).fetchone()
    with conn.transaction():
        queued = [row[0] for row in conn.execute(sql.SQL("DELETE FROM {} RETURNING id").format(sql.SQL(queue)))]
        rows = conn.execute(f"SELECT id, contents FROM {SOURCE} WHERE id = ANY(%s)", (queued,)).fetchall()
        conn.execute(f"DELETE FROM {STORE} WHERE id = ANY(%s)", (queued,))
        with conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {STORE} (id, chunk_seq, chunk, embedding) VALUES (%s, %s, %s, %s::vector)",
                [(key, seq, chunk, str(embed(chunk))) for key, text in rows for seq, chunk in enumerate(chunks(text))],
            )
    return len(rows)


def chunks(text: str) -> list[str]:
    words = text.split(" ")
    return [" ".join(words[start:start + CHUNK_WORDS]) for start in range(0, len(words), CHUNK_WORDS)]


def add() -> dict:
    """New documents into the source table alone: where the vectorizer is not set up (a database
    the tables were restored into), pgai has nothing to queue them in."""
    with connect() as conn:
        insert(conn, documents(ADDED, start=ADDED_LATER_FROM))
    return {"added": ADDED}


def change() -> dict:
    docs = documents()
    with connect() as conn:
        insert(conn, documents(ADDED, start=len(docs)))
        for n in CHANGED:
            conn.execute(f"UPDATE {SOURCE} SET contents = contents || ' Revised.' WHERE title = %s", (docs[n].key,))
        conn.execute(f"DELETE FROM {SOURCE} WHERE title = ANY(%s)", ([docs[n].key for n in DELETED],))
        embed_queued(conn)
    return {"added": ADDED, "changed": len(CHANGED), "deleted": len(DELETED)}


def answer() -> list:
    """Each question's nearest chunks (source title, chunk_seq, distance) by the join pgai's view
    ``blog_embedding`` is made of (a database the tables were restored into has no view until
    the vectorizer is set up there again), with index scans off. Chunks of boilerplate are stored
    many times over at one distance, so the query orders ties by title and chunk: which of them
    fill the last places is then the same however the rows lie on disk."""
    answers = []
    with connect(exact=True) as conn:
        found = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in EXACT_SETTINGS}
        if found != EXACT_SETTINGS:
            raise RuntimeError(f"index scans are not off on the client's connection: {found}")
        for question in questions():
            where = "WHERE s.category = %(category)s" if question.category else ""
            hits = conn.execute(
                f"SELECT s.title || '#' || t.chunk_seq, t.embedding <=> %(query)s::vector AS distance "
                f"FROM {STORE} t LEFT JOIN {SOURCE} s ON t.id = s.id {where} "
                "ORDER BY distance, s.title, t.chunk_seq, t.embedding_uuid LIMIT %(k)s",
                {"query": str(embed(question.text)), "category": question.category,
                 "k": TOP_K + (KEYWORD_MATCHES if question.keyword else 0)},
            ).fetchall()
            answers.append(ranked([(key, float(distance)) for key, distance in hits]))
    return answers
