"""The manifest ``vector_backup_<ts>.json``: the single source of truth for a set.

Backup writes it last; restore, the checks, the drill and the catalog read it. A format
version this code does not know is refused, never guessed at.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from vector_assets.core.errors import ManifestError
from vector_assets.core.pg.catalog import Column, GeneratedColumn
from vector_assets.core.pg.data_checks import DataChecks
from vector_assets.core.pg.ddl import TableDefinition
from vector_assets.core.sets.encryption import EncryptedFile
from vector_assets.core.sets.formats import CSV, set_format

if TYPE_CHECKING:
    from vector_assets.core.sets.storage import FileEntry, SetFolder

MANIFEST_FORMAT_VERSION = 1
# Version 2: data files in other formats than CSV, or in parts; version 1 readers refuse it.
NEWER_FORMATS_VERSION = 2
# Version 3: an increment, which only restores on top of its chain; older readers must refuse it.
INCREMENT_VERSION = 3
# What made a set: a backup, or the safety set a restore or a truncate wrote before changing rows.
FULL = "full"
PRE_RESTORE = "pre_restore"
PRE_TRUNCATE = "pre_truncate"
INCREMENTAL = "incremental"  # only the rows changed since its parent set, and the keys deleted
SET_KINDS = (FULL, INCREMENTAL, PRE_RESTORE, PRE_TRUNCATE)
SAFETY_KINDS = (PRE_RESTORE, PRE_TRUNCATE)  # written of what a restore or a truncate was about to change
# Version 4: files encrypted (age); older readers would take them for plaintext, so they must refuse it.
ENCRYPTED_VERSION = 4
# Version 5: an increment of a table whose primary key has several columns; older readers keyed
# increments by one column, so they must refuse it (a full set's row index of such a key they ignore).
COMPOSITE_KEY_VERSION = 5
KNOWN_FORMAT_VERSIONS = (1, 2, 3, 4, 5)
CSV_FORMAT = CSV.name  # what a manifest that names no format (version 1) means


class StoredBytes:
    """What a file's record says about its bytes as stored (``bytes``, ``sha256``: what verify and
    replication compare) and as read (``plain_*``: decrypted, if the file is encrypted)."""

    bytes: int
    sha256: str
    encrypted: EncryptedFile | None

    @property
    def plain_sha256(self) -> str:
        return self.encrypted.plaintext_sha256 if self.encrypted else self.sha256

    @property
    def plain_bytes(self) -> int:
        return self.encrypted.plaintext_bytes if self.encrypted else self.bytes


@dataclass(frozen=True)
class FilePart(StoredBytes):
    """One data file: a whole table, or one part of a table exported in parts."""

    file: str
    rows: int
    bytes: int
    sha256: str
    encrypted: EncryptedFile | None = None

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "rows": self.rows, "bytes": self.bytes, "sha256": self.sha256,
                **(self.encrypted.to_json() if self.encrypted else {})}


@dataclass(frozen=True)
class RowIndex(StoredBytes):
    """A set's key -> row digest file, sorted by key, covering every row of the table at the
    set's snapshot; ``content_digest`` sums the row digests, so a restored chain can be compared
    with the table as it was, and ``key`` names the key columns it is sorted on (in JSON a
    name for one column, as every set before composite keys has it; a list for several)."""

    file: str
    rows: int
    bytes: int
    sha256: str
    key: tuple[str, ...]
    content_digest: str
    encrypted: EncryptedFile | None = None

    @property
    def composite_key(self) -> bool:
        return len(self.key) > 1

    def to_json(self) -> dict[str, Any]:
        key = list(self.key) if self.composite_key else self.key[0]
        body = {"file": self.file, "rows": self.rows, "bytes": self.bytes, "sha256": self.sha256, "key": key,
                "content_digest": self.content_digest}
        return {**body, **(self.encrypted.to_json() if self.encrypted else {})}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RowIndex:
        key = data["key"]
        if not key:
            raise ValueError("a row index names no key column")
        return cls(
            str(data["file"]), int(data["rows"]), int(data["bytes"]), str(data["sha256"]),
            (key,) if isinstance(key, str) else tuple(str(column) for column in key),
            str(data["content_digest"]), EncryptedFile.from_json(data),
        )


@dataclass(frozen=True)
class TableFile:
    """One table's file in a set, as the manifest records it."""

    table: str
    file: str
    rows: int
    bytes: int
    sha256: str
    columns: list[Column] = field(default_factory=list)
    generated_columns: list[GeneratedColumn] = field(default_factory=list)  # not in the file
    definition: TableDefinition | None = None  # sets made before 0.3 have none
    parts: list[FilePart] = field(default_factory=list)  # a table exported in parts; else empty
    copy_seconds: float | None = None  # this table's own COPY; None in sets from before 0.3
    rows_index: RowIndex | None = None  # key -> row digest of every row; what the next increment compares
    deleted_keys: FilePart | None = None  # an increment's keys deleted since its parent
    encrypted: EncryptedFile | None = None  # the one data file's, when the table is not in parts
    data_checks: DataChecks | None = None  # a vector table's counts of broken rows, at the set's snapshot

    @property
    def rows_after(self) -> int:
        """Rows the table has once this set (and, for an increment, its chain) is restored."""
        return self.rows_index.rows if self.rows_index is not None else self.rows

    @property
    def stored_files(self) -> list[str]:
        """Every file of this table in the set: data, and the row index and deleted keys."""
        extra = [part.file for part in (self.rows_index, self.deleted_keys) if part is not None]
        return [piece.file for piece in self.pieces] + extra

    @property
    def pieces(self) -> list[FilePart]:
        """The table's data files in load order: its parts, or its one file."""
        return self.parts or [FilePart(self.file, self.rows, self.bytes, self.sha256, self.encrypted)]

    @property
    def encrypted_files(self) -> list[EncryptedFile]:
        records = [piece.encrypted for piece in self.pieces] + [
            extra.encrypted for extra in (self.rows_index, self.deleted_keys) if extra is not None
        ]
        return [record for record in records if record is not None]

    def to_json(self) -> dict[str, Any]:
        body = {
            "file": self.file,
            "rows": self.rows,
            "bytes": self.bytes,
            "sha256": self.sha256,
            **(self.encrypted.to_json() if self.encrypted else {}),
            "columns": [asdict(column) for column in self.columns],
            "generated_columns": [asdict(column) for column in self.generated_columns],
        }
        if self.definition is not None:
            body["definition"] = self.definition.to_json()
        if self.parts:
            body["parts"] = [part.to_json() for part in self.parts]
        if self.copy_seconds is not None:
            body["copy_seconds"] = round(self.copy_seconds, 3)
        if self.rows_index is not None:
            body["rows_index"] = self.rows_index.to_json()
            body["rows_after"] = self.rows_index.rows
        if self.deleted_keys is not None:
            body["deleted_keys"] = self.deleted_keys.to_json()
        if self.data_checks is not None:
            body["data_checks"] = self.data_checks.to_json()
        return body

    @classmethod
    def from_json(cls, table: str, data: dict[str, Any]) -> TableFile:
        return cls(
            table=table,
            file=str(data["file"]),
            rows=int(data["rows"]),
            bytes=int(data["bytes"]),
            sha256=str(data["sha256"]),
            columns=[Column(name=c["name"], type=c["type"]) for c in data.get("columns", [])],
            generated_columns=[GeneratedColumn(**c) for c in data.get("generated_columns", [])],
            definition=TableDefinition.from_json(data["definition"]) if "definition" in data else None,
            parts=[_file_part(p) for p in data.get("parts", [])],
            copy_seconds=float(data["copy_seconds"]) if data.get("copy_seconds") is not None else None,
            rows_index=RowIndex.from_json(data["rows_index"]) if data.get("rows_index") else None,
            deleted_keys=_file_part(data["deleted_keys"]) if data.get("deleted_keys") else None,
            encrypted=EncryptedFile.from_json(data),
            data_checks=DataChecks.from_json(data["data_checks"]) if data.get("data_checks") else None,
        )


def _file_part(data: dict[str, Any]) -> FilePart:
    return FilePart(str(data["file"]), int(data["rows"]), int(data["bytes"]), str(data["sha256"]), EncryptedFile.from_json(data))


@dataclass(frozen=True)
class Manifest:
    """What a set holds and where it came from. Never holds a password."""

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
    kind: str = FULL
    format: str = CSV_FORMAT  # the data files' format, one of formats.FORMATS
    parent: str | None = None  # an increment's parent set: a timestamp in the same location
    fallback: str | None = None  # why an incremental backup wrote a full set instead
    # A collection restore's pre_restore set: names the target did not hold when it was taken.
    # Restoring one of them from this set (replace mode) puts it back as it was: absent.
    absent_collections: tuple[str, ...] = ()
    store: str | None = None  # the store whose tables these are, and its layout (sets before 0.9: None)
    layout: str | None = None

    @property
    def is_increment(self) -> bool:
        return self.kind == INCREMENTAL

    def with_files(self, replaced: dict[str, StoredBytes]) -> Manifest:
        """This manifest with some files' records replaced (old name -> new record), as a rekey
        writes it; a table in parts gets its total bytes again."""
        def swap(record):
            return replaced.get(record.file, record) if record is not None else None

        tables = {}
        for name, entry in self.tables.items():
            parts = [swap(part) for part in entry.parts]
            whole = swap(FilePart(entry.file, entry.rows, entry.bytes, entry.sha256, entry.encrypted))
            tables[name] = replace(
                entry, parts=parts, file=parts[0].file if parts else whole.file,
                bytes=sum(part.bytes for part in parts) if parts else whole.bytes,
                sha256="" if parts else whole.sha256, encrypted=None if parts else whole.encrypted,
                rows_index=swap(entry.rows_index), deleted_keys=swap(entry.deleted_keys),
            )
        return replace(self, tables=tables)

    def file_records(self) -> dict[str, StoredBytes]:
        """Each stored file of the set by name: what was recorded about its bytes."""
        return {piece.file: piece for entry in self.tables.values() for piece in
                [*entry.pieces, *(extra for extra in (entry.rows_index, entry.deleted_keys) if extra is not None)]}

    @property
    def recipients(self) -> tuple[str, ...]:
        """Every recipient some file of the set is encrypted to; empty for a plaintext set. Public
        keys: the inventory shows which identity a set needs without reading a file."""
        keys = (key for entry in self.tables.values() for record in entry.encrypted_files for key in record.recipients)
        return tuple(dict.fromkeys(keys))

    @property
    def encrypted(self) -> bool:
        return bool(self.recipients)

    def to_json(self) -> str:
        body = {
            "format_version": self.format_version,
            "timestamp": self.timestamp,
            "kind": self.kind,
            **({"parent": self.parent} if self.parent else {}),
            **({"fallback": self.fallback} if self.fallback else {}),
            **({"absent_collections": list(self.absent_collections)} if self.absent_collections else {}),
            **({"store": self.store, "layout": self.layout} if self.store else {}),
            "format": self.format,
            "codec": set_format(self.format).codec_name,
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
    def read(cls, folder: SetFolder, name: str) -> Manifest:
        path = folder.locator(name)
        try:
            body = folder.read_bytes(name)
            if body is None:
                raise FileNotFoundError("no such file")
            data = json.loads(body.decode("utf-8"))
            version = int(data["format_version"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ManifestError(f"manifest {path} is unreadable: {exc}") from None
        if version not in KNOWN_FORMAT_VERSIONS:
            raise ManifestError(
                f"manifest {path} has format version {version}, which this version of vector_assets "
                f"does not know (it reads {', '.join(map(str, KNOWN_FORMAT_VERSIONS))}); upgrade to read it"
            )
        try:
            return cls._from_json(data)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ManifestError(f"manifest {path} is unreadable: {exc}") from None

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            format_version=int(data["format_version"]),
            timestamp=str(data["timestamp"]),
            kind=str(data.get("kind", FULL)),
            parent=data.get("parent"),
            fallback=data.get("fallback"),
            absent_collections=tuple(str(name) for name in data.get("absent_collections", [])),
            format=str(data.get("format", CSV_FORMAT)),
            store=data.get("store"),
            layout=data.get("layout"),
            created_at=str(data["created_at"]),
            location=str(data["location"]),
            source=dict(data["source"]),
            server_version=str(data["server_version"]),
            pgvector_version=data.get("pgvector_version"),
            consistent_snapshot=bool(data["consistent_snapshot"]),
            duration_seconds=float(data["duration_seconds"]),
            tables={name: TableFile.from_json(name, entry) for name, entry in data["tables"].items()},
        )


class ManifestReads:
    """Manifests read once, by where they are and how their folder's listing showed them.

    One sensor tick needs a new set's manifest three times: its discovery (for the kind its key
    carries), its report and the inventory. A manifest listed otherwise since (a rekey rewrote
    it) is read again; an unreadable one is not remembered.
    """

    def __init__(self) -> None:
        self._read: dict[tuple[str, FileEntry], Manifest] = {}

    def read(self, folder: SetFolder, name: str, listed: FileEntry) -> Manifest:
        place = (str(folder.locator(name)), listed)
        if place not in self._read:
            self._read[place] = Manifest.read(folder, name)
        return self._read[place]
