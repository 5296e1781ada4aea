"""Dev-only: the demo's second database, ``documents``, holding a langchain-postgres
``PGVectorStore`` table and a LlamaIndex table, each declared as a store of its own in
``dev/stores/`` (a store has one layout). ``vector-assets dev`` points VECTOR_ASSETS_STORES_DIR
at that folder only for its own demo, so the package's ``defs/stores/`` stays empty and a user's
code location never holds a demo store.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from vector_assets import settings
from vector_assets.core.stores import Store
from vector_assets.dev.demo import ensure_fresh_demo_backup
from vector_assets.dev.layouts import LLAMAINDEX, PGVECTORSTORE, ClientLayout, make_client_table
from vector_assets.store_files import declared_stores

DOCUMENTS_DATABASE = "documents"
DOCUMENTS_DSN_VARIABLE = "DOCUMENTS_PG_DSN"
DEMO_STORES = Path(__file__).resolve().parent / "stores"
DEMO_DIMENSIONS = 384
# store name: (layout, the name the client was given, rows, seed)
DEMO_TABLES: dict[str, tuple[ClientLayout, str, int, int]] = {
    "docs": (PGVECTORSTORE, "product_docs", 2000, 20250722),
    "notes": (LLAMAINDEX, "notes", 1500, 20250723),  # the client writes data_notes
}


def demo_stores(environment: dict[str, str]) -> list[Store]:
    return [declaration.store for declaration in declared_stores(DEMO_STORES, environment)]


def start_documents_demo(dsn: str, environment: dict[str, str], now: datetime | None = None) -> list[str]:
    """Make the two tables in the documents database ``dsn`` when missing, declare their stores
    for this run (DOCUMENTS_PG_DSN and VECTOR_ASSETS_STORES_DIR in ``environment``), and back
    each store up when it has no fresh set, as the LangChain demo store is. Returns the banner's notes."""
    environment[DOCUMENTS_DSN_VARIABLE] = dsn
    environment[settings.STORES_DIR.name] = str(DEMO_STORES)
    notes = []
    made = [f"{store} ({layout.table_name(name)}, {rows:,} rows)"
            for store, (layout, name, rows, seed) in DEMO_TABLES.items()
            if make_client_table(dsn, layout, name, rows, DEMO_DIMENSIONS, seed)]
    if made:
        notes.append(f"created the {DOCUMENTS_DATABASE} database's stores {' and '.join(made)}")
    for store in demo_stores(environment):
        fresh = ensure_fresh_demo_backup(dsn, settings.ROOT.get(store.environment()), now, store=store)
        if fresh is not None:
            notes.append(fresh)
    return notes
