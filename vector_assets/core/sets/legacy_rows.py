"""Row counts of legacy sets, remembered once counted, so every view shows the same number.

A legacy set has no manifest, so its rows are known only by parsing its CSVs, which the sensor
does once per set. The counts go into one small file under the root (on disk or in the object
store), each with the file's size and modification time as one listing shows them: a file that
changed since is simply not known any more.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Protocol

from vector_assets.core.errors import BackupWriteError, VectorAssetsError
from vector_assets.core.sets.catalog import BackupSet
from vector_assets.core.sets.naming import Location
from vector_assets.core.sets.storage import FileEntry, Root, SetFolder

STATE_FOLDER = ".vector_assets"
COUNTS_FILE = "legacy_rows.json"


def state_folder(root: Root) -> SetFolder:
    return root.folder_at(STATE_FOLDER)


class LegacySet(Protocol):
    location: Location
    tables: tuple[str, ...]

    def file_name(self, table: str) -> str: ...


def remembered_rows(
    root: Root, backup_set: LegacySet, listing: Mapping[str, FileEntry], known: dict | None = None
) -> dict[str, int] | None:
    """Each table's remembered row count, or None unless every file is known as it is now.
    ``known``: what ``read_remembered`` returned, when the caller asks for many sets."""
    known = read_remembered(root) if known is None else known
    rows = {}
    for table in backup_set.tables:
        name = backup_set.file_name(table)
        entry = known.get(_key(backup_set, name))
        if entry is None or name not in listing or entry["file"] != _identity(listing[name]):
            return None
        rows[table] = int(entry["rows"])
    return rows


def remember_rows(root: Root, backup_set: BackupSet, counted: dict[str, int]) -> None:
    """Add counts to the file; a root that cannot be written to keeps only the sensor's metadata."""
    if not counted:
        return
    listing = backup_set.folder.entries()
    known = read_remembered(root)
    for table, rows in counted.items():
        name = backup_set.file_name(table)
        if name in listing:
            known[_key(backup_set, name)] = {"rows": rows, "file": _identity(listing[name])}
    try:
        folder = state_folder(root)
        folder.prepare()
        folder.write_bytes(COUNTS_FILE, json.dumps(known, indent=1, sort_keys=True).encode())
    except (OSError, BackupWriteError, VectorAssetsError):
        pass


def _key(backup_set: LegacySet, name: str) -> str:
    return f"{backup_set.location.label}/{name}"


def _identity(entry: FileEntry) -> list[int]:
    return [entry.size, entry.modified_ns]


def read_remembered(root: Root) -> dict:
    try:
        data = json.loads(state_folder(root).read_bytes(COUNTS_FILE) or b"{}")
    except (OSError, ValueError, VectorAssetsError):
        return {}
    return data if isinstance(data, dict) else {}
