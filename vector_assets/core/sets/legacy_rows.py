"""Row counts of legacy sets, remembered once counted, so every view shows the same number.

A legacy set has no manifest, so its rows are known only by parsing its CSVs, which the sensor
does once per set. The counts go into one small file under the root, each with the file's size
and modification time: a file that changed since is simply not known any more.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from vector_assets.core.errors import BackupWriteError
from vector_assets.core.sets.storage import write_bytes_atomically

STATE_FOLDER = ".vector_assets"
COUNTS_FILE = "legacy_rows.json"


def counts_path(root: Path) -> Path:
    return root / STATE_FOLDER / COUNTS_FILE


def _identity(path: Path) -> list[int]:
    status = path.stat()
    return [status.st_size, status.st_mtime_ns]


def remembered_rows(root: Path, files: Mapping[str, Path]) -> dict[str, int] | None:
    """Each table's remembered row count, or None unless every file is known as it is now."""
    known = _read(root)
    rows = {}
    for table, path in files.items():
        entry = known.get(_name(root, path))
        try:
            if entry is None or entry["file"] != _identity(path):
                return None
        except OSError:
            return None
        rows[table] = int(entry["rows"])
    return rows


def remember_rows(root: Path, counted: Mapping[Path, int]) -> None:
    """Add counts to the file; a root that cannot be written to keeps only the sensor's metadata."""
    if not counted:
        return
    known = _read(root)
    known.update({_name(root, path): {"rows": rows, "file": _identity(path)} for path, rows in counted.items()})
    try:
        counts_path(root).parent.mkdir(exist_ok=True)
        write_bytes_atomically(counts_path(root), json.dumps(known, indent=1, sort_keys=True).encode())
    except (OSError, BackupWriteError):
        pass


def _name(root: Path, path: Path) -> str:
    return path.resolve().relative_to(root.resolve()).as_posix()


def _read(root: Path) -> dict:
    try:
        data = json.loads(counts_path(root).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
