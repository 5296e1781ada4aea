"""A store: one RAG store that vector_assets keeps safe. Its name, its layout, its tables in
load order with the role each plays, the NAME of the environment variable that holds its
database's DSN, and its own settings, which it lays over the environment.

Every request carries the store it acts on, and the Dagster definitions are built from it, so
nothing else names the tables. A store's settings are environment-variable values
(``{"VECTOR_ASSETS_ROOT": "s3://…"}``): a setting the store leaves out is read from the
environment when it is needed, so a single store configured by environment variables alone
behaves as it always did.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from vector_assets.core.environment import over_the_environment
from vector_assets.core.errors import ConfigError, UnknownTableError
from vector_assets.core.layouts import layout_columns
from vector_assets.core.pg.data_checks import DataCheckPlan
from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE

DEFAULT_STORE_NAME = "default"
DEFAULT_DSN_VARIABLE = "VECTOR_ASSETS_PG_DSN"
LANGCHAIN = "langchain"
PGAI = "pgai"
PGAI_EMBEDDING_SUFFIX = "_embedding_store"  # pgai's vectorizer writes <source>_embedding_store beside <source>


class TableRole(StrEnum):
    COLLECTIONS = "collections"  # one row per collection; the vector rows reference it
    VECTORS = "vectors"  # rows holding the embeddings
    SOURCE = "source"  # rows the embeddings were made from (pgai's source table), no vector column


@dataclass(frozen=True)
class StoreTable:
    name: str
    role: TableRole


@dataclass(frozen=True)
class Store:
    name: str
    layout: str
    tables: tuple[StoreTable, ...]  # in load order: a table comes after the tables it references
    dsn_variable: str = DEFAULT_DSN_VARIABLE
    settings: Mapping[str, str] = field(default_factory=dict)
    declared_in: str | None = None  # its defs.yaml as messages show it; None: the environment's own store

    def __post_init__(self) -> None:
        if not self.tables:
            raise ConfigError(f"store {self.name!r} has no tables")
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))

    @property
    def table_names(self) -> tuple[str, ...]:
        return tuple(table.name for table in self.tables)

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_STORE_NAME

    def tables_with_role(self, role: TableRole) -> tuple[str, ...]:
        return tuple(table.name for table in self.tables if table.role == role)

    @property
    def vector_tables(self) -> tuple[str, ...]:
        return self.tables_with_role(TableRole.VECTORS)

    @property
    def has_collections(self) -> bool:
        return bool(self.tables_with_role(TableRole.COLLECTIONS))

    def source_table_of(self, table: str) -> str | None:
        """The table a pgai embedding store was made from, kept in step by triggers on it."""
        if self.layout == PGAI and table.endswith(PGAI_EMBEDDING_SUFFIX):
            return table[: -len(PGAI_EMBEDDING_SUFFIX)]
        return None

    def data_check_plan(self) -> DataCheckPlan:
        """The data checks a set of this store gets: its vector tables, read as its layout names its columns."""
        collections = self.tables_with_role(TableRole.COLLECTIONS)
        return DataCheckPlan(self.vector_tables, layout_columns(self.layout), collections[0] if collections else None)

    def environment(self) -> Mapping[str, str]:
        """The store's settings over the process environment, read now."""
        return over_the_environment(self.settings)

    def select_tables(self, requested: Iterable[str] | None) -> tuple[str, ...]:
        """The requested tables in load order, without repeats; None means all of them. A name
        that is not one of the store's tables is refused in one line that lists them."""
        if requested is None:
            return self.table_names
        requested = list(requested)
        if not requested:
            raise UnknownTableError(f"no tables requested; choose from {', '.join(self.table_names)}")
        unknown = [name for name in requested if name not in self.table_names]
        if unknown:
            raise UnknownTableError(
                f"unknown table {unknown[0]!r}; only {', '.join(self.table_names)} are managed"
            )
        return tuple(name for name in self.table_names if name in requested)

    def require_vectors_with_collections(self, tables: tuple[str, ...], action: str) -> None:
        """Emptying collections alone fails (or cascades): the vector rows reference them."""
        collections = [t for t in self.tables_with_role(TableRole.COLLECTIONS) if t in tables]
        missing = [t for t in self.vector_tables if t not in tables]
        if collections and missing:
            raise ConfigError(f"{action} {collections[0]} alone would cascade into {missing[0]}; include both tables")



def langchain_store(
    name: str = DEFAULT_STORE_NAME, dsn_variable: str = DEFAULT_DSN_VARIABLE, settings: Mapping[str, str] | None = None
) -> Store:
    """The two tables of LangChain's ``PGVector``: the collections, then the embeddings."""
    return Store(
        name=name,
        layout=LANGCHAIN,
        tables=(StoreTable(COLLECTION_TABLE, TableRole.COLLECTIONS), StoreTable(EMBEDDING_TABLE, TableRole.VECTORS)),
        dsn_variable=dsn_variable,
        settings=settings or {},
    )
