"""What ``vector-assets stores`` shows of one store: each table there or not, whether it holds a
vector column, its rows as the catalog estimates them (nothing opens a table), and the newest
set under the store's root. A store whose database or root cannot be read says so in its own
line; the other stores are still shown."""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass, field

from vector_assets.core.errors import VectorAssetsError
from vector_assets.core.pg.catalog import estimated_size, table_exists
from vector_assets.core.pg.connection import connect
from vector_assets.core.pg.store_tables import vector_columns
from vector_assets.core.sets.catalog import SetCatalog
from vector_assets.core.sets.storage import Root
from vector_assets.core.stores import Store, TableRole


@dataclass(frozen=True)
class StoreStatusRequest:
    store: Store
    dsn: str
    root: Root


@dataclass(frozen=True)
class TableStatus:
    table: str
    present: bool
    vector_columns: tuple[str, ...] = ()
    estimated_rows: int | None = None  # None: the table was never analyzed
    needs_vectors: bool = True  # a vector table; a collections or source table holds none by design

    def describe(self) -> str:
        if not self.present:
            return f"{self.table}: NOT THERE"
        rows = "rows not yet estimated" if self.estimated_rows is None else f"~{self.estimated_rows:,} rows"
        if not self.vector_columns:
            return f"{self.table}: holds no vector column" if self.needs_vectors else f"{self.table}: {rows}"
        return f"{self.table}: {rows}, vectors in {', '.join(self.vector_columns)}"


@dataclass(frozen=True)
class StoreStatus:
    store: Store
    tables: list[TableStatus] = field(default_factory=list)
    database_problem: str | None = None
    newest_set: str | None = None
    root_problem: str | None = None


def run_store_status(request: StoreStatusRequest) -> StoreStatus:
    tables, database_problem = _tables(request)
    newest, root_problem = _newest_set(request.root)
    return StoreStatus(request.store, tables, database_problem, newest, root_problem)


def _tables(request: StoreStatusRequest) -> tuple[list[TableStatus], str | None]:
    try:
        with closing(connect(request.dsn, application_name="vector_assets stores")) as conn, conn.cursor() as cursor:
            return [_table(cursor, table.name, table.role == TableRole.VECTORS) for table in request.store.tables], None
    except VectorAssetsError as error:
        return [], str(error)


def _table(cursor, table: str, needs_vectors: bool) -> TableStatus:
    if not table_exists(cursor, table):
        return TableStatus(table, present=False, needs_vectors=needs_vectors)
    return TableStatus(table, True, vector_columns(cursor, table), estimated_size(cursor, table)[0], needs_vectors)


def _newest_set(root: Root) -> tuple[str | None, str | None]:
    try:
        catalog = SetCatalog(root)
        return (catalog.newest().key if catalog.sets else None), None
    except VectorAssetsError as error:
        return None, str(error)
