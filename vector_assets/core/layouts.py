"""What some columns of each layout mean to the checks that read rows: which column holds the
document, which ids the client gives rows (which must not repeat within a collection), and
which column of a vector row names its collection, and by which key of the collection table.

A layout whose clients let the user name a column (langchain-postgres ``PGVectorStore``'s
content column) or that is anything at all (``tables``) is matched by the names documents
usually have; the first text column with one of them is the document.
"""

from __future__ import annotations

from dataclasses import dataclass

from vector_assets.core.pg.collections import COLLECTION_KEY, COLLECTION_REFERENCE

# The names a document column has in the field, most specific first.
DOCUMENT_LIKE_NAMES = ("document", "content", "text", "chunk", "page_content", "body")


@dataclass(frozen=True)
class LayoutColumns:
    documents: tuple[str, ...]  # candidates for the document column, in order of preference
    ids: tuple[str, ...] = ()  # ids the client gives rows; a repeat within a collection is a duplicate
    collection_reference: str | None = None  # the vector row's column naming its collection
    collection_key: str | None = None  # the collection table's column it names


LAYOUT_COLUMNS: dict[str, LayoutColumns] = {
    # id is the key of the current layout; custom_id (older layout) is not unique.
    "langchain": LayoutColumns(("document",), ("id", "custom_id"), COLLECTION_REFERENCE, COLLECTION_KEY),
    "langchain_postgres": LayoutColumns(DOCUMENT_LIKE_NAMES),
    # node_id is nullable and not unique: re-adding a node without deleting it repeats it.
    "llamaindex": LayoutColumns(("text",), ("node_id",)),
    # pgai's UNIQUE (source key, chunk_seq) already stops repeats.
    "pgai": LayoutColumns(("chunk",)),
    "tables": LayoutColumns(DOCUMENT_LIKE_NAMES),
}


def layout_columns(layout: str) -> LayoutColumns:
    return LAYOUT_COLUMNS.get(layout, LAYOUT_COLUMNS["tables"])
