"""Every environment variable vector_assets reads, with its default, in one place.

The CLI and the Dagster layer both read settings through this module; nothing else calls
``os.environ`` for a setting. Values are read when asked for, so a test (or a reloaded code
location) sees the environment as it is now.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from vector_assets.core.environment import Setting
from vector_assets.core.errors import ConfigError
from vector_assets.core.ops.drill import RecallSettings
from vector_assets.core.pg.index_builds import IndexBuildSettings
from vector_assets.core.pg.search_quality import ITERATIVE_SCANS
from vector_assets.core.rto import RtoTarget, parse_rto_targets
from vector_assets.core.sets.encryption import EncryptionKeys, IdentityFile, Recipients
from vector_assets.core.sets.object_store import OBJECT_STORE_SETTINGS  # the variables obstore reads
from vector_assets.core.sets.retention import RetentionPolicy
from vector_assets.core.stores import Store, langchain_store


PG_DSN = Setting("VECTOR_ASSETS_PG_DSN", "", "the pgvector database (libpq URL or key=value)")
ROOT = Setting(
    "VECTOR_ASSETS_ROOT", "./data_pipeline/training_data",
    "the backup root: a folder, or an object-store URL (s3://bucket/prefix, gs://…, az://…)",
)
OFFSITE_ROOT = Setting(
    "VECTOR_ASSETS_OFFSITE_ROOT", "", "a second root that replicate_vector_backups copies every complete set to",
)
DAGSTER_PG_URL = Setting("DAGSTER_PG_URL", "", "Dagster's own storage, as postgresql+psycopg2://…")
BACKUP_CRON = Setting("VECTOR_ASSETS_BACKUP_CRON", "0 2 * * *", "when vector_backup_schedule backs up")
INCREMENTAL_CRON = Setting(
    "VECTOR_ASSETS_INCREMENTAL_CRON", "0 * * * *",
    "when vector_incremental_schedule writes an incremental backup (it is off by default)",
)
DRILL_CRON = Setting(
    "VECTOR_ASSETS_DRILL_CRON", "0 4 * * 0", "when vector_drill_schedule drills the newest set",
    deprecated_alias="VECTOR_ASSETS_VERIFY_CRON",
)
PRUNE_CRON = Setting("VECTOR_ASSETS_PRUNE_CRON", "30 3 * * *", "when vector_prune_schedule prunes (it is off by default)")
KEEP_DAILY = Setting("VECTOR_ASSETS_KEEP_DAILY", "7", "sets kept per location: newest of each of this many days")
KEEP_WEEKLY = Setting("VECTOR_ASSETS_KEEP_WEEKLY", "4", "… of this many ISO weeks")
KEEP_MONTHLY = Setting("VECTOR_ASSETS_KEEP_MONTHLY", "12", "… of this many months")
RESTORE_TARGETS = Setting(
    "VECTOR_ASSETS_RESTORE_TARGETS", "",
    "comma-separated NAMES of environment variables that hold restore-target DSNs; with 'default', the only targets a restore accepts",
)
REPLICATE_CRON = Setting(
    "VECTOR_ASSETS_REPLICATE_CRON", "0 3 * * *", "when vector_replicate_schedule copies new sets to the offsite root",
)
OFFSITE_KEEP_DAILY = Setting("VECTOR_ASSETS_OFFSITE_KEEP_DAILY", "14", "offsite root: sets kept per location, daily")
OFFSITE_KEEP_WEEKLY = Setting("VECTOR_ASSETS_OFFSITE_KEEP_WEEKLY", "8", "offsite root: … weekly")
OFFSITE_KEEP_MONTHLY = Setting("VECTOR_ASSETS_OFFSITE_KEEP_MONTHLY", "24", "offsite root: … monthly")
KEEP_TRUNCATED_DAYS = Setting(
    "VECTOR_ASSETS_KEEP_TRUNCATED_DAYS", "",
    "days a guarded truncate's pre_truncate set (the only copy of the rows it removed) is kept; empty: until this is set",
)
KEEP_COUNTS = (KEEP_DAILY, KEEP_WEEKLY, KEEP_MONTHLY)
OFFSITE_KEEP_COUNTS = (OFFSITE_KEEP_DAILY, OFFSITE_KEEP_WEEKLY, OFFSITE_KEEP_MONTHLY)
SENSOR_INTERVAL = Setting("VECTOR_ASSETS_SENSOR_INTERVAL", "30", "seconds between vector_bak_sensor ticks")
FORMAT = Setting(
    "VECTOR_ASSETS_FORMAT", "csv",
    "the data file format of scheduled backups and the Launchpad's default: csv, csv.zst, pgcopy, pgcopy.zst",
)
PART_SIZE_MB = Setting(
    "VECTOR_ASSETS_PART_SIZE_MB", "64", "a table larger than this (MB on disk) is backed up in parts, in the newer formats"
)
PARALLEL_PARTS = Setting("VECTOR_ASSETS_PARALLEL_PARTS", "4", "parts exported at once, each on its own connection")

BACKUP_MAX_AGE = Setting(
    "VECTOR_ASSETS_BACKUP_MAX_AGE", "26h", "a backup asset whose newest set is older than this reads as stale (90, 30m, 26h, 2d)"
)
FRESHNESS_INTERVAL = Setting("VECTOR_ASSETS_FRESHNESS_INTERVAL", "60", "seconds between vector_freshness_sensor ticks")
RTO_TARGETS = Setting(
    "VECTOR_ASSETS_RTO_TARGETS", "1GB=5m,10GB=30m,*=2h",
    "the drill's restore-time targets by set size; over a target warns, over twice is an error",
)
INDEX_BUILD_MEMORY = Setting(
    "VECTOR_ASSETS_INDEX_BUILD_MEMORY", "1GB",
    "the most maintenance_work_mem a restore's index build gets (each gets its estimated size up to this)",
)
INDEX_BUILD_WORKERS = Setting(
    "VECTOR_ASSETS_INDEX_BUILD_WORKERS", "", "parallel workers per index build; empty: what the server allows, at most 4 (a local server: cores - 1)"
)
ALERT_WEBHOOK = Setting(
    "VECTOR_ASSETS_ALERT_WEBHOOK", "",
    "a Slack-compatible webhook URL that failed runs and checks post to (a secret: never logged); empty: no alerts",
)
ALERT_WEBHOOK_ENV = Setting(
    "VECTOR_ASSETS_ALERT_WEBHOOK_ENV", ALERT_WEBHOOK.name,
    "the NAME of the variable holding the alert webhook URL (a store's alert_webhook_env names its own)",
)
UI_URL = Setting("VECTOR_ASSETS_UI_URL", "http://127.0.0.1:3000", "the Dagster UI's address, for the run links in alerts")
RECALL_TARGET = Setting(
    "VECTOR_ASSETS_RECALL_TARGET", "0.90",
    "the drill's recall@k target for each vector index; below it warns, below it minus 0.2 is an error",
)
RECALL_QUERIES = Setting(
    "VECTOR_ASSETS_RECALL_QUERIES", "100", "query vectors the drill samples per table (per collection where there are some)"
)
RECALL_K = Setting("VECTOR_ASSETS_RECALL_K", "10", "the k of the drill's recall@k")
ITERATIVE_SCAN = Setting(
    "VECTOR_ASSETS_ITERATIVE_SCAN", "off",
    "pgvector's hnsw/ivfflat.iterative_scan as the store's queries set it: off, relaxed_order or strict_order",
)
STORES_DIR = Setting(
    "VECTOR_ASSETS_STORES_DIR", "",
    "a folder of declared stores (<name>/defs.yaml), read instead of the package's vector_assets/defs/stores/",
)
ENCRYPT_TO = Setting(
    "VECTOR_ASSETS_ENCRYPT_TO", "",
    "age recipients (public keys, age1…; commas or spaces between) every new set is encrypted to; empty: sets are not encrypted",
)
IDENTITY_FILE = Setting(
    "VECTOR_ASSETS_IDENTITY_FILE", "",
    "path of the age identity file (AGE-SECRET-KEY-1…) that restores, drills and content checks decrypt sets with; "
    "read only then, never shown",
)
IDENTITY_FILE_ENV = Setting(
    "VECTOR_ASSETS_IDENTITY_FILE_ENV", IDENTITY_FILE.name,
    "the NAME of the variable holding the identity file's path (a store's identity_file_env names its own); never a path or a key",
)
ALLOW_PLAINTEXT = Setting(
    "VECTOR_ASSETS_ALLOW_PLAINTEXT", "false",
    "true: a plaintext set may join a location that holds encrypted ones (--allow-plaintext says it for one command)",
)
PROGRESS_INTERVAL = Setting(
    "VECTOR_ASSETS_PROGRESS_INTERVAL", "5", "seconds between progress lines of a COPY or an index build in the run log"
)

ALL_SETTINGS = (
    PG_DSN, ROOT, OFFSITE_ROOT, DAGSTER_PG_URL, BACKUP_CRON, INCREMENTAL_CRON, DRILL_CRON, PRUNE_CRON,
    REPLICATE_CRON, KEEP_DAILY, KEEP_WEEKLY, KEEP_MONTHLY, OFFSITE_KEEP_DAILY, OFFSITE_KEEP_WEEKLY,
    OFFSITE_KEEP_MONTHLY, RESTORE_TARGETS, SENSOR_INTERVAL, FORMAT, PART_SIZE_MB, PARALLEL_PARTS,
    PROGRESS_INTERVAL, ALERT_WEBHOOK, UI_URL, BACKUP_MAX_AGE, FRESHNESS_INTERVAL, RTO_TARGETS,
    INDEX_BUILD_MEMORY, INDEX_BUILD_WORKERS, KEEP_TRUNCATED_DAYS, RECALL_TARGET, RECALL_QUERIES, RECALL_K, ITERATIVE_SCAN,
    STORES_DIR, ALERT_WEBHOOK_ENV, ENCRYPT_TO, IDENTITY_FILE, IDENTITY_FILE_ENV, ALLOW_PLAINTEXT, *OBJECT_STORE_SETTINGS,
)

# What a store's defs.yaml may set besides its name, database, layout and tables: each attribute
# is the setting of the same meaning, for that store alone. One it leaves out is the environment's.
STORE_SETTINGS: dict[str, Setting] = {
    "root": ROOT, "offsite_root": OFFSITE_ROOT, "format": FORMAT,
    "backup_cron": BACKUP_CRON, "incremental_cron": INCREMENTAL_CRON, "drill_cron": DRILL_CRON,
    "prune_cron": PRUNE_CRON, "replicate_cron": REPLICATE_CRON,
    "keep_daily": KEEP_DAILY, "keep_weekly": KEEP_WEEKLY, "keep_monthly": KEEP_MONTHLY,
    "offsite_keep_daily": OFFSITE_KEEP_DAILY, "offsite_keep_weekly": OFFSITE_KEEP_WEEKLY,
    "offsite_keep_monthly": OFFSITE_KEEP_MONTHLY, "keep_truncated_days": KEEP_TRUNCATED_DAYS,
    "rto_targets": RTO_TARGETS, "backup_max_age": BACKUP_MAX_AGE, "restore_targets": RESTORE_TARGETS,
    "alert_webhook_env": ALERT_WEBHOOK_ENV, "recall_target": RECALL_TARGET, "recall_queries": RECALL_QUERIES,
    "recall_k": RECALL_K, "iterative_scan": ITERATIVE_SCAN,
    "encrypt_to": ENCRYPT_TO, "identity_file_env": IDENTITY_FILE_ENV, "allow_plaintext": ALLOW_PLAINTEXT,
}
DEFAULT_TARGET = "default"  # the pgvector resource's own database


def default_store() -> Store:
    """The store of the environment alone: LangChain's tables in the database of VECTOR_ASSETS_PG_DSN."""
    return langchain_store(dsn_variable=PG_DSN.name)


def store_dsn(store: Store) -> str:
    purpose = "the pgvector database" if store.is_default else f"the database of store {store.name}"
    return dsn_from_variable(store.dsn_variable, purpose, store.environment())


def sensor_interval_seconds(setting: Setting = SENSOR_INTERVAL, environ: Mapping[str, str] | None = None) -> int:
    value = setting.get(environ)
    return int(value) if value.isdigit() and int(value) > 0 else int(setting.default)


SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(kb|mb|gb|tb)")
BYTES_PER_UNIT = {"kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}


def parse_size(text: str, variable: str) -> int:
    match = SIZE.fullmatch(text.strip().lower())
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(f"environment variable {variable} must be a size such as 512MB or 2GB, got {text!r}")
    return round(float(match.group(1)) * BYTES_PER_UNIT[match.group(2)])


def index_build_settings(environ: Mapping[str, str] | None = None) -> IndexBuildSettings:
    workers = INDEX_BUILD_WORKERS.count(environ) if INDEX_BUILD_WORKERS.get(environ) else None
    memory = parse_size(INDEX_BUILD_MEMORY.get(environ), INDEX_BUILD_MEMORY.name)
    return IndexBuildSettings(memory, workers, memory_cap_name=INDEX_BUILD_MEMORY.name)


def recall_settings(environ: Mapping[str, str] | None = None) -> RecallSettings:
    """How the drill measures search quality, checked: one line names a bad variable."""
    text = RECALL_TARGET.get(environ)
    try:
        target = float(text)
    except ValueError:
        target = -1.0
    if not 0 < target <= 1:
        raise ConfigError(f"environment variable {RECALL_TARGET.name} must be a recall between 0 and 1 such as 0.9, got {text!r}")
    scan = ITERATIVE_SCAN.get(environ)
    if scan not in ITERATIVE_SCANS:
        raise ConfigError(f"environment variable {ITERATIVE_SCAN.name} must be one of {', '.join(ITERATIVE_SCANS)}, got {scan!r}")
    queries, k = RECALL_QUERIES.count(environ), RECALL_K.count(environ)
    if queries < 1 or k < 1:
        raise ConfigError(f"{RECALL_QUERIES.name} and {RECALL_K.name} must be at least 1")
    return RecallSettings(queries=queries, k=k, target=target, iterative_scan=scan)


def rto_targets(environ: Mapping[str, str] | None = None) -> tuple[RtoTarget, ...]:
    return parse_rto_targets(RTO_TARGETS.get(environ), RTO_TARGETS.name)


ENV_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def dsn_from_variable(name: str, purpose: str, environ: Mapping[str, str] | None = None) -> str:
    """The DSN held by the environment variable ``name``. Only a variable's NAME is ever
    accepted: a DSN typed where a name belongs would end up in run config or shell history."""
    if not ENV_VAR_NAME.fullmatch(name):
        raise ConfigError(
            f"{purpose} must be the NAME of an environment variable, not a DSN: Dagster keeps run config in plain text"
        )
    value = (os.environ if environ is None else environ).get(name, "")
    if not value:
        raise ConfigError(f"environment variable {name} ({purpose}) is not set")
    return value


def alert_webhook(environ: Mapping[str, str] | None = None) -> str:
    """The webhook URL failed runs and checks post to, from the variable VECTOR_ASSETS_ALERT_WEBHOOK_ENV
    names; empty: no alerts. Only a NAME is accepted there: the URL is a secret."""
    name = ALERT_WEBHOOK_ENV.get(environ)
    if not ENV_VAR_NAME.fullmatch(name):
        raise ConfigError(
            f"environment variable {ALERT_WEBHOOK_ENV.name} must be the NAME of an environment variable "
            "holding the webhook URL, never a URL"
        )
    return ((os.environ if environ is None else environ).get(name) or "").strip()


def restore_target_names(environ: Mapping[str, str] | None = None) -> list[str]:
    """The declared restore targets, in the order given. Each must be a variable's NAME."""
    names = [name.strip() for name in RESTORE_TARGETS.get(environ).split(",") if name.strip()]
    for position, name in enumerate(names, start=1):
        if not ENV_VAR_NAME.fullmatch(name) or name == DEFAULT_TARGET:
            raise ConfigError(
                f"{RESTORE_TARGETS.name} must list NAMES of environment variables, never a DSN and never "
                f"'{DEFAULT_TARGET}'; entry {position} is not one"
            )
    return list(dict.fromkeys(names))


def restore_target_dsn(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The DSN of a declared target; 'default' is the caller's business (the resource's DSN)."""
    if not ENV_VAR_NAME.fullmatch(name):
        return dsn_from_variable(name, "the restore target")  # refuses it without echoing it
    declared = restore_target_names(environ)
    if name not in declared:
        listed = ", ".join([DEFAULT_TARGET, *declared])
        raise ConfigError(f"restore target {name!r} is not declared in {RESTORE_TARGETS.name}; declared: {listed}")
    return dsn_from_variable(name, f"restore target {name}", environ)


def backup_format(environ: Mapping[str, str] | None = None) -> str:
    """VECTOR_ASSETS_FORMAT, checked: a ConfigError names the variable and the formats."""
    from vector_assets.core.sets.formats import FORMATS

    name = FORMAT.get(environ)
    if name not in FORMATS:
        raise ConfigError(f"environment variable {FORMAT.name} is {name!r}, not one of {', '.join(FORMATS)}")
    return name


def part_policy(environ: Mapping[str, str] | None = None):
    """When a backup splits a table into parts, from the environment."""
    from vector_assets.core.sets.writer import PartPolicy

    size_mb, parallel = PART_SIZE_MB.count(environ), PARALLEL_PARTS.count(environ)
    if size_mb < 1 or parallel < 1:
        raise ConfigError(f"{PART_SIZE_MB.name} and {PARALLEL_PARTS.name} must be at least 1")
    return PartPolicy(part_bytes=size_mb * 1_000_000, max_parts=parallel)


def retention_policy(environ: Mapping[str, str] | None = None, offsite: bool = False) -> RetentionPolicy:
    """The retention counts from the environment; unset or empty means the default. The offsite
    root has its own counts, usually longer than the local ones."""
    daily, weekly, monthly = (setting.count(environ) for setting in (OFFSITE_KEEP_COUNTS if offsite else KEEP_COUNTS))
    days = KEEP_TRUNCATED_DAYS.count(environ) if KEEP_TRUNCATED_DAYS.get(environ) else None
    return RetentionPolicy(keep_daily=daily, keep_weekly=weekly, keep_monthly=monthly, keep_truncated_days=days)


def encryption_recipients(environ: Mapping[str, str] | None = None) -> Recipients | None:
    """VECTOR_ASSETS_ENCRYPT_TO, checked (a bad recipient is named by its position); ``None``
    when it is empty and sets are not encrypted."""
    return Recipients.parse(ENCRYPT_TO.get(environ), ENCRYPT_TO.name)


def current_recipients(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The recipients new sets are encrypted to, so the list can mark sets that need a retired
    key; a malformed value marks none (a backup names it, in one line)."""
    try:
        recipients = encryption_recipients(environ)
    except ConfigError:
        return ()
    return recipients.keys if recipients is not None else ()


def identity_file_variable(environ: Mapping[str, str] | None = None) -> str:
    """The NAME of the variable that holds the identity file's path. Only a name is accepted: a
    path or a key written here would end up in a defs.yaml, run config or shell history."""
    name = IDENTITY_FILE_ENV.get(environ)
    if not ENV_VAR_NAME.fullmatch(name):
        raise ConfigError(
            f"environment variable {IDENTITY_FILE_ENV.name} must be the NAME of an environment variable "
            "holding the identity file's path, never a path or a key"
        )
    return name


def identity_file(environ: Mapping[str, str] | None = None) -> IdentityFile:
    """Where the identity is, not the identity: the file is read only when a set is decrypted."""
    variable = identity_file_variable(environ)
    path = ((os.environ if environ is None else environ).get(variable) or "").strip()
    return IdentityFile(Path(path).expanduser() if path else None, variable)


FLAGS = {"true": True, "false": False}


def plaintext_allowed(environ: Mapping[str, str] | None = None) -> bool:
    value = ALLOW_PLAINTEXT.get(environ).lower()
    if value not in FLAGS:
        raise ConfigError(f"environment variable {ALLOW_PLAINTEXT.name} must be true or false, got {value!r}")
    return FLAGS[value]


def encryption_keys(allow_plaintext: bool = False, environ: Mapping[str, str] | None = None) -> EncryptionKeys:
    """What a command encrypts to and decrypts with, from the environment (a store's: its settings
    over it); a bad recipient stops here, before anything is written. ``allow_plaintext`` is the
    command's own say, beside the setting's."""
    allowed = allow_plaintext or plaintext_allowed(environ)
    return EncryptionKeys(encryption_recipients(environ), identity_file(environ), allowed, ENCRYPT_TO.name)


def store_encryption_keys(store: Store, allow_plaintext: bool = False) -> EncryptionKeys:
    """A store's keys, from its settings over the environment. Messages name what to change for
    this store: a declared store's encrypt_to in its defs.yaml (the identity's variable is the
    one its identity_file_env names, already in ``identity_file``)."""
    keys = encryption_keys(allow_plaintext, store.environment())
    if store.declared_in is None:
        return keys
    return replace(keys, encrypt_to_setting=f"encrypt_to in {store.declared_in}")
