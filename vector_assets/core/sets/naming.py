"""Names: the only place set file names, folder names and the timestamp pattern are spelled.

Layout (DESIGN section 4)::

    <root>/vector_bak/                      global location
    <root>/<task_id>/vector_bak/            task location, task_id = (task|manual)_YYYYMMDD_HHMMSS
        langchain_pg_collection_<ts>.csv    COPY ... TO STDOUT WITH (FORMAT csv, HEADER)
        langchain_pg_embedding_<ts>.csv     (or .csv.zst, .pgcopy, .pgcopy.zst; a large table in
                                            the newer formats: <table>_<ts>.part0001.<format>, ...)
        vector_backup_log.txt               the earlier tooling's human log, one block per set
        vector_backup_<ts>.json             the manifest, written last
        langchain_pg_embedding_<ts>.index.zst     the row index: key and row digest of every row
        langchain_pg_embedding_<ts>.deleted.zst   an increment's keys deleted since its parent
        langchain_pg_embedding_<ts>.changes.csv   an increment's changed rows (any format, or in
                                                  parts: .changes.part0001.<format>); never named
                                                  like a whole table, so the earlier tooling, which
                                                  loads <table>_<ts>.csv, cannot take it for one

A set without a manifest is a *legacy* set, written by the earlier tooling.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from vector_assets.core.errors import (
    InvalidTaskIdError,
    InvalidTimestampError,
    PathOutsideRootError,
)
from vector_assets.core.sets.encryption import AGE_SUFFIX
from vector_assets.core.sets.formats import FormatNames, format_names
from vector_assets.core.tables import LEGACY_TABLES

if TYPE_CHECKING:
    from vector_assets.core.sets.storage import Root, SetFolder

BACKUP_FOLDER_NAME = "vector_bak"
LOG_FILE_NAME = "vector_backup_log.txt"
TMP_SUFFIX = ".tmp"
# A published file's replacement while it is written (``vector_backup_<ts>.json.swap``): unlike a
# ``.tmp`` it hides nothing, so a crash before the rename leaves the set as it was, listed.
SWAP_SUFFIX = ".swap"
KEY_TAG_PREFIX = ".k"  # a rekeyed file: <table>_<ts>.k<tag>.<rest>.age, <tag> naming its recipients
TIMESTAMP_FORMAT = "%Y%m%d_%H%M%S"
# Patterns guard whole names: always use fullmatch (``$`` would let a trailing newline through).
TIMESTAMP_PATTERN = re.compile(r"\d{8}_\d{6}")
TASK_ID_PATTERN = re.compile(r"(task|manual)_\d{8}_\d{6}")
# Finds the timestamp a name may belong to; ``set_file_names`` then says whether it really does.
SET_FILE_CANDIDATE = re.compile(
    r"(?:" + "|".join(LEGACY_TABLES) + r"|vector_backup)_(?P<ts>\d{8}_\d{6})\..+"
)
ROW_INDEX_SUFFIX = "index.zst"
DELETED_KEYS_SUFFIX = "deleted.zst"
CHANGES_INFIX = "changes"


@functools.lru_cache(maxsize=4)
def newer_data_file(formats: FormatNames) -> re.Pattern[str]:
    """A data file of the newer formats, whole or in parts, an increment's changed rows in any
    format, or a row index or deleted keys file, each encrypted (``.age``) or not; or a full set's
    CSV encrypted. A full set's plain CSV stays one file per table. Spelled from the formats
    registered (``format_names()``), so a new format is recognised."""
    return re.compile(
        r"(?:" + "|".join(LEGACY_TABLES) + r")_(?P<ts>\d{8}_\d{6})"
        r"(?:(?:(?:\.part\d{4})?\.(?:" + _one_of(formats.newer) + ")"
        r"|\." + CHANGES_INFIX + r"(?:\.part\d{4})?\.(?:" + _one_of(formats.every) + ")"
        r"|\.index\.zst|\.deleted\.zst)(?:" + re.escape(AGE_SUFFIX) + r")?"
        r"|(?:\.part\d{4})?\.(?:" + _one_of(formats.every) + ")" + re.escape(AGE_SUFFIX) + ")"
        + "(?:" + re.escape(TMP_SUFFIX) + ")?"
    )


@functools.lru_cache(maxsize=4)
def store_table_file(formats: FormatNames) -> re.Pattern[str]:
    """Any file a set gives a table of a store's own (``data_docs``, ``kb.chunks``), the whole
    CSV included: those tables are not the earlier tooling's, so no operator's file is taken for
    theirs, and only the files a manifest lists are ever deleted with a set."""
    return re.compile(
        r"(?P<table>(?:[A-Za-z_][A-Za-z0-9_$]*\.)?[A-Za-z_][A-Za-z0-9_$]*)_(?P<ts>\d{8}_\d{6})"
        r"(?:(?:\." + CHANGES_INFIX + r")?(?:\.part\d{4})?\.(?:" + _one_of(formats.every) + ")"
        r"|\.index\.zst|\.deleted\.zst)(?:" + re.escape(AGE_SUFFIX) + ")?(?:" + re.escape(TMP_SUFFIX) + ")?"
    )


def _one_of(names: tuple[str, ...]) -> str:
    return "|".join(re.escape(name) for name in names)


def validate_timestamp(timestamp: str) -> str:
    if not isinstance(timestamp, str) or not TIMESTAMP_PATTERN.fullmatch(timestamp):
        raise InvalidTimestampError(
            f"timestamp {timestamp!r} is not of the form YYYYMMDD_HHMMSS (e.g. 20250721_213627)"
        )
    try:
        datetime.strptime(timestamp, TIMESTAMP_FORMAT)
    except ValueError:
        raise InvalidTimestampError(f"timestamp {timestamp!r} is not a real date and time") from None
    return timestamp


def validate_task_id(task_id: str) -> str:
    if not isinstance(task_id, str) or not TASK_ID_PATTERN.fullmatch(task_id):
        raise InvalidTaskIdError(
            f"task id {task_id!r} is not of the form task_YYYYMMDD_HHMMSS or manual_YYYYMMDD_HHMMSS"
        )
    return task_id


def new_timestamp(now: datetime | None = None) -> str:
    return (now or datetime.now()).strftime(TIMESTAMP_FORMAT)


def timestamp_time(timestamp: str) -> datetime:
    return datetime.strptime(timestamp, TIMESTAMP_FORMAT)


def csv_file_name(table: str, timestamp: str) -> str:
    return f"{table}_{timestamp}.csv"


def data_file_name(
    table: str, timestamp: str, format_name: str, part: int | None = None, *, changes: bool = False
) -> str:
    """A table's data file in a set; ``part`` (1, 2, ...) for a table exported in parts;
    ``changes`` for an increment's changed rows."""
    infix = f".{CHANGES_INFIX}" if changes else ""
    return f"{table}_{timestamp}{infix}" + (f".part{part:04d}" if part is not None else "") + f".{format_name}"


def row_index_file_name(table: str, timestamp: str) -> str:
    return f"{table}_{timestamp}.{ROW_INDEX_SUFFIX}"


def deleted_keys_file_name(table: str, timestamp: str) -> str:
    return f"{table}_{timestamp}.{DELETED_KEYS_SUFFIX}"


def manifest_file_name(timestamp: str) -> str:
    return f"vector_backup_{timestamp}.json"


def tmp_name(name: str) -> str:
    return name + TMP_SUFFIX


def swap_name(name: str) -> str:
    return name + SWAP_SUFFIX


def set_file_names(timestamp: str) -> frozenset[str]:
    """Every name a set of this timestamp can have, published or being written, and no other.

    An operator's own file beside a set (a detached signature, a compressed copy, a note) is
    never one of these, so no scan counts it and no prune deletes it.
    """
    published = [csv_file_name(table, timestamp) for table in LEGACY_TABLES] + [manifest_file_name(timestamp)]
    return frozenset(published + [tmp_name(name) for name in published] + [swap_name(manifest_file_name(timestamp))])


def rekeyed_name(name: str, timestamp: str, tag: str) -> str:
    """A rekey's new file, named for its recipients (``tag``):
    ``<table>_<ts>[.k<old>].<rest>.age`` -> ``<table>_<ts>.k<tag>.<rest>.age``."""
    head, rest = name.split(f"_{timestamp}", 1)
    if rest.startswith(KEY_TAG_PREFIX):
        rest = rest[rest.index(".", 1):]
    return f"{head}_{timestamp}{KEY_TAG_PREFIX}{tag}{rest}"


def is_rekeyed_file_of(name: str, timestamp: str) -> bool:
    """A file a rekey writes for the set of ``timestamp``, published or ``.tmp``: its manifest
    names it once swapped; before, a stopped rekey leaves it, for the next rekey or a prune."""
    return f"_{timestamp}{KEY_TAG_PREFIX}" in name and name.removesuffix(TMP_SUFFIX).endswith(AGE_SUFFIX)


def set_timestamp_of(name: str) -> str | None:
    """The timestamp of the set this file belongs to, or None if it belongs to no set."""
    newer = newer_data_file(format_names()).fullmatch(name)
    if newer is not None:
        return newer.group("ts")
    match = SET_FILE_CANDIDATE.fullmatch(name)
    if match is not None and name in set_file_names(match.group("ts")):
        return match.group("ts")
    own = store_table_file(format_names()).fullmatch(name)
    if own is not None and own.group("table") not in LEGACY_TABLES:
        return own.group("ts")
    return None


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

    def folder(self, root: Root) -> SetFolder:
        return root.folder_at(self.label)


def _has_symlink_below(real_root: Path, parts: tuple[str, ...]) -> bool:
    """Whether a symlink is on the way from the (resolved) root down ``parts``: without one, the
    path is already resolved, and one ``lstat`` a part costs less than resolving it whole."""
    path = real_root
    for part in parts:
        path = path / part
        if path.is_symlink():
            return True
    return False


def resolve_inside_root(root: Path, relative: str | Path, real_root: Path | None = None) -> Path:
    """Resolve a path under the root, refusing absolute paths, ``..`` and symlink escapes;
    ``real_root``: the root already resolved, by a caller that resolves many paths under it."""
    relative_path = Path(relative)
    if relative_path.is_absolute():
        raise PathOutsideRootError(f"path {str(relative)!r} is absolute; give it relative to the root {root}")
    if ".." in relative_path.parts:
        raise PathOutsideRootError(f"path {str(relative)!r} contains '..'; it must stay inside the root {root}")
    real_root = Path(root).resolve() if real_root is None else real_root
    candidate = real_root / relative_path
    if _has_symlink_below(real_root, relative_path.parts):
        candidate = candidate.resolve()
    if candidate != real_root and real_root not in candidate.parents:
        raise PathOutsideRootError(
            f"path {str(relative)!r} resolves to {candidate}, outside the root {real_root} (a symlink?)"
        )
    return candidate
