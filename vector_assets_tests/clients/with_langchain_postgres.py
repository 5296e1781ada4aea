"""A store made, changed and asked by langchain-postgres 0.0.19's ``PGVectorStore``, as its
documentation sets one up: ``PGEngine.init_vectorstore_table`` with metadata columns and the
hybrid-search column, ``add_texts``, ``apply_vector_index`` (HNSW) and
``apply_hybrid_search_index`` (GIN)."""

from __future__ import annotations

from langchain_core.embeddings import Embeddings
from langchain_postgres import Column, PGEngine, PGVectorStore
from langchain_postgres.v2.hybrid_search_config import HybridSearchConfig
from langchain_postgres.v2.indexes import HNSWIndex

from corpus import DIMENSIONS, KEYWORD_MATCHES, TOP_K, Document, documents, embed, questions, ranked
from engines import connect_args, require_exact, sync_engine, url

TABLE = "product_docs"
METADATA_COLUMNS = ["category", "year"]
ADDED = 12  # documents a change adds, and add() too
ADDED_LATER_FROM = 1000  # where add() numbers its documents, past those change() adds
CHANGED = range(0, 60, 10)  # documents a change rewrites (an upsert under the same id)
DELETED = range(5, 95, 10)  # documents a change deletes


class HashEmbeddings(Embeddings):
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [embed(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return embed(text)


def hybrid_config() -> HybridSearchConfig:
    return HybridSearchConfig(tsv_column="content_tsv", primary_top_k=TOP_K, secondary_top_k=KEYWORD_MATCHES)


def new_engine(*, exact: bool = False) -> PGEngine:
    """Through from_connection_string, which runs the client's event loop for its sync methods."""
    return PGEngine.from_connection_string(url("psycopg"), connect_args=connect_args("psycopg", exact))


def open_store(*, exact: bool = False) -> tuple[PGEngine, PGVectorStore]:
    engine = new_engine(exact=exact)
    store = PGVectorStore.create_sync(
        engine, HashEmbeddings(), TABLE, metadata_columns=METADATA_COLUMNS, hybrid_search_config=hybrid_config()
    )
    return engine, store


def add_documents(store: PGVectorStore, docs: list[Document]) -> None:
    store.add_texts(
        [doc.text for doc in docs],
        metadatas=[{"category": doc.category, "year": doc.year, "source": doc.source, "parent": doc.parent,
                    "tags": [doc.source, doc.category]} for doc in docs],
        ids=[doc.key for doc in docs],
    )


def make() -> dict:
    engine = new_engine()
    engine.init_vectorstore_table(
        TABLE, DIMENSIONS,
        metadata_columns=[Column("category", "TEXT", nullable=False), Column("year", "INTEGER")],
        hybrid_search_config=hybrid_config(),
    )
    _, store = open_store()
    docs = documents()
    add_documents(store, docs)
    store.apply_vector_index(HNSWIndex())
    store.apply_hybrid_search_index()
    return {"table": TABLE, "documents": len(docs)}


def add() -> dict:
    _, store = open_store()
    add_documents(store, documents(ADDED, start=ADDED_LATER_FROM))
    return {"added": ADDED}


def change() -> dict:
    """Through the client: new documents, rewritten ones (upserted under their ids), deleted ones."""
    _, store = open_store()
    docs = documents()
    add_documents(store, documents(ADDED, start=len(docs)))
    rewritten = [Document(**{**docs[n].__dict__, "text": docs[n].text + " Revised."}) for n in CHANGED]
    add_documents(store, rewritten)
    store.delete([docs[n].key for n in DELETED])
    return {"added": ADDED, "changed": len(rewritten), "deleted": len(DELETED)}


def answer() -> list:
    """Each question's hits (id, distance), from a client started fresh with index scans off. A
    question with a keyword is a hybrid search: exact search fused with the tsvector column's."""
    _, store = open_store(exact=True)
    answers = []
    for question in questions():
        search_filter = {"category": question.category} if question.category else None
        if question.keyword:
            hits = store.similarity_search_with_score_by_vector(
                embed(question.text), k=TOP_K + KEYWORD_MATCHES, filter=search_filter, fts_query=question.keyword
            )
        else:
            hybrid_off = HybridSearchConfig(tsv_column="content_tsv", primary_top_k=TOP_K)
            hits = store.similarity_search_with_score_by_vector(
                embed(question.text), k=TOP_K, filter=search_filter, hybrid_search_config=hybrid_off
            )
        answers.append(ranked([(doc.id, float(score)) for doc, score in hits]))
    require_exact(sync_engine("psycopg", exact=True))  # the same driver and connect options, synchronously
    return answers
