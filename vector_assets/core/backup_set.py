"""The backup-set side of the core: names, locations, the manifest, and reading a set back.

Layout (DESIGN section 4)::

    <root>/vector_bak/                      global location
    <root>/<task_id>/vector_bak/            task location, task_id = (task|manual)_YYYYMMDD_HHMMSS
        langchain_pg_collection_<ts>.csv    COPY ... TO STDOUT WITH (FORMAT csv, HEADER)
        langchain_pg_embedding_<ts>.csv
        vector_backup_log.txt               the seed's human log, one block per set
        vector_backup_<ts>.json             the manifest, written last

A set without a manifest is a *legacy* set, written by the earlier tooling.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from vector_assets.core.errors import (
    InvalidTaskIdError,
    InvalidTimestampError,
    ManifestError,
    PathOutsideRootError,
)
from vector_assets.core.postgres import Column
from vector_assets.core.tables import MANAGED_TABLES

BACKUP_FOLDER_NAME = "vector_bak"
LOG_FILE_NAME = "vector_backup_log.txt"
MANIFEST_FORMAT_VERSION = 1
TIMESTAMP_FORMAT = "%Y%m%d_%H%M%S"
TIMESTAMP_PATTERN = re.compile(r"^\d{8}_\d{6}$")
TASK_ID_PATTERN = re.compile(r"^(task|manual)_\d{8}_\d{6}$")
HASH_CHUNK_BYTES = 1 << 20

# Vectors of a few thousand dimensions make CSV fields larger than csv's 128 KiB default.
csv.field_size_limit(sys.maxsize)


def validate_timestamp(timestamp: str) -> str:
    if not isinstance(timestamp, str) or not TIMESTAMP_PATTERN.match(timestamp):
        raise InvalidTimestampError(
            f"timestamp {timestamp!r} is not of the form YYYYMMDD_HHMMSS (e.g. 20250721_213627)"
        )
    try:
        datetime.strptime(timestamp, TIMESTAMP_FORMAT)
    except ValueError:
        raise InvalidTimestampError(f"timestamp {timestamp!r} is not a real date and time") from None
    return timestamp


def validate_task_id(task_id: str) -> str:
    if not isinstance(task_id, str) or not TASK_ID_PATTERN.match(task_id):
        raise InvalidTaskIdError(
            f"task id {task_id!r} is not of the form task_YYYYMMDD_HHMMSS or manual_YYYYMMDD_HHMMSS"
        )
    return task_id


def new_timestamp(now: datetime | None = None) -> str:
    return (now or datetime.now()).strftime(TIMESTAMP_FORMAT)


def csv_file_name(table: str, timestamp: str) -> str:
    return f"{table}_{timestamp}.csv"


def manifest_file_name(timestamp: str) -> str:
    return f"vector_backup_{timestamp}.json"


@dataclass(frozen=True)
class Location:
    """A backup folder under the root: the global one (task_id None) or a task's."""

    task_id: str | None = None

    def __post_init__(self) -> None:
        if self.task_id is not None:
            validate_task_id(self.task_id)

    @property
    def label(self) -> str:
        """The folder relative to the root, as operators write it."""
        if self.task_id is None:
            return BACKUP_FOLDER_NAME
        return f"{self.task_id}/{BACKUP_FOLDER_NAME}"

    def folder(self, root: Path) -> Path:
        return resolve_inside_root(root, self.label)


def resolve_inside_root(root: Path, relative: str | Path) -> Path:
    """Resolve a path under the root, refusing absolute paths, ``..`` and symlink escapes."""
    relative_path = Path(relative)
    if relative_path.is_absolute():
        raise PathOutsideRootError(f"path {str(relative)!r} is absolute; give it relative to the root {root}")
    if ".." in relative_path.parts:
        raise PathOutsideRootError(f"path {str(relative)!r} contains '..'; it must stay inside the root {root}")
    real_root = Path(root).resolve()
    candidate = (real_root / relative_path).resolve()
    if candidate != real_root and real_root not in candidate.parents:
        raise PathOutsideRootError(
            f"path {str(relative)!r} resolves to {candidate}, outside the root {real_root} (a symlink?)"
        )
    return candidate


@dataclass(frozen=True)
class TableFile:
    """One table's file in a set, as the manifest records it."""

    table: str
    file: str
    rows: int
    bytes: int
    sha256: str
    columns: list[Column] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "rows": self.rows,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "columns": [asdict(column) for column in self.columns],
        }

    @classmethod
    def from_json(cls, table: str, data: dict[str, Any]) -> TableFile:
        return cls(
            table=table,
            file=str(data["file"]),
            rows=int(data["rows"]),
            bytes=int(data["bytes"]),
            sha256=str(data["sha256"]),
            columns=[Column(name=c["name"], type=c["type"]) for c in data.get("columns", [])],
        )


@dataclass(frozen=True)
class Manifest:
    """The single source of truth for a set. Never holds a password."""

    timestamp: str
    created_at: str
    location: str
    source: dict[str, str]
    server_version: str
    pgvector_version: str | None
    consistent_snapshot: bool
    duration_seconds: float
    tables: dict[str, TableFile]
    format_version: int = MANIFEST_FORMAT_VERSION

    def to_json(self) -> str:
        body = {
            "format_version": self.format_version,
            "timestamp": self.timestamp,
            "created_at": self.created_at,
            "location": self.location,
            "source": self.source,
            "server_version": self.server_version,
            "pgvector_version": self.pgvector_version,
            "consistent_snapshot": self.consistent_snapshot,
            "duration_seconds": round(self.duration_seconds, 3),
            "tables": {name: entry.to_json() for name, entry in self.tables.items()},
        }
        return json.dumps(body, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                format_version=int(data["format_version"]),
                timestamp=str(data["timestamp"]),
                created_at=str(data["created_at"]),
                location=str(data["location"]),
                source=dict(data["source"]),
                server_version=str(data["server_version"]),
                pgvector_version=data.get("pgvector_version"),
                consistent_snapshot=bool(data["consistent_snapshot"]),
                duration_seconds=float(data["duration_seconds"]),
                tables={name: TableFile.from_json(name, entry) for name, entry in data["tables"].items()},
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ManifestError(f"manifest {path} is unreadable: {exc}") from None


@dataclass(frozen=True)
class BackupSet:
    """A complete set found on disk. ``key`` is its partition key in Dagster."""

    key: str
    timestamp: str
    location: Location
    folder: Path
    manifest: Manifest | None

    @property
    def is_legacy(self) -> bool:
        return self.manifest is None

    @property
    def tables(self) -> tuple[str, ...]:
        if self.manifest is not None:
            return tuple(name for name in MANAGED_TABLES if name in self.manifest.tables)
        return MANAGED_TABLES

    def csv_path(self, table: str) -> Path:
        return self.folder / csv_file_name(table, self.timestamp)

    @property
    def manifest_path(self) -> Path:
        return self.folder / manifest_file_name(self.timestamp)

    @property
    def log_path(self) -> Path:
        return self.folder / LOG_FILE_NAME


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def read_csv_header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle), [])


def count_csv_rows(path: Path) -> int:
    """Data records in a CSV with a header, parsed properly: quoted fields may hold newlines."""
    with open(path, newline="", encoding="utf-8") as handle:
        records = sum(1 for _ in csv.reader(handle))
    return max(records - 1, 0)


@dataclass(frozen=True)
class LegacyFileStats:
    """What a manifest would have said about a legacy file, computed by reading it once."""

    rows: int
    sha256: str


def legacy_file_stats(path: Path) -> LegacyFileStats:
    return LegacyFileStats(rows=count_csv_rows(path), sha256=sha256_of_file(path))
