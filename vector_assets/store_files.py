"""Declared stores: every ``defs.yaml`` of type ``vector_assets.VectorStore`` under the stores
folder (the package's ``defs/stores/``, or ``VECTOR_ASSETS_STORES_DIR``), checked and turned into
``Store``s. The code location, the ``VectorStore`` component and the CLI all read them here, and
no Dagster is imported, so the CLI reads the same files with no Dagster process.

Each bad file is refused in one line that names the file and the attribute. What only the
database can tell (a table that is not there, or holds no vector column) is checked when the code
location loads (``check_declared_tables``), in each declared store's database that answers within
a few seconds; one whose database is down still loads, so it never takes the other stores'
definitions with it, and its first run says what is wrong.

The environment's own store (``VECTOR_ASSETS_PG_DSN``, LangChain's tables, today's names and
folders) is there when no store is declared, and beside the declared ones when
``VECTOR_ASSETS_PG_DSN`` is set.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from vector_assets import settings
from vector_assets.core.errors import ConfigError, VectorAssetsError
from vector_assets.core.pg.connection import connect
from vector_assets.core.pg.store_tables import table_problem
from vector_assets.core.stores import (
    DEFAULT_STORE_NAME,
    LANGCHAIN,
    PGAI,
    PGAI_EMBEDDING_SUFFIX,
    Store,
    StoreTable,
    TableRole,
    langchain_store,
)

STORE_TYPE = "vector_assets.VectorStore"
DEFS_FILE = "defs.yaml"
PACKAGE_STORES = Path(__file__).resolve().parent / "defs" / "stores"
LAYOUTS = (LANGCHAIN, "langchain_postgres", "llamaindex", PGAI, "tables")
STORE_NAME = re.compile(r"[A-Za-z0-9_]+")
TABLE_NAME = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_$]*\.)?[A-Za-z_][A-Za-z0-9_$]*")
# The default store's root holds the earlier tooling's task folders; a store's folder beside them
# must not be taken for one.
TASK_FOLDER = re.compile(r"(task|manual)_", re.IGNORECASE)
LOAD_CONNECT_TIMEOUT_SECONDS = 3
REQUIRED = ("name", "dsn_env", "layout")
ATTRIBUTES = (*REQUIRED, "tables", *settings.STORE_SETTINGS)
COUNTS = ("keep_daily", "keep_weekly", "keep_monthly", "offsite_keep_daily", "offsite_keep_weekly",
          "offsite_keep_monthly", "keep_truncated_days")


@dataclass(frozen=True)
class StoreDeclaration:
    """A store, and the file that declared it (None: the environment's own store)."""

    store: Store
    file: str | None = None
    attributes: frozenset[str] = frozenset()  # the attributes the file set

    def refusal(self, error: ConfigError) -> ConfigError:
        """A setting's error in a declared store's terms: its file, and the attribute that set it."""
        if self.file is None:
            return error
        message = str(error)
        for attribute, setting in settings.STORE_SETTINGS.items():
            if attribute in self.attributes:
                message = message.replace(f"environment variable {setting.name} ", f"{attribute}: ")
        return ConfigError(f"{self.file}: {message}")


def stores_folder(environ: Mapping[str, str] | None = None) -> Path:
    configured = settings.STORES_DIR.get(environ)
    return Path(configured).expanduser() if configured else PACKAGE_STORES


def code_location_stores(environ: Mapping[str, str] | None = None) -> list[StoreDeclaration]:
    """Every store of the code location: the environment's own one when it applies, then the
    declared ones in the order of their folders."""
    declared = declared_stores(stores_folder(environ), environ)
    if not declared or settings.PG_DSN.get(environ):
        declared = [StoreDeclaration(settings.default_store()), *declared]
    check_together(declared)
    return declared


def declared_stores(folder: Path, environ: Mapping[str, str] | None = None) -> list[StoreDeclaration]:
    if folder != PACKAGE_STORES and not folder.is_dir():
        raise ConfigError(f"{settings.STORES_DIR.name} is {str(folder)!r}, which is not a folder")
    files = sorted(folder.rglob(DEFS_FILE)) if folder.is_dir() else []
    return [read_store_file(path, environ) for path in files]


def read_store_file(path: Path, environ: Mapping[str, str] | None = None) -> StoreDeclaration:
    shown = shown_path(path)
    try:
        documents = [document for document in yaml.safe_load_all(path.read_text()) if document is not None]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{shown}: not valid YAML{where}") from None
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise ConfigError(f"{shown}: must hold one mapping with type: {STORE_TYPE} and attributes:")
    document = documents[0]
    if document.get("type") != STORE_TYPE:
        raise ConfigError(f"{shown}: type: the stores folder holds stores only, of type {STORE_TYPE}")
    unknown = sorted(set(document) - {"type", "attributes"})
    if unknown:
        raise ConfigError(f"{shown}: {unknown[0]}: not a key of a component's defs.yaml (type, attributes)")
    attributes = document.get("attributes")
    if not isinstance(attributes, dict):
        raise ConfigError(f"{shown}: attributes: must be a mapping holding at least {', '.join(REQUIRED)}")
    return store_from_attributes(attributes, shown, environ)


def shown_path(path: Path) -> str:
    """The file as a user finds it: relative to the working folder when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def store_from_attributes(
    attributes: Mapping[str, object], file: str, environ: Mapping[str, str] | None = None
) -> StoreDeclaration:
    """The one check of a store's attributes, for the code location, the component and the CLI."""
    refuse = _refuser(file)
    _check_attribute_names(attributes, refuse)
    name = _text(attributes, "name", refuse)
    if not STORE_NAME.fullmatch(name):
        refuse("name", f"{name!r} may hold letters, digits and _ only")
    if name == DEFAULT_STORE_NAME:
        refuse("name", f"{DEFAULT_STORE_NAME!r} is the environment's own store (VECTOR_ASSETS_PG_DSN); choose another")
    if TASK_FOLDER.match(name):
        refuse("name", f"{name!r} would be taken for one of the earlier tooling's task folders; choose another")
    dsn_env = _text(attributes, "dsn_env", refuse)
    if not settings.ENV_VAR_NAME.fullmatch(dsn_env):
        refuse("dsn_env", "must be the NAME of an environment variable holding the DSN, never a DSN")
    layout = _text(attributes, "layout", refuse)
    if layout not in LAYOUTS:
        refuse("layout", f"{layout!r} is not one of {', '.join(LAYOUTS)}")
    values = _setting_values(name, attributes, refuse, environ)
    tables = _tables(layout, attributes.get("tables"), refuse)
    store = (langchain_store(name, dsn_env, values) if layout == LANGCHAIN
             else Store(name=name, layout=layout, tables=tables, dsn_variable=dsn_env, settings=values))
    return StoreDeclaration(replace(store, declared_in=file), file, frozenset(attributes))


def _refuser(file: str):
    def refuse(attribute: str, problem: str):
        raise ConfigError(f"{file}: {attribute}: {problem}")
    return refuse


def _check_attribute_names(attributes: Mapping[str, object], refuse) -> None:
    for attribute in attributes:
        if attribute not in ATTRIBUTES:
            near = difflib.get_close_matches(str(attribute), ATTRIBUTES, n=1)
            hint = f"; did you mean {near[0]}?" if near else f"; a store takes {', '.join(ATTRIBUTES)}"
            refuse(attribute, f"unknown attribute{hint}")
    for attribute in REQUIRED:
        if attributes.get(attribute) in (None, ""):
            refuse(attribute, "is required")


def _text(attributes: Mapping[str, object], attribute: str, refuse) -> str:
    value = attributes.get(attribute)
    if not isinstance(value, str):
        refuse(attribute, "must be a string")
    return value.strip()


def _tables(layout: str, value: object, refuse) -> tuple[StoreTable, ...]:
    if value is None:
        if layout != LANGCHAIN:
            refuse("tables", f"layout {layout} needs the list of its tables")
        return ()
    if not isinstance(value, list) or not value or not all(isinstance(table, str) for table in value):
        refuse("tables", "must be a list of table names")
    for table in value:
        if not TABLE_NAME.fullmatch(table):
            refuse("tables", f"{table!r} is not a table name (table or schema.table)")
    if len(set(value)) != len(value):
        refuse("tables", "names a table twice")
    if layout == LANGCHAIN:
        expected = langchain_store().table_names
        if sorted(value) != sorted(expected):
            refuse("tables", f"layout langchain keeps {' and '.join(expected)}; leave tables out")
    if layout == PGAI and not any(table.endswith(PGAI_EMBEDDING_SUFFIX) for table in value):
        refuse("tables", f"layout pgai keeps <source>{PGAI_EMBEDDING_SUFFIX} tables; none is listed")
    return tuple(StoreTable(table, _role(layout, table)) for table in value)


def _role(layout: str, table: str) -> TableRole:
    if layout == PGAI and not table.endswith(PGAI_EMBEDDING_SUFFIX):
        return TableRole.SOURCE
    return TableRole.VECTORS


def _setting_values(
    name: str, attributes: Mapping[str, object], refuse, environ: Mapping[str, str] | None
) -> dict[str, str]:
    """The store's settings, as the values of the variables they stand for, checked as those are."""
    values: dict[str, str] = {}
    for attribute, setting in settings.STORE_SETTINGS.items():
        if attribute in attributes:
            values[setting.name] = _setting_text(attribute, attributes[attribute], refuse)
    for attribute, setting in (("root", settings.ROOT), ("offsite_root", settings.OFFSITE_ROOT)):
        if attribute not in attributes:  # a folder of its own under the environment's root
            shared = setting.get(environ)
            values[setting.name] = f"{shared.rstrip('/')}/{name}" if shared else ""
    for attribute, check in _VALUE_CHECKS.items():
        if attribute in attributes:
            try:
                check(values)
            except ConfigError as error:
                variable = settings.STORE_SETTINGS[attribute].name
                refuse(attribute, str(error).replace(f"environment variable {variable} ", "")
                       .replace(f"{variable}: ", "").replace(f"{variable} ", ""))
    return values


LISTS = {"restore_targets": "must list NAMES of environment variables", "encrypt_to": "must list age recipients (age1…)"}


def _setting_text(attribute: str, value: object, refuse) -> str:
    if attribute in LISTS and isinstance(value, list):
        if not all(isinstance(item, str) for item in value):
            refuse(attribute, LISTS[attribute])
        if attribute == "encrypt_to" and not value:
            refuse(attribute, "is empty; leave it out to take the environment's setting")
        return ",".join(value)
    if attribute == "allow_plaintext":
        if not isinstance(value, bool):
            refuse(attribute, "must be true or false")
        return str(value).lower()
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        refuse(attribute, "must be a single value")
    text = str(value).strip()
    if not text:
        refuse(attribute, "is empty; leave it out to take the environment's setting")
    return text


_VALUE_CHECKS = {
    "format": settings.backup_format,
    "rto_targets": settings.rto_targets,
    "backup_max_age": settings.BACKUP_MAX_AGE.seconds,
    "restore_targets": settings.restore_target_names,
    "alert_webhook_env": settings.alert_webhook,
    "encrypt_to": settings.encryption_recipients,
    "identity_file_env": settings.identity_file_variable,
    **dict.fromkeys(("recall_target", "recall_queries", "recall_k", "iterative_scan"), settings.recall_settings),
    **{attribute: settings.STORE_SETTINGS[attribute].count for attribute in COUNTS},
}  # the crons are checked where the schedules are built, by Dagster's own rule


def check_together(declarations: Sequence[StoreDeclaration]) -> None:
    """Names are unique, and no table of a database is claimed by two stores."""
    names: dict[str, StoreDeclaration] = {}
    claims: dict[tuple[str, str], StoreDeclaration] = {}
    for declaration in declarations:
        store = declaration.store
        if store.name in names:
            _refuse_beside(declaration, "name", f"store {store.name!r} is declared twice;", names[store.name])
        names[store.name] = declaration
        for table in store.table_names:
            claim = (store.dsn_variable, qualified(table))
            if claim in claims:
                what = f"{table} of database {store.dsn_variable} is also store {claims[claim].store.name!r}'s,"
                _refuse_beside(declaration, "tables", what, claims[claim])
            claims[claim] = declaration


def _refuse_beside(declaration: StoreDeclaration, attribute: str, problem: str, other: StoreDeclaration) -> None:
    where = f"declared in {other.file}" if other.file else f"the environment's own ({settings.PG_DSN.name})"
    raise ConfigError(f"{declaration.file}: {attribute}: {problem} {where}")


def qualified(table: str) -> str:
    return table if "." in table else f"public.{table}"


def check_declared_tables(declarations: Sequence[StoreDeclaration]) -> Sequence[StoreDeclaration]:
    """Each declared store's tables are in its database, and its vector tables hold a vector column."""
    for declaration in declarations:
        if declaration.file is not None:
            _check_tables_in_database(declaration)
    return declarations


def _check_tables_in_database(declaration: StoreDeclaration) -> None:
    store = declaration.store
    dsn = store.environment().get(store.dsn_variable)
    if not dsn:
        return
    try:
        conn = connect(dsn, application_name="vector_assets load", timeout_seconds=LOAD_CONNECT_TIMEOUT_SECONDS)
    except VectorAssetsError:
        return  # a store whose database is down still loads; its runs say why they fail
    with closing(conn), conn.cursor() as cursor:
        for table in store.tables:
            problem = table_problem(cursor, table.name, needs_vectors=table.role == TableRole.VECTORS)
            if problem:
                raise ConfigError(f"{declaration.file}: tables: {problem} ({store.dsn_variable})")


def choose_store(stores: Sequence[Store], name: str | None) -> Store:
    """The store a command acts on: the one named, or the only one."""
    names = ", ".join(store.name for store in stores)
    if name is None:
        if len(stores) == 1:
            return stores[0]
        raise ConfigError(f"there are {len(stores)} stores ({names}); choose one with --store NAME")
    for store in stores:
        if store.name == name:
            return store
    raise ConfigError(f"no store named {name!r}; the stores are {names}")


def store_names(declarations: Iterable[StoreDeclaration]) -> list[str]:
    return [declaration.store.name for declaration in declarations]
