"""The LangChain PGVector tables this tool manages, in foreign-key order."""

from __future__ import annotations

from collections.abc import Iterable

from vector_assets.core.errors import ConfigError, UnknownTableError

COLLECTION_TABLE = "langchain_pg_collection"
EMBEDDING_TABLE = "langchain_pg_embedding"

# Collections first: embeddings reference them, so restores load in this order.
MANAGED_TABLES: tuple[str, ...] = (COLLECTION_TABLE, EMBEDDING_TABLE)


def validate_tables(tables: Iterable[str]) -> tuple[str, ...]:
    """Check names against the whitelist and return them in foreign-key order, without repeats."""
    requested = list(tables)
    if not requested:
        raise UnknownTableError(f"no tables requested; choose from {', '.join(MANAGED_TABLES)}")
    unknown = [name for name in requested if name not in MANAGED_TABLES]
    if unknown:
        raise UnknownTableError(
            f"unknown table {unknown[0]!r}; only {', '.join(MANAGED_TABLES)} are managed"
        )
    return tuple(name for name in MANAGED_TABLES if name in requested)


def require_embeddings_with_collections(tables: tuple[str, ...], action: str) -> None:
    """Truncating collections alone fails (or cascades) because embeddings reference them."""
    if COLLECTION_TABLE in tables and EMBEDDING_TABLE not in tables:
        raise ConfigError(
            f"{action} {COLLECTION_TABLE} alone would cascade into {EMBEDDING_TABLE}; include both tables"
        )
