"""How a set's kind, parent and changes read, in the same words in the CLI, the run log and
the inventory."""

from __future__ import annotations

from vector_assets.core.sets.manifest import Manifest, TableFile
from vector_assets.core.units import count_of


def kind_text(manifest: Manifest | None) -> str:
    """``full``, ``incremental on <parent>``, ``pre_restore``…; ``legacy`` without a manifest."""
    if manifest is None:
        return "legacy"
    if manifest.is_increment:
        return f"incremental on {manifest.parent}"
    return manifest.kind


def changes_text(entry: TableFile) -> str:
    """An increment's table: what its files hold, and what the table has once it is restored."""
    return (f"{count_of(entry.rows, 'row')} changed or added, {count_of(keys_deleted(entry), 'key')} deleted, "
            f"{count_of(entry.rows_after, 'row')} after")


def keys_deleted(entry: TableFile) -> int:
    """An increment's table: keys deleted since its parent (0 for any other set)."""
    return entry.deleted_keys.rows if entry.deleted_keys is not None else 0
