"""The tables of LangChain's ``PGVector`` layout, and the checks on how a request names one of
its collections (a collection restore)."""

from __future__ import annotations

import unicodedata

from vector_assets.core.errors import ConfigError

COLLECTION_TABLE = "langchain_pg_collection"
EMBEDDING_TABLE = "langchain_pg_embedding"

# The earlier tooling backed up exactly these two, so its legacy file names carry them; the scan
# still recognises a set's data files by these names too.
LEGACY_TABLES: tuple[str, ...] = (COLLECTION_TABLE, EMBEDDING_TABLE)


# A collection name is matched exactly, so it only has to be printable and of a sane length.
COLLECTION_NAME_MAX_CHARS = 255


def validate_collection_name(name: str, field: str) -> str:
    """Non-empty, at most COLLECTION_NAME_MAX_CHARS characters, no control characters (a name
    is printed in one-line messages, logs and commands)."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{field} must be a non-empty collection name")
    if len(name) > COLLECTION_NAME_MAX_CHARS:
        raise ConfigError(f"{field} is {len(name)} characters long; a collection name has at most {COLLECTION_NAME_MAX_CHARS}")
    if any(unicodedata.category(char) == "Cc" for char in name):
        raise ConfigError(f"{field} {name!r} holds a control character")
    return name


def validate_collection_request(
    collection: str | None, rename_to: str | None, tables: tuple[str, ...], store_tables: tuple[str, ...]
) -> None:
    """A collection restore names its collection properly, needs both tables (a collection's
    row and its embeddings), and renames only to another name."""
    if collection is None:
        if rename_to is not None:
            raise ConfigError("rename_collection_to (--rename-to) needs collection (--collection): the name of the collection to restore")
        return
    validate_collection_name(collection, "collection")
    if tables != store_tables:
        raise ConfigError(
            f"a collection restore needs both tables ({', '.join(store_tables)}): it restores the "
            f"collection's row and its embeddings; got {', '.join(tables)}"
        )
    if rename_to is not None:
        validate_collection_name(rename_to, "rename_collection_to")
        if rename_to == collection:
            raise ConfigError(f"rename_collection_to {rename_to!r} is the collection's own name; leave it out to restore it under that name")
