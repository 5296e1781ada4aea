"""The component type ``vector_assets.VectorStore``: a store declared in a folder of its own, in a
``defs.yaml``. ``dg list components`` shows it, and ``dg scaffold defs vector_assets.VectorStore
stores/<name>`` writes a starter file.

Its model types every attribute loosely, on purpose: ``dg check defs`` schema-checks only one
``defs.yaml`` per component type and lets a wrong Literal through, so the one check that counts
is ``store_files.store_from_attributes``, run when a store is built, which refuses a bad file in
one line naming the file and the attribute. The code location reads the stores folder with that
same function (``store_files``), since the folder may lie outside the package
(``VECTOR_ASSETS_STORES_DIR``) and the CLI reads it with no Dagster.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import dagster as dg
from pydantic import BaseModel, ConfigDict

from vector_assets.defs.location import declared_store_definitions
from vector_assets.defs.resources import default_resources
from vector_assets.store_files import DEFS_FILE, LAYOUTS, check_declared_tables, shown_path, store_from_attributes

Count = str | int | None  # a whole number; YAML reads 7 as an int


class StoreScaffoldParams(BaseModel):
    """What ``dg scaffold defs vector_assets.VectorStore stores/<name> --json-params '{…}'`` may set."""

    dsn_env: str | None = None
    layout: str = "langchain"
    tables: list[str] | None = None


class VectorStoreScaffolder(dg.Scaffolder[StoreScaffoldParams]):
    @classmethod
    def get_scaffold_params(cls) -> type[StoreScaffoldParams]:
        return StoreScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[StoreScaffoldParams]) -> None:
        name = Path(request.target_path).name
        params = request.params or StoreScaffoldParams()
        (Path(request.target_path) / DEFS_FILE).write_text(starter_file(name, params))


def starter_file(name: str, params: StoreScaffoldParams) -> str:
    dsn_env = params.dsn_env or f"{name.upper()}_PG_DSN"
    tables = f"[{', '.join(params.tables)}]" if params.tables else None
    lines = [
        _line("name", name, "letters, digits, _ ; unique"),
        _line("dsn_env", dsn_env, "the NAME of the variable holding the DSN; never a DSN"),
        _line("layout", params.layout, " | ".join(LAYOUTS)),
        _line("tables", tables, "required for every layout but langchain")
        if tables else _line("# tables", "[schema.table, ...]", "required for every layout but langchain"),
        f"  # Left out, a setting is the environment's (VECTOR_ASSETS_*); the root is <VECTOR_ASSETS_ROOT>/{name}.",
        f"  # root: s3://bucket/{name}",
        "  # offsite_root, format, backup_cron, incremental_cron, drill_cron, prune_cron, replicate_cron,",
        "  # keep_daily, keep_weekly, keep_monthly, offsite_keep_daily, offsite_keep_weekly, offsite_keep_monthly,",
        "  # keep_truncated_days, rto_targets, backup_max_age, restore_targets, alert_webhook_env,",
        "  # recall_target, recall_queries, recall_k, iterative_scan,",
        "  # encrypt_to (age1… public keys), identity_file_env (the NAME of the variable holding the identity file's",
        "  # path; never a path or a key), allow_plaintext",
    ]
    return "type: vector_assets.VectorStore\nattributes:\n" + "\n".join(lines) + "\n"


def _line(key: str, value: str, comment: str) -> str:
    return f"  {key}: {value}".ljust(34) + f"# {comment}"


@dg.scaffold_with(VectorStoreScaffolder)
class VectorStore(dg.Component, dg.Model, dg.Resolvable):
    """A RAG store in a pgvector database: its tables' backup assets, jobs, schedules, checks and
    sensors, named after it."""

    model_config = ConfigDict(extra="allow")  # an unknown attribute is refused in one line when the store is built

    name: str
    dsn_env: str
    layout: str
    tables: list[str] | None = None
    root: str | None = None
    offsite_root: str | None = None
    format: str | None = None
    backup_cron: str | None = None
    incremental_cron: str | None = None
    drill_cron: str | None = None
    prune_cron: str | None = None
    replicate_cron: str | None = None
    keep_daily: Count = None
    keep_weekly: Count = None
    keep_monthly: Count = None
    offsite_keep_daily: Count = None
    offsite_keep_weekly: Count = None
    offsite_keep_monthly: Count = None
    keep_truncated_days: Count = None
    rto_targets: str | None = None
    backup_max_age: str | int | None = None
    restore_targets: list[str] | str | None = None
    alert_webhook_env: str | None = None
    recall_target: str | float | None = None
    recall_queries: Count = None
    recall_k: Count = None
    iterative_scan: str | None = None
    encrypt_to: list[str] | str | None = None
    identity_file_env: str | None = None
    allow_plaintext: bool | None = None

    @classmethod
    def model(cls) -> type[BaseModel]:
        """The attributes' schema, open to unknown ones: the schema check would refuse them in
        several lines, echoing the file (a DSN in it too), where the load refuses them in one."""
        return _open_model(super().model())

    @classmethod
    def load(cls, attributes: BaseModel | None, context: dg.ComponentLoadContext) -> VectorStore:
        written = attributes.model_dump(exclude_unset=True) if attributes is not None else {}
        store_from_attributes(written, _file(context))  # before Dagster resolves them, so its refusal is ours
        return super().load(attributes, context)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        attributes = self.model_dump(exclude_unset=True)
        (declaration,) = check_declared_tables([store_from_attributes(attributes, _file(context))])
        store = declared_store_definitions(declaration)
        return dg.Definitions.merge(store, dg.Definitions(resources=default_resources()))  # loaded alone, it has its own


def _file(context: dg.ComponentLoadContext) -> str:
    return shown_path(Path(context.path) / DEFS_FILE)


@cache
def _open_model(model: type[BaseModel]) -> type[BaseModel]:
    return type(model.__name__, (model,), {"model_config": ConfigDict(extra="allow"), "__module__": model.__module__})
