"""Stores made by the real clients come back whole:
- langchain-postgres's ``PGVectorStore``: a table of its own keyed by a UUID, with a tsvector
  column the client fills, an HNSW and a GIN index;
- LlamaIndex's ``PGVectorStore`` with hybrid search: ``data_<name>``, a sequence-backed BIGINT
  key, a GENERATED tsvector column, an HNSW, a GIN and an expression index;
- pgai's vectorizer: the source table (a serial key) and ``<source>_embedding_store`` beside it
  (a UUID key, UNIQUE (source key, chunk_seq), embeddings stored MAIN), an HNSW index.

Each store is declared as a user declares it (a defs.yaml in VECTOR_ASSETS_STORES_DIR) and goes
through the CLI: a set in every format restores into an empty database, and replaces the tables
in their own database; an increment after the client's own changes does both. Every row
(generated columns included), the columns, constraints, indexes and sequences must be as they
were, the sequences past the restored keys, and the client, started fresh with index scans off,
must give the same exact answers as before the backup.

In pgai's own database the restore must not fire the vectorizer's triggers on the source table:
its TRUNCATE trigger would empty the embedding store and the queue, its INSERT trigger queue
every restored row to be embedded again. The queue is compared before and after.

One store per layout for the module: the tests of a layout run in the order written, the
increment's last, since it changes the store through the client.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vector_assets.cli import main
from vector_assets.core.sets.catalog import scan_root
from vector_assets_tests.support.clients import require_clients, run_client
from vector_assets_tests.support.database import execute, fresh_database
from vector_assets_tests.support.table_facts import TableFacts, sequences_behind, table_facts

FORMATS = ["csv", "csv.zst", "pgcopy", "pgcopy.zst"]
TARGET_VARIABLE = "CLIENT_LAYOUTS_TARGET_DSN"
ADDED = 12  # documents the clients' add step adds


@dataclass(frozen=True)
class Layout:
    name: str
    store: str
    tables: tuple[str, ...]  # in load order
    damage: tuple[str, ...]  # what an operator's mistake does to the tables before a restore
    untouched: str | None = None  # a query whose answer a restore in place must not change


LAYOUTS = {
    "langchain_postgres": Layout(
        "langchain_postgres", "products", ("product_docs",),
        ("DELETE FROM product_docs WHERE category = 'billing'",
         "UPDATE product_docs SET content = 'overwritten', content_tsv = to_tsvector('overwritten') "
         "WHERE year = 2021"),
    ),
    "llamaindex": Layout(
        "llamaindex", "support", ("data_support",),
        ("DELETE FROM data_support WHERE id % 3 = 0",
         "UPDATE data_support SET text = 'overwritten', metadata_ = '{}' WHERE id % 5 = 0",
         "INSERT INTO data_support (text, node_id) VALUES ('stray', 'stray')"),
    ),
    "pgai": Layout(
        "pgai", "blogs", ("blog", "blog_embedding_store"),
        ("DELETE FROM blog WHERE id % 3 = 0",  # the vectorizer's trigger deletes their chunks
         "UPDATE blog SET contents = 'overwritten' WHERE id % 5 = 0",  # and queues these
         "DELETE FROM blog_embedding_store WHERE chunk_seq = 1"),
        untouched="SELECT count(*) FROM ai._vectorizer_q_1",
    ),
}


@dataclass
class ClientStore:
    layout: Layout
    dsn: str
    root: Path
    facts: dict[str, TableFacts]  # as the client made them
    answers: list  # the client's exact answers then


def declare(folder: Path, layout: Layout, dsn_variable: str) -> None:
    store = folder / layout.store
    store.mkdir(parents=True)
    (store / "defs.yaml").write_text(
        "type: vector_assets.VectorStore\n"
        "attributes:\n"
        f"  name: {layout.store}\n"
        f"  dsn_env: {dsn_variable}\n"
        f"  layout: {layout.name}\n"
        f"  tables: [{', '.join(layout.tables)}]\n"
        f"  restore_targets: [{TARGET_VARIABLE}]\n"
    )


def all_facts(dsn: str, layout: Layout) -> dict[str, TableFacts]:
    return {table: table_facts(dsn, table) for table in layout.tables}


@pytest.fixture(scope="module", params=list(LAYOUTS))
def client_store(request, maintenance_dsn: str, tmp_path_factory) -> Iterator[ClientStore]:
    """The client's store in a database of its own, declared in a stores folder of its own."""
    require_clients()
    layout = LAYOUTS[request.param]
    folder = tmp_path_factory.mktemp(f"{layout.name}_location")
    dsn_variable = f"{layout.store.upper()}_PG_DSN"
    declare(folder / "stores", layout, dsn_variable)
    with fresh_database(maintenance_dsn) as dsn, pytest.MonkeyPatch.context() as environment:
        run_client(layout.name, "make", dsn)
        environment.delenv("VECTOR_ASSETS_PG_DSN", raising=False)
        environment.setenv("VECTOR_ASSETS_STORES_DIR", str(folder / "stores"))
        environment.setenv("VECTOR_ASSETS_ROOT", str(folder / "backups"))
        environment.setenv(dsn_variable, dsn)
        yield ClientStore(layout, dsn, folder / "backups" / layout.store, all_facts(dsn, layout),
                          run_client(layout.name, "answer", dsn))


@pytest.fixture
def empty_target(maintenance_dsn: str, monkeypatch) -> Iterator[str]:
    """A database with nothing in it, not even pgvector, declared as the stores' restore target."""
    with fresh_database(maintenance_dsn, with_vector=False) as dsn:
        monkeypatch.setenv(TARGET_VARIABLE, dsn)
        yield dsn


def cli(*args: str) -> None:
    assert main(list(args)) == 0


def back_up(store: ClientStore, *options: str) -> str:
    """A new set of the store through the CLI; its key."""
    before = {backup.key for backup in scan_root(store.root)} if store.root.exists() else set()
    cli("backup", "--store", store.layout.store, *options)
    (key,) = {backup.key for backup in scan_root(store.root)} - before
    return key


def restore(store: ClientStore, key: str, *options: str) -> None:
    cli("restore", key, "--store", store.layout.store, "--apply", *options)


def restore_in_place(store: ClientStore, key: str) -> None:
    """A restore into the store's own database, which leaves what is not the store's as it was
    (pgai's queue: the source table's triggers do not fire)."""
    untouched = store.layout.untouched
    before = execute(store.dsn, untouched) if untouched else None
    restore(store, key)
    assert (execute(store.dsn, untouched) if untouched else None) == before


def damage(store: ClientStore) -> None:
    for statement in store.layout.damage:
        execute(store.dsn, statement)
    assert all_facts(store.dsn, store.layout) != store.facts


def assert_same_store(dsn: str, store: ClientStore, facts: dict[str, TableFacts], answers: list) -> None:
    assert all_facts(dsn, store.layout) == facts
    assert [behind for table in store.layout.tables for behind in sequences_behind(dsn, table)] == []
    assert run_client(store.layout.name, "answer", dsn) == answers


def assert_new_rows_take_free_keys(dsn: str, store: ClientStore) -> None:
    """The client's next documents get keys past the restored ones: no collision."""
    rows = {table: facts.rows for table, facts in all_facts(dsn, store.layout).items()}
    run_client(store.layout.name, "add", dsn)
    assert table_facts(dsn, store.layout.tables[0]).rows == rows[store.layout.tables[0]] + ADDED


def test_the_store_is_listed_with_its_layout_and_vector_column(client_store, capsys):
    cli("stores")
    listing = capsys.readouterr().out
    assert f"{client_store.layout.store}: layout {client_store.layout.name}" in listing
    assert f"{client_store.layout.tables[-1]}: " in listing and "vectors in embedding" in listing


@pytest.mark.parametrize("format_name", FORMATS)
def test_a_set_in_each_format_recreates_the_clients_tables_in_an_empty_database(
    client_store, empty_target, format_name, capsys
):
    key = back_up(client_store, "--format", format_name)
    capsys.readouterr()
    restore(client_store, key, "--target", TARGET_VARIABLE)
    report = capsys.readouterr().out
    assert f"tables created from the set's definitions: {', '.join(client_store.layout.tables)}" in report
    for facts in client_store.facts.values():
        for name, _, method, *_ in facts.indexes:
            if not name.endswith(("_pkey", "_key")):
                assert f"index {name} ({method}) built" in report
    assert_same_store(empty_target, client_store, client_store.facts, client_store.answers)
    assert_new_rows_take_free_keys(empty_target, client_store)


@pytest.mark.parametrize("format_name", FORMATS)
def test_a_set_in_each_format_replaces_the_clients_tables_in_their_own_database(client_store, format_name):
    key = back_up(client_store, "--format", format_name)
    damage(client_store)
    restore_in_place(client_store, key)
    assert_same_store(client_store.dsn, client_store, client_store.facts, client_store.answers)


def test_a_drill_of_the_clients_set_passes(client_store, capsys):
    key = back_up(client_store)
    capsys.readouterr()
    cli("drill", key, "--store", client_store.layout.store)
    report = capsys.readouterr().out
    assert f"drill of set {key}" in report and "\npassed in " in report, report


@dataclass(frozen=True)
class Increment:
    key: str
    facts: dict[str, TableFacts]  # the tables when it was taken, after the client's changes
    answers: list


@pytest.fixture(scope="module")
def increment(client_store) -> Increment:
    """The client changes its store (adds, rewrites, deletes documents) between a full set and an
    increment on it."""
    back_up(client_store, "--incremental", "--format", "pgcopy.zst")  # the chain's full set, with its row index
    run_client(client_store.layout.name, "change", client_store.dsn)
    answers = run_client(client_store.layout.name, "answer", client_store.dsn)
    assert answers != client_store.answers
    key = back_up(client_store, "--incremental", "--format", "pgcopy.zst")
    (backup,) = [found for found in scan_root(client_store.root) if found.key == key]
    assert backup.manifest.is_increment
    return Increment(key, all_facts(client_store.dsn, client_store.layout), answers)


def test_an_increment_after_the_clients_own_changes_restores_into_an_empty_database(
    client_store, increment, empty_target
):
    restore(client_store, increment.key, "--target", TARGET_VARIABLE)
    assert_same_store(empty_target, client_store, increment.facts, increment.answers)


def test_an_increment_after_the_clients_own_changes_replaces_the_tables_in_their_own_database(
    client_store, increment
):
    damage(client_store)
    restore_in_place(client_store, increment.key)
    assert_same_store(client_store.dsn, client_store, increment.facts, increment.answers)
