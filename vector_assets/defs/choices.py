"""Launchpad dropdowns: values Dagster checks before a run is created, so a typo (or a DSN
typed where a name belongs) never becomes a stored run. A store's tables are its own dropdown
(``StoreKeys.table_choice``)."""

import enum

from vector_assets import settings
from vector_assets.core.ops.backup import BACKUP_KINDS
from vector_assets.core.ops.restore import ON_CONFLICT_CHOICES
from vector_assets.core.sets.formats import FORMATS
from vector_assets.defs.store_keys import StoreKeys

OnConflict = enum.Enum("OnConflict", {name: name for name in ON_CONFLICT_CHOICES})
SetFormatChoice = enum.Enum("SetFormat", {name: name for name in FORMATS})
BackupKind = enum.Enum("BackupKind", {name: name for name in BACKUP_KINDS})


def restore_target_choice(keys: StoreKeys) -> type[enum.Enum]:
    """'default' and the targets the store's VECTOR_ASSETS_RESTORE_TARGETS declares, as the code
    location loads."""
    names = [settings.DEFAULT_TARGET, *settings.restore_target_names(keys.store.environment())]
    return enum.Enum(keys.name("RestoreTarget"), {name: name for name in names})


def value_of(choice: enum.Enum | str) -> str:
    """A config value as a plain string: Dagster hands over defaults as given, and chosen values as members."""
    return choice.value if isinstance(choice, enum.Enum) else str(choice)


def values(choices: list[enum.Enum | str]) -> tuple[str, ...]:
    return tuple(value_of(choice) for choice in choices)
