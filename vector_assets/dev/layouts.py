"""Dev-only: the tables of the two successors of LangChain's ``PGVector`` exactly as their own
clients create them, and deterministic demo rows for them, so the demo and the benchmark hold
what a user of those clients holds without this package depending on either client.

The DDL below is what ``pg_dump -s --no-owner`` (PostgreSQL 18.4, pgvector 0.8.5) printed for
tables the clients made, with the table's name and the vector's dimension turned into
parameters:

- ``PGVECTORSTORE``: langchain-postgres 0.0.19, ``PGEngine.init_vectorstore_table(name, dims,
  metadata_columns=[Column("source", "TEXT")])`` then ``PGVectorStore.apply_vector_index(HNSWIndex())``.
- ``LLAMAINDEX``: llama-index-vector-stores-postgres 0.9.0, ``PGVectorStore.from_params(
  table_name=name, embed_dim=dims, hybrid_search=True, text_search_config="english",
  hnsw_kwargs={"hnsw_m": 16, "hnsw_ef_construction": 64, "hnsw_ef_search": 40,
  "hnsw_dist_method": "vector_cosine_ops"})``, which writes ``data_<name>``.

Each layout's indexes are created after its rows are loaded, as pgvector advises for bulk loads.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from vector_assets.dev.demo import TRICKY_DOCUMENTS, load_rows


@dataclass(frozen=True)
class ClientLayout:
    """A client's table: its DDL, its indexes' DDL, and the columns a COPY of demo rows names."""

    layout: str  # the store layout it belongs to
    client: str  # the client and version the DDL was taken from
    table_ddl: str  # {table}, {dims}; and {sequence} where the client owns one
    indexes: tuple[str, ...]  # each index's DDL: {table} and its own name; the HNSW index first
    copy_columns: tuple[str, ...]  # a generated column or a sequence-backed key is left to the server

    def table_name(self, name: str) -> str:
        return f"data_{name}" if self.layout == "llamaindex" else name

    def create_tables(self, cursor: psycopg2.extensions.cursor, name: str, dims: int) -> None:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
        cursor.execute(sql.SQL(self.table_ddl).format(**self._names(name), dims=sql.Literal(int(dims))))

    def create_indexes(self, cursor: psycopg2.extensions.cursor, name: str, *, vector_index: bool = True) -> None:
        """The client's indexes; without ``vector_index``, all but the HNSW one."""
        for ddl in self.indexes[0 if vector_index else 1:]:
            cursor.execute(sql.SQL(ddl).format(**self._names(name)))

    def _names(self, name: str) -> dict[str, sql.Identifier]:
        table = self.table_name(name)
        if self.layout == "llamaindex":  # its secondary indexes drop the data_ prefix
            return {
                "table": sql.Identifier(table), "sequence": sql.Identifier(f"{table}_id_seq"),
                "hnsw": sql.Identifier(f"{table}_embedding_idx"), "tsv": sql.Identifier(f"{name}_idx"),
                "ref_doc": sql.Identifier(f"{name}_idx_1"), "pkey": sql.Identifier(f"{table}_pkey"),
            }
        return {
            "table": sql.Identifier(table), "pkey": sql.Identifier(f"{table}_pkey"),
            "hnsw": sql.Identifier(f"{table}langchainvectorindex"),
        }


PGVECTORSTORE = ClientLayout(
    layout="langchain_postgres",
    client="langchain-postgres 0.0.19 (PGEngine.init_vectorstore_table, apply_vector_index(HNSWIndex()))",
    table_ddl="""
CREATE TABLE public.{table} (
    langchain_id uuid NOT NULL,
    content text NOT NULL,
    embedding public.vector({dims}) NOT NULL,
    source text,
    langchain_metadata json
);
ALTER TABLE ONLY public.{table}
    ADD CONSTRAINT {pkey} PRIMARY KEY (langchain_id);
""",
    indexes=(
        "CREATE INDEX {hnsw} ON public.{table} USING hnsw (embedding public.vector_cosine_ops) WITH (m='16', ef_construction='64')",
    ),
    copy_columns=("langchain_id", "content", "embedding", "source", "langchain_metadata"),
)

LLAMAINDEX = ClientLayout(
    layout="llamaindex",
    client="llama-index-vector-stores-postgres 0.9.0 (PGVectorStore.from_params, hybrid_search=True, hnsw_kwargs)",
    table_ddl="""
CREATE TABLE public.{table} (
    id bigint NOT NULL,
    text character varying NOT NULL,
    metadata_ json,
    node_id character varying,
    embedding public.vector({dims}),
    text_search_tsv tsvector GENERATED ALWAYS AS (to_tsvector('english'::regconfig, (text)::text)) STORED
);
CREATE SEQUENCE public.{sequence}
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;
ALTER SEQUENCE public.{sequence} OWNED BY public.{table}.id;
ALTER TABLE ONLY public.{table} ALTER COLUMN id SET DEFAULT nextval('public.{sequence}'::regclass);
ALTER TABLE ONLY public.{table}
    ADD CONSTRAINT {pkey} PRIMARY KEY (id);
""",
    indexes=(
        "CREATE INDEX {hnsw} ON public.{table} USING hnsw (embedding public.vector_cosine_ops) WITH (m='16', ef_construction='64')",
        "CREATE INDEX {tsv} ON public.{table} USING gin (text_search_tsv)",
        "CREATE INDEX {ref_doc} ON public.{table} USING btree (((metadata_ ->> 'ref_doc_id'::text)))",
    ),
    copy_columns=("text", "metadata_", "node_id", "embedding"),  # id from its sequence, as the client leaves it
)

CLIENT_LAYOUTS = {layout.layout: layout for layout in (PGVECTORSTORE, LLAMAINDEX)}
SOURCES = ("catalog", "manual", "faq")


def table_exists(cursor: psycopg2.extensions.cursor, table: str) -> bool:
    cursor.execute("SELECT to_regclass(%s)", (f"public.{table}",))
    return cursor.fetchone()[0] is not None


def make_client_table(dsn: str, layout: ClientLayout, name: str, rows: int, dims: int, seed: int) -> bool:
    """Create the client's table, fill it with ``rows`` demo rows by COPY and index it, unless it
    is there already. True if it was made."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cursor:
            if table_exists(cursor, layout.table_name(name)):
                return False
            layout.create_tables(cursor, name, dims)
        load_rows(conn, layout.table_name(name), list(demo_rows(layout, rows, dims, seed)))
        with conn.cursor() as cursor:
            layout.create_indexes(cursor, name)
        conn.commit()
        return True
    finally:
        conn.close()


def demo_rows(layout: ClientLayout, rows: int, dims: int, seed: int) -> Iterator[dict]:
    """Rows as each client writes them, keyed by ``layout.copy_columns``; the texts hold what
    breaks naive CSV handling, but no empty document: the backup's data checks would rightly
    warn of one, and a newcomer's first screen is green."""
    rng = random.Random(seed)
    for index in range(rows):
        text = TRICKY_DOCUMENTS[index] if index < len(TRICKY_DOCUMENTS) else None
        if not text:
            text = f"document {index}: the \"{SOURCES[index % 3]}\" page, section {rng.randint(1, 40)}, in short"
        embedding = "[" + ",".join(f"{rng.uniform(-1, 1):.6f}" for _ in range(dims)) + "]"
        node_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if layout is PGVECTORSTORE:
            metadata = json.dumps({"page": index % 50, "tags": ["a,b", 'c"d']}) if index % 50 != 7 else None
            values = (node_id, text, embedding, SOURCES[index % 3], metadata)
        else:
            values = (text, json.dumps(_llama_metadata(index, node_id)), node_id, embedding)
        yield dict(zip(layout.copy_columns, values))


def _llama_metadata(index: int, node_id: str) -> dict:
    """What LlamaIndex 0.14 writes into ``metadata_`` for a TextNode with a source document."""
    document = f"doc-{index // 10}"
    node = {"id_": node_id, "embedding": None, "metadata": {"author": "demo"}, "relationships": {
        "1": {"node_id": document, "node_type": None, "metadata": {}, "hash": None, "class_name": "RelatedNodeInfo"}},
        "text": "", "mimetype": "text/plain", "class_name": "TextNode"}
    return {"author": "demo", "_node_content": json.dumps(node), "_node_type": "TextNode",
            "document_id": document, "doc_id": document, "ref_doc_id": document}

