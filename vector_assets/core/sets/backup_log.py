"""The human log ``vector_backup_log.txt``, in the earlier data_pipeline tooling's format (one block per set, as below).

The earlier tooling wrote one log per folder. A folder here can hold many sets, so each set
appends its own block; every block is exactly the earlier tooling's format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from vector_assets.core.sets.manifest import Manifest, TableFile
from vector_assets.core.sets.naming import LOG_FILE_NAME, timestamp_time
from vector_assets.core.tables import COLLECTION_TABLE
from vector_assets.core.units import human_size

if TYPE_CHECKING:
    from vector_assets.core.sets.storage import SetFolder

LOG_HEADER = "=== Vector Table Backup Log ==="


@dataclass(frozen=True)
class TruncateOutcome:
    table: str
    rows_before: int


def format_log_block(
    *,
    backup_time: datetime,
    task_id: str | None,
    database: str,
    duration_seconds: float,
    tables: Mapping[str, TableFile],
    truncated: list[TruncateOutcome] | None = None,
    increment_of: str | None = None,
    fallback: str | None = None,
) -> str:
    """The earlier tooling's human log block; an increment says so, because its rows are only the
    changes since ``increment_of`` and loading them alone would not restore the tables, and a
    full set written instead of an increment says why (``fallback``)."""
    lines = [
        LOG_HEADER,
        f"Backup Time: {backup_time.strftime('%Y-%m-%d %H:%M:%S')}",
        f"Task ID: {task_id or 'global'}",
        f"Database: {database}",
        f"Duration: {duration_seconds:.2f}s",
    ]
    if increment_of is not None:
        lines.append(f"Kind: incremental, the changes since set {increment_of}; restore it with vector-assets, "
                     "which applies the whole chain")
    elif fallback is not None:
        lines.append(f"Kind: full ({fallback})")
    lines += ["", "Tables Backup Status:"]
    for name, entry in tables.items():
        files = entry.file if not entry.parts else f"{entry.file} … ({len(entry.parts)} parts)"
        lines.append(f"✓ {name}: {_rows_text(entry, increment_of)} -> {files} ({human_size(entry.bytes)})")
    lines += ["", "Truncate Status:"]
    if truncated is None:
        lines.append("- Not performed")
    else:
        truncated_names = {outcome.table for outcome in truncated}
        for outcome in truncated:
            lines.append(f"✓ {outcome.table}: TRUNCATED ({outcome.rows_before:,} rows removed)")
        if COLLECTION_TABLE not in truncated_names:
            lines.append(f"- {COLLECTION_TABLE}: SKIPPED (collection table preserved)")
    return "\n".join(lines) + "\n"


def _rows_text(entry: TableFile, increment_of: str | None) -> str:
    if increment_of is None:
        return f"{entry.rows:,} rows"
    deleted = entry.deleted_keys.rows if entry.deleted_keys is not None else 0
    return f"{entry.rows:,} changed rows, {deleted:,} deleted keys, {entry.rows_after:,} rows after"


def rewrite_last_log_block(
    folder: SetFolder, manifest: Manifest, task_id: str | None, truncated: list[TruncateOutcome]
) -> None:
    """Replace the newest block (the set just written) with one that reports the truncate."""
    existing = read_log_text(folder)
    head, _, _ = existing.rpartition(LOG_HEADER)
    block = format_log_block(
        backup_time=timestamp_time(manifest.timestamp),
        task_id=task_id,
        database=manifest.source.get("database", ""),
        duration_seconds=manifest.duration_seconds,
        tables=manifest.tables,
        truncated=truncated,
    )
    folder.write_bytes(LOG_FILE_NAME, (head + block).encode("utf-8"))


def append_log_block(folder: SetFolder, block: str) -> None:
    """Append a block, rewriting the whole (small) log atomically."""
    existing = read_log_text(folder)
    separator = "\n" if existing and not existing.endswith("\n\n") else ""
    folder.write_bytes(LOG_FILE_NAME, (existing + separator + block).encode("utf-8"))


def read_log_text(folder: SetFolder) -> str:
    return (folder.read_bytes(LOG_FILE_NAME) or b"").decode("utf-8")
