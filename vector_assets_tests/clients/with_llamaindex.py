"""A store made, changed and asked by llama-index-vector-stores-postgres 0.9.0's
``PGVectorStore`` with ``hybrid_search=True`` (a GENERATED ``text_search_tsv`` column and its GIN
index) and an HNSW index from ``hnsw_kwargs``. Its table is ``data_<table_name>``, keyed by a
sequence-backed BIGINT."""

from __future__ import annotations

from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)
from llama_index.vector_stores.postgres import PGVectorStore

from corpus import DIMENSIONS, KEYWORD_MATCHES, TOP_K, Document, documents, embed, questions, ranked
from engines import async_engine, require_exact, sync_engine

NAME = "support"
TABLE = f"data_{NAME}"
HNSW = {"hnsw_m": 16, "hnsw_ef_construction": 64, "hnsw_ef_search": 40, "hnsw_dist_method": "vector_cosine_ops"}
ADDED = 12
ADDED_LATER_FROM = 1000  # where add() numbers its documents, past those change() adds
CHANGED = range(0, 60, 10)  # rewritten: LlamaIndex has no upsert, so deleted and added again (new ids)
DELETED = range(5, 95, 10)


def open_store(*, exact: bool = False) -> PGVectorStore:
    return PGVectorStore(
        table_name=NAME, embed_dim=DIMENSIONS, hybrid_search=True, text_search_config="english",
        hnsw_kwargs=dict(HNSW), initialization_fail_on_error=True,
        engine=sync_engine("psycopg2", exact=exact), async_engine=async_engine("asyncpg", exact=exact),
    )


def node(doc: Document) -> TextNode:
    return TextNode(
        id_=doc.key, text=doc.text, embedding=embed(doc.text),
        metadata={"category": doc.category, "year": doc.year, "source": doc.source},
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc.parent)},
    )


def make() -> dict:
    docs = documents()
    open_store().add([node(doc) for doc in docs])
    return {"table": TABLE, "documents": len(docs)}


def add() -> dict:
    """New nodes: their ids come from the table's sequence."""
    open_store().add([node(doc) for doc in documents(ADDED, start=ADDED_LATER_FROM)])
    return {"added": ADDED}


def change() -> dict:
    store = open_store()
    docs = documents()
    store.add([node(doc) for doc in documents(ADDED, start=len(docs))])
    rewritten = [Document(**{**docs[n].__dict__, "text": docs[n].text + " Revised."}) for n in CHANGED]
    store.delete_nodes(node_ids=[doc.key for doc in rewritten] + [docs[n].key for n in DELETED])
    store.add([node(doc) for doc in rewritten])
    return {"added": ADDED, "changed": len(rewritten), "deleted": len(DELETED)}


def answer() -> list:
    """Each question's hits (node id, similarity), from a client started fresh with index scans
    off. A question with a keyword is a hybrid search, whose keyword half reads the generated
    tsvector column."""
    store = open_store(exact=True)
    answers = []
    for question in questions():
        filters = (MetadataFilters(filters=[MetadataFilter(key="category", value=question.category)])
                   if question.category else None)
        query = VectorStoreQuery(
            query_embedding=embed(question.text), similarity_top_k=TOP_K, filters=filters,
            mode=VectorStoreQueryMode.HYBRID if question.keyword else VectorStoreQueryMode.DEFAULT,
            query_str=question.keyword, sparse_top_k=KEYWORD_MATCHES,
        )
        result = store.query(query)
        answers.append(ranked(list(zip(result.ids, map(float, result.similarities)))))
    require_exact(store.client)
    return answers
