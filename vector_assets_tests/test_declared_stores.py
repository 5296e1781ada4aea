"""Stores declared as vector_assets.VectorStore components: several load together beside the
environment's own, each bad defs.yaml is refused in one line (by the loader, by dg check defs
and by the code location's load), dg knows the type and scaffolds it, and the CLI and the jobs
act on the store they are told, leaving the others' tables as they were."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from vector_assets.cli import main
from vector_assets.core.errors import ConfigError
from vector_assets.core.sets.catalog import scan_root
from vector_assets.definitions import defs as load_definitions
from vector_assets.store_files import code_location_stores
from vector_assets_tests.support.database import execute, fill_store, tables_now
from vector_assets_tests.support.webhook import webhook_receiver

REPO = Path(__file__).resolve().parent.parent
DG = str(Path(sys.executable).with_name("dg"))
# The shape of what age-keygen writes; "s3cret" is what no refusal may echo.
SECRET_KEY = "AGE-SECRET-KEY-1QQS3CRETs3cretQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
EMBEDDINGS_DELETED = "DELETE FROM langchain_pg_embedding WHERE id IN (SELECT id FROM langchain_pg_embedding LIMIT 20)"


def declare(folder: Path, name: str, directory: str | None = None, **attributes) -> Path:
    lines = [f"  {key}: {value}" for key, value in {"name": name, **attributes}.items()]
    path = folder / (directory or name) / "defs.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("type: vector_assets.VectorStore\nattributes:\n" + "\n".join(lines) + "\n")
    return path


@pytest.fixture
def stores_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "stores"
    folder.mkdir()
    monkeypatch.setenv("VECTOR_ASSETS_STORES_DIR", str(folder))
    monkeypatch.delenv("VECTOR_ASSETS_PG_DSN", raising=False)  # declared stores alone, unless a test sets it
    return folder


@pytest.fixture
def two_stores(stores_dir, monkeypatch) -> Path:
    """docs and shop, LangChain stores in databases of their own, beside the environment's."""
    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", "postgresql://localhost/unused")
    declare(stores_dir, "docs", dsn_env="DOCS_PG_DSN", layout="langchain", backup_cron='"5 1 * * *"')
    declare(stores_dir, "shop", dsn_env="SHOP_PG_DSN", layout="langchain", keep_daily=3)
    return stores_dir


def test_declared_stores_load_together_beside_the_environments_own(two_stores):
    defs = load_definitions()
    jobs = {job.name for job in defs.get_repository_def().get_all_jobs()}
    for store in ("docs", "shop"):
        assert {f"{store}_backup_vector_tables", f"{store}_restore_vector_tables", f"{store}_drill_vector_backup"} <= jobs
    assert "backup_vector_tables" in jobs  # VECTOR_ASSETS_PG_DSN is set: the environment's store stays
    assert defs.resolve_schedule_def("docs_vector_backup_schedule").cron_schedule == "5 1 * * *"
    assert defs.resolve_schedule_def("shop_vector_backup_schedule").cron_schedule == "0 2 * * *"
    graph = defs.resolve_asset_graph()
    backups = {
        key: graph.get(key).partitions_def.name
        for key in graph.get_all_asset_keys() if key.path[-1].endswith("_backup")
    }
    assert backups[dg.AssetKey(["docs", "langchain_pg_embedding_backup"])] == "docs_vector_backups"
    assert backups[dg.AssetKey(["shop", "langchain_pg_collection_backup"])] == "shop_vector_backups"
    assert backups[dg.AssetKey("langchain_pg_embedding_backup")] == "vector_backups"
    assert set(backups.values()) == {"vector_backups", "docs_vector_backups", "shop_vector_backups"}
    assert graph.get(dg.AssetKey(["docs", "langchain_pg_embedding_backup"])).parent_keys == {
        dg.AssetKey(["docs", "langchain_pg_embedding"])
    }
    pools = {name: defs.resolve_job_def(f"{name}backup_vector_tables").graph.node_named(f"{name}back_up_tables").definition.pool
             for name in ("", "docs_", "shop_")}
    assert pools == {"": "vector_tables", "docs_": "vector_tables_docs_pg_dsn", "shop_": "vector_tables_shop_pg_dsn"}


def test_a_store_left_without_root_keeps_its_sets_in_a_folder_of_its_own(two_stores, monkeypatch):
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", "s3://bucket/rag")
    stores = {declaration.store.name: declaration.store for declaration in code_location_stores()}
    assert stores["docs"].environment()["VECTOR_ASSETS_ROOT"] == "s3://bucket/rag/docs"
    assert stores["shop"].environment()["VECTOR_ASSETS_KEEP_DAILY"] == "3"
    assert stores["default"].environment()["VECTOR_ASSETS_ROOT"] == "s3://bucket/rag"


def test_with_no_store_declared_the_environments_store_is_the_one_store_with_todays_names(stores_dir, monkeypatch):
    monkeypatch.delenv("VECTOR_ASSETS_PG_DSN", raising=False)
    assert [declaration.store.name for declaration in code_location_stores()] == ["default"]
    keys = load_definitions().resolve_asset_graph().get_all_asset_keys()
    assert dg.AssetKey("langchain_pg_embedding_backup") in keys and all(len(key.path) == 1 for key in keys)


def test_declared_stores_without_vector_assets_pg_dsn_are_the_only_ones(stores_dir, monkeypatch):
    monkeypatch.delenv("VECTOR_ASSETS_PG_DSN", raising=False)
    declare(stores_dir, "docs", dsn_env="DOCS_PG_DSN", layout="langchain")
    assert [declaration.store.name for declaration in code_location_stores()] == ["docs"]


BAD_FILES = {
    "unknown layout": (
        {"layout": "chroma"}, "layout: 'chroma' is not one of langchain, langchain_postgres, llamaindex, pgai, tables",
    ),
    "a DSN where a variable's name belongs": (
        {"dsn_env": "postgresql://rag:s3cret-pw@db.internal/rag"},
        "dsn_env: must be the NAME of an environment variable holding the DSN, never a DSN",
    ),
    "the name of another store": ({"name": "docs"}, "name: store 'docs' is declared twice; declared in {docs}"),
    "a table another store claims": (
        {"dsn_env": "DOCS_PG_DSN"},
        "tables: langchain_pg_collection of database DOCS_PG_DSN is also store 'docs''s, declared in {docs}",
    ),
    "an unknown attribute": ({"colour": "blue"}, "colour: unknown attribute; a store takes name, dsn_env, layout,"),
    "a misspelt attribute": ({"keep_dialy": 3}, "keep_dialy: unknown attribute; did you mean keep_daily?"),
    "a count that is not one": ({"keep_daily": "seven"}, "keep_daily: must be a whole number >= 0, got 'seven'"),
    "a layout's missing tables": ({"layout": "llamaindex"}, "tables: layout llamaindex needs the list of its tables"),
    "a bad cron": ({"backup_cron": '"every day"'}, "backup_cron: must be a cron schedule of five fields"),
    "a webhook URL where a variable's name belongs": (
        {"alert_webhook_env": "https://hooks.example/T0/s3cret"},
        "alert_webhook_env: must be the NAME of an environment variable holding the webhook URL, never a URL",
    ),
    "a malformed recipient": (
        {"encrypt_to": "[age1qqq, age1broken]"}, "encrypt_to: recipient 1 (age1qqq) is not a valid age X25519 recipient",
    ),
    "an identity where a recipient belongs": (
        {"encrypt_to": SECRET_KEY}, "encrypt_to: recipient 1 is an identity (a secret key), not a recipient;",
    ),
    "a path where the identity's variable name belongs": (
        {"identity_file_env": "/srv/keys/s3cret.txt"},
        "identity_file_env: must be the NAME of an environment variable holding the identity file's path, never a path or a key",
    ),
    "an identity where the identity's variable name belongs": (
        {"identity_file_env": SECRET_KEY},
        "identity_file_env: must be the NAME of an environment variable holding the identity file's path, never a path or a key",
    ),
    "allow_plaintext that is not a flag": ({"allow_plaintext": "sometimes"}, "allow_plaintext: must be true or false"),
}


def declare_with_a_bad_one(folder: Path, case: str) -> tuple[Path, str]:
    """docs and zeta are good, other (read between them) is not. Several at once: dg check defs
    schema-checks only one file of a component type."""
    docs = declare(folder, "docs", dsn_env="DOCS_PG_DSN", layout="langchain")
    declare(folder, "zeta", dsn_env="ZETA_PG_DSN", layout="langchain")
    changes, expected = BAD_FILES[case]
    attributes = {"name": "other", "dsn_env": "OTHER_PG_DSN", "layout": "langchain", **changes}
    bad = declare(folder, attributes.pop("name"), directory="other", **attributes)
    return bad, f"{bad.resolve()}: " + expected.format(docs=docs.resolve())


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_each_bad_store_file_is_refused_in_one_line_naming_the_file_and_the_attribute(stores_dir, case):
    bad, expected = declare_with_a_bad_one(stores_dir, case)
    with pytest.raises(ConfigError) as refused:
        load_definitions()
    message = str(refused.value)
    assert message.startswith(expected) and "\n" not in message
    assert "s3cret" not in message.lower() and "db.internal" not in message and "hooks.example" not in message
    bad.unlink()
    assert {"docs_backup_vector_tables", "zeta_backup_vector_tables"} <= {
        job.name for job in load_definitions().get_repository_def().get_all_jobs()
    }


def dg_command(*args: str, cwd: Path = REPO, **environment: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "VECTOR_ASSETS_"))}
    return subprocess.run([DG, *args], cwd=cwd, capture_output=True, text=True, env={**clean, **environment})


@pytest.mark.parametrize("case", ["unknown layout", "a DSN where a variable's name belongs", "a table another store claims",
                                  "an unknown attribute", "a bad cron", "an identity where a recipient belongs"])
def test_dg_check_defs_refuses_a_bad_store_file_in_its_one_line_and_passes_once_it_is_fixed(stores_dir, case):
    bad, expected = declare_with_a_bad_one(stores_dir, case)
    result = dg_command("check", "defs", VECTOR_ASSETS_STORES_DIR=str(stores_dir))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert expected in output, output
    assert "s3cret" not in output.lower()
    declare(stores_dir, "other", dsn_env="OTHER_PG_DSN", layout="langchain")
    fixed = dg_command("check", "defs", VECTOR_ASSETS_STORES_DIR=str(stores_dir))
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr


def test_dg_lists_the_component_type():
    result = dg_command("list", "components", "--json")
    assert result.returncode == 0, result.stderr
    assert '"vector_assets.VectorStore"' in result.stdout


@pytest.fixture
def project_copy(tmp_path) -> Path:
    """The project in a folder of its own, so scaffolding writes nowhere the other tests load."""
    copy = tmp_path / "project"
    copy.mkdir()
    for name in ("pyproject.toml", "dagster.yaml", "workspace.yaml", "README.md"):
        shutil.copy(REPO / name, copy / name)
    shutil.copytree(REPO / "vector_assets", copy / "vector_assets", ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_dg_scaffolds_a_store_whose_file_then_loads(project_copy, monkeypatch):
    result = dg_command("scaffold", "defs", "vector_assets.VectorStore", "stores/catalog", cwd=project_copy,
                        PYTHONPATH=str(project_copy))
    assert result.returncode == 0, result.stdout + result.stderr
    written = project_copy / "vector_assets" / "defs" / "stores" / "catalog" / "defs.yaml"
    text = written.read_text()
    assert "type: vector_assets.VectorStore" in text and "name: catalog" in text and "dsn_env: CATALOG_PG_DSN" in text
    monkeypatch.setenv("VECTOR_ASSETS_STORES_DIR", str(written.parent.parent))
    monkeypatch.delenv("VECTOR_ASSETS_PG_DSN", raising=False)
    jobs = {job.name for job in load_definitions().get_repository_def().get_all_jobs()}
    assert "catalog_backup_vector_tables" in jobs and "backup_vector_tables" not in jobs
    check = dg_command("check", "defs", cwd=project_copy, PYTHONPATH=str(project_copy))
    assert check.returncode == 0, check.stdout + check.stderr


LOAD_STORES_AS_COMPONENTS = (
    "from pathlib import Path\nimport dagster as dg\n"
    "defs = dg.load_from_defs_folder(path_within_project=Path('vector_assets/defs/stores'))\n"
    "print(sorted(job.name for job in defs.jobs))"
)


def test_the_component_built_by_dagsters_own_loader_checks_its_file_the_same_way(project_copy):
    stores = project_copy / "vector_assets" / "defs" / "stores"
    declare(stores, "docs", dsn_env="DOCS_PG_DSN", layout="langchain")
    bad = declare(stores, "other", dsn_env="OTHER_PG_DSN", layout="chroma")
    run = [sys.executable, "-c", LOAD_STORES_AS_COMPONENTS]
    environment = {**os.environ, "PYTHONPATH": str(project_copy)}
    refused = subprocess.run(run, cwd=project_copy, capture_output=True, text=True, env=environment)
    assert refused.returncode != 0
    assert f"{bad.relative_to(project_copy)}: layout: 'chroma' is not one of langchain," in refused.stderr
    declare(stores, "other", dsn_env="OTHER_PG_DSN", layout="langchain")
    built = subprocess.run(run, cwd=project_copy, capture_output=True, text=True, env=environment)
    assert built.returncode == 0, built.stderr
    assert "'docs_backup_vector_tables'" in built.stdout and "'other_backup_vector_tables'" in built.stdout


@pytest.fixture
def docs_db(second_db) -> str:
    fill_store(second_db, embeddings=120)
    return second_db


@pytest.fixture
def docs_store(stores_dir, monkeypatch, store_db, docs_db, backup_root) -> Path:
    """The environment's store in store_db, and docs in docs_db, both under one backup root."""
    monkeypatch.setenv("VECTOR_ASSETS_PG_DSN", store_db)
    monkeypatch.setenv("VECTOR_ASSETS_ROOT", str(backup_root))
    monkeypatch.setenv("DOCS_PG_DSN", docs_db)
    declare(stores_dir, "docs", dsn_env="DOCS_PG_DSN", layout="langchain")
    return backup_root / "docs"


def test_the_cli_needs_store_when_there_are_several_and_names_them(docs_store, capsys):
    assert main(["list"]) == 2
    assert capsys.readouterr().err.strip() == "vector-assets: there are 2 stores (default, docs); choose one with --store NAME"
    assert main(["backup", "--store", "shop"]) == 2
    assert capsys.readouterr().err.strip() == "vector-assets: no store named 'shop'; the stores are default, docs"


def test_the_cli_lists_the_stores_with_their_tables_rows_and_newest_set(docs_store, store_db, capsys):
    execute(store_db, "ANALYZE")
    assert main(["backup", "--store", "docs"]) == 0
    (docs_set,) = scan_root(docs_store)
    capsys.readouterr()
    assert main(["stores"]) == 0
    listing = capsys.readouterr().out
    default, docs = listing.split("\ndocs: ")
    assert default.startswith("default: layout langchain, database VECTOR_ASSETS_PG_DSN, the environment's own")
    assert "langchain_pg_embedding: ~300 rows, vectors in embedding" in default and "newest set: none yet" in default
    assert "langchain_pg_collection: ~3 rows\n" in default  # the collections hold no vector column, by design
    assert docs.startswith(f"layout langchain, database DOCS_PG_DSN, declared in {docs_store.parent.parent / 'stores'}")
    assert "langchain_pg_embedding: " in docs and f"root: {docs_store}" in docs
    assert f"newest set: {docs_set.key}" in docs


def test_a_store_table_that_is_not_there_shows_in_the_listing(docs_store, docs_db, capsys):
    execute(docs_db, "DROP TABLE langchain_pg_embedding")
    assert main(["stores"]) == 0
    assert "  langchain_pg_embedding: NOT THERE" in capsys.readouterr().out.split("\ndocs: ")[1]


def test_backup_and_restore_of_a_declared_store_through_the_cli_leave_the_default_store_alone(
    docs_store, store_db, docs_db, capsys
):
    default_before, docs_before = tables_now(store_db), tables_now(docs_db)
    assert main(["backup", "--store", "docs"]) == 0
    (docs_set,) = scan_root(docs_store)
    execute(docs_db, EMBEDDINGS_DELETED)
    assert main(["restore", "latest", "--store", "docs", "--apply"]) == 0
    output = capsys.readouterr().out
    assert f"restored set {docs_set.key}" in output and "--store docs" in output  # the undo names the store
    assert tables_now(docs_db) == docs_before
    assert tables_now(store_db) == default_before
    assert not (docs_store.parent / "vector_bak").exists()  # the default store's root holds none of docs' sets


def test_backup_and_restore_of_a_declared_store_through_its_jobs_leave_the_default_store_alone(
    docs_store, store_db, docs_db
):
    default_before, docs_before = tables_now(store_db), tables_now(docs_db)
    defs = load_definitions()
    with dg.instance_for_test() as instance:
        assert defs.resolve_job_def("docs_backup_vector_tables").execute_in_process(instance=instance).success
        (docs_set,) = scan_root(docs_store)
        assert instance.get_dynamic_partitions("docs_vector_backups") == [docs_set.key]
        assert instance.get_dynamic_partitions("vector_backups") == []
        execute(docs_db, EMBEDDINGS_DELETED)
        config = {"ops": {"docs_restore_from_backup_set": {"config": {"truncate_before_restore": True, "dry_run": False}}}}
        restore = defs.resolve_job_def("docs_restore_vector_tables").execute_in_process(
            run_config=config, instance=instance, partition_key=docs_set.key
        )
        assert restore.success
    assert tables_now(docs_db) == docs_before
    assert tables_now(store_db) == default_before


def test_a_failed_run_of_a_declared_store_alerts_its_own_webhook(docs_store, stores_dir, monkeypatch):
    declare(stores_dir, "docs", dsn_env="DOCS_PG_DSN", layout="langchain", alert_webhook_env="DOCS_ALERTS")
    defs = load_definitions()
    with webhook_receiver() as default_hook, webhook_receiver() as docs_hook, dg.instance_for_test() as instance:
        monkeypatch.setenv("VECTOR_ASSETS_ALERT_WEBHOOK", default_hook.url)
        monkeypatch.setenv("DOCS_ALERTS", docs_hook.url)
        failed = defs.resolve_job_def("docs_restore_vector_tables").execute_in_process(
            run_config={"ops": {"docs_restore_from_backup_set": {"config": {"dry_run": False}}}},
            instance=instance, raise_on_error=False,
        )
        assert not failed.success
        context = dg.build_run_status_sensor_context(
            sensor_name="vector_alert_sensor", dagster_instance=instance, dagster_run=failed.dagster_run,
            dagster_event=failed.get_run_failure_event(),
        )
        defs.resolve_sensor_def("vector_alert_sensor")(context.for_run_failure())
    (text,) = docs_hook.texts
    assert text.startswith("docs_restore_vector_tables failed (set none): no backup set chosen")
    assert default_hook.texts == []


def test_the_cli_and_the_loader_read_the_same_files_with_no_dagster(docs_store):
    program = textwrap.dedent("""
        import sys
        from vector_assets.cli import main
        main(["stores"])
        print(sorted({m.split('.')[0] for m in sys.modules if m.startswith('dagster')}))
    """)
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert "docs: layout langchain" in result.stdout and result.stdout.strip().endswith("[]")
