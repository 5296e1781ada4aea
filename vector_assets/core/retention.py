"""Retention: which sets to keep (grandfather-father-son, per location) and deleting the rest.

The policy keeps, in each location (global ``vector_bak/`` and every task folder) separately:

- the newest set of each of the newest ``keep_daily`` distinct days,
- the newest set of each of the newest ``keep_weekly`` ISO weeks,
- the newest set of each of the newest ``keep_monthly`` months,
- always the newest complete set, whatever the counts say,
- every set a running restore or drill mentions.

A set kept for any reason is kept, and the plan records every reason. Deleting is the
pgBackRest ``expire`` idea with its ``--dry-run``: the plan is shown first, and files go only
when the request says ``dry_run=False``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from vector_assets.core.atomic_files import TMP_SUFFIX, fsync_folder
from vector_assets.core.backup_set import (
    TIMESTAMP_FORMAT,
    BackupSet,
    Location,
    csv_file_name,
    manifest_file_name,
    resolve_inside_root,
)
from vector_assets.core.errors import ConfigError, PathOutsideRootError, PruneError
from vector_assets.core.scan import scan_root, timestamps_in_folder
from vector_assets.core.tables import MANAGED_TABLES

KEEP_DAILY_ENV_VAR = "VECTOR_ASSETS_KEEP_DAILY"
KEEP_WEEKLY_ENV_VAR = "VECTOR_ASSETS_KEEP_WEEKLY"
KEEP_MONTHLY_ENV_VAR = "VECTOR_ASSETS_KEEP_MONTHLY"

KEEP = "keep"
DELETE = "delete"

DAILY = "daily"
WEEKLY = "weekly"
MONTHLY = "monthly"
NEWEST = "newest"
IN_USE = "in-use"
REASON_ORDER = (DAILY, WEEKLY, MONTHLY, NEWEST, IN_USE)


@dataclass(frozen=True)
class RetentionPolicy:
    """How many days, ISO weeks and months keep a set, per location (seed 003: 7 / 4 / 12)."""

    keep_daily: int = 7
    keep_weekly: int = 4
    keep_monthly: int = 12

    def __post_init__(self) -> None:
        for name in ("keep_daily", "keep_weekly", "keep_monthly"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"retention {name} must be a whole number >= 0, got {value!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RetentionPolicy:
        """Read the counts from the environment; unset or empty means the default."""
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            keep_daily=_count_from_env(env, KEEP_DAILY_ENV_VAR, defaults.keep_daily),
            keep_weekly=_count_from_env(env, KEEP_WEEKLY_ENV_VAR, defaults.keep_weekly),
            keep_monthly=_count_from_env(env, KEEP_MONTHLY_ENV_VAR, defaults.keep_monthly),
        )

    def describe(self) -> str:
        return f"{self.keep_daily} daily, {self.keep_weekly} weekly, {self.keep_monthly} monthly per location"


def _count_from_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isascii() or not raw.isdigit():
        raise ConfigError(f"environment variable {name} must be a whole number >= 0, got {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class PlannedSet:
    """One set in the plan, what happens to it, and why it is kept (empty when deleted)."""

    backup_set: BackupSet
    action: str
    reasons: tuple[str, ...]
    bytes: int = 0

    @property
    def key(self) -> str:
        return self.backup_set.key

    @property
    def timestamp(self) -> str:
        return self.backup_set.timestamp

    @property
    def location(self) -> str:
        return self.backup_set.location.label


@dataclass(frozen=True)
class PrunePlan:
    """Every set under the root, grouped by location, newest first within each."""

    policy: RetentionPolicy
    sets: tuple[PlannedSet, ...]

    @property
    def kept(self) -> tuple[PlannedSet, ...]:
        return tuple(planned for planned in self.sets if planned.action == KEEP)

    @property
    def to_delete(self) -> tuple[PlannedSet, ...]:
        return tuple(planned for planned in self.sets if planned.action == DELETE)

    @property
    def bytes_to_free(self) -> int:
        return sum(planned.bytes for planned in self.to_delete)


def plan_retention(
    sets: Iterable[BackupSet],
    policy: RetentionPolicy,
    in_use: Collection[str] = (),
    *,
    sizes: Mapping[str, int] | None = None,
    damaged: Collection[str] = (),
) -> PrunePlan:
    """Decide keep or delete for every set. Pure: it reads nothing from disk.

    ``in_use`` holds strings taken from running restores and drills (run config values, tags);
    a set is in use when any of them contains its key or timestamp. ``sizes`` maps keys to
    bytes on disk, for the report. ``damaged`` lists keys of sets missing a file: the "newest"
    guarantee goes to the newest set that can actually be restored.
    """
    by_location: dict[Location, list[BackupSet]] = {}
    for backup_set in sets:
        by_location.setdefault(backup_set.location, []).append(backup_set)
    planned: list[PlannedSet] = []
    for location in sorted(by_location, key=lambda loc: (loc.task_id is not None, loc.task_id or "")):
        reasons = _reasons_in_location(by_location[location], policy, in_use, set(damaged))
        for backup_set, why in reasons:
            action = KEEP if why else DELETE
            planned.append(PlannedSet(backup_set, action, why, (sizes or {}).get(backup_set.key, 0)))
    return PrunePlan(policy, tuple(planned))


def _reasons_in_location(
    sets: list[BackupSet], policy: RetentionPolicy, in_use: Collection[str], damaged: set[str]
) -> list[tuple[BackupSet, tuple[str, ...]]]:
    newest_first = sorted(sets, key=lambda s: (s.timestamp, s.key), reverse=True)
    reasons: dict[str, set[str]] = {s.key: set() for s in newest_first}
    rules: list[tuple[str, Callable[[datetime], object], int]] = [
        (DAILY, lambda t: t.date(), policy.keep_daily),
        (WEEKLY, lambda t: t.isocalendar()[:2], policy.keep_weekly),
        (MONTHLY, lambda t: (t.year, t.month), policy.keep_monthly),
    ]
    for reason, period_of, count in rules:
        for backup_set in newest_per_period(newest_first, period_of, count):
            reasons[backup_set.key].add(reason)
    intact = [s for s in newest_first if s.key not in damaged]
    reasons[(intact or newest_first)[0].key].add(NEWEST)
    for backup_set in newest_first:
        if is_in_use(backup_set, in_use):
            reasons[backup_set.key].add(IN_USE)
    return [(s, tuple(r for r in REASON_ORDER if r in reasons[s.key])) for s in newest_first]


def newest_per_period(
    newest_first: list[BackupSet], period_of: Callable[[datetime], object], count: int
) -> list[BackupSet]:
    """The newest set of each of the newest ``count`` distinct periods."""
    chosen: list[BackupSet] = []
    seen: set[object] = set()
    for backup_set in newest_first:
        period = period_of(datetime.strptime(backup_set.timestamp, TIMESTAMP_FORMAT))
        if period in seen:
            continue
        if len(seen) == count:
            break
        seen.add(period)
        chosen.append(backup_set)
    return chosen


def is_in_use(backup_set: BackupSet, mentions: Collection[str]) -> bool:
    """Generous on purpose: a run naming the timestamp protects that timestamp in every location."""
    return any(backup_set.key in text or backup_set.timestamp in text for text in mentions)


@dataclass(frozen=True)
class PruneRequest:
    """Options for one prune run; ``dry_run`` is on unless the caller turns it off."""

    root: Path
    policy: RetentionPolicy = field(default_factory=RetentionPolicy)
    dry_run: bool = True
    in_use: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PruneResult:
    """The plan, what was deleted, and how partition keys changed because of it.

    Keys are per root (see ``scan_root``): deleting the global set of a timestamp that a task
    folder also has gives that task's set the bare timestamp as its key. ``removed_keys`` no
    longer name any set; ``new_keys`` are the keys such surviving sets carry now.
    """

    plan: PrunePlan
    dry_run: bool
    deleted: tuple[PlannedSet, ...] = ()
    bytes_freed: int = 0
    removed_keys: tuple[str, ...] = ()
    new_keys: tuple[str, ...] = ()


def run_prune(request: PruneRequest) -> PruneResult:
    """Plan, and unless this is a dry run, delete the sets the plan marks for deletion."""
    root = Path(request.root)
    if not root.is_dir():
        raise ConfigError(f"backup root {root} does not exist or is not a folder (VECTOR_ASSETS_ROOT)")
    sets = scan_root(root)
    sizes = {s.key: set_size(s) for s in sets}
    damaged = [s.key for s in sets if not files_present(s)]
    plan = plan_retention(sets, request.policy, request.in_use, sizes=sizes, damaged=damaged)
    if request.dry_run:
        return PruneResult(plan=plan, dry_run=True)
    return _delete_planned(plan, root, sets)


def _delete_planned(plan: PrunePlan, root: Path, before: list[BackupSet]) -> PruneResult:
    deleted: list[PlannedSet] = []
    freed = 0
    done: set[tuple[Path, str]] = set()
    for planned in plan.to_delete:
        place = (Path(planned.backup_set.folder).resolve(), planned.timestamp)
        try:
            freed += 0 if place in done else delete_set(planned.backup_set, root)
        except PruneError as error:
            error.partial_result = _result_after(plan, root, before, deleted, freed)
            raise
        done.add(place)
        deleted.append(planned)
    return _result_after(plan, root, before, deleted, freed)


def _result_after(
    plan: PrunePlan, root: Path, before: list[BackupSet], deleted: list[PlannedSet], freed: int
) -> PruneResult:
    after = {(Path(s.folder), s.timestamp): s.key for s in scan_root(root)}
    after_keys = set(after.values())
    removed = tuple(s.key for s in before if s.key not in after_keys)
    new = tuple(
        after[(Path(s.folder), s.timestamp)]
        for s in before
        if after.get((Path(s.folder), s.timestamp), s.key) != s.key
    )
    return PruneResult(plan, False, tuple(deleted), freed, removed, new)


def set_files(backup_set: BackupSet) -> list[str]:
    """Names in the set's folder that belong to its timestamp (CSVs, manifest, leftovers)."""
    return sorted(timestamps_in_folder(backup_set.folder).get(backup_set.timestamp, set()))


def set_size(backup_set: BackupSet) -> int:
    return sum(_size(backup_set.folder / name) for name in set_files(backup_set))


def _size(path: Path) -> int:
    """Bytes of the file itself (a symlink is not followed); 0 if it went away meanwhile."""
    try:
        return path.lstat().st_size
    except FileNotFoundError:
        return 0


def files_present(backup_set: BackupSet) -> bool:
    return all(backup_set.csv_path(table).is_file() for table in backup_set.tables)


def delete_set(backup_set: BackupSet, root: Path) -> int:
    """Delete one set's files so that no step leaves a complete-looking or damaged-looking set.

    First the manifest (or, for a legacy set, its collection CSV) is renamed to ``*.tmp``:
    the scanner skips any timestamp with a ``.tmp`` file, so from then on the set is neither
    listed nor reported as damaged. Then the other files go, then the ``.tmp``; the folder is
    fsynced after each step. ``vector_backup_log.txt`` is shared by all sets of the folder and
    is left as it is. Returns the bytes freed.
    """
    folder = _folder_inside_root(backup_set, Path(root))
    names = set_files(backup_set)
    if not names:
        return 0
    freed = sum(_size(folder / name) for name in names)
    source = _marker_source(backup_set.timestamp, names)
    marker = folder / (source + TMP_SUFFIX)
    _step(backup_set, folder / source, "nothing was deleted", lambda: os.replace(folder / source, marker))
    hidden = "the set is hidden from scans by " + marker.name + "; remove its remaining files by hand"
    for name in names:
        if name != source:
            _step(backup_set, folder / name, hidden, lambda path=folder / name: path.unlink(missing_ok=True))
    _step(backup_set, marker, hidden, lambda: marker.unlink(missing_ok=True))
    return freed


def _folder_inside_root(backup_set: BackupSet, root: Path) -> Path:
    """The set's folder as the root resolves it; a set claiming any other folder is refused."""
    expected = resolve_inside_root(root, backup_set.location.label)
    actual = Path(backup_set.folder).resolve()
    if actual != expected:
        raise PathOutsideRootError(
            f"set {backup_set.key} claims folder {backup_set.folder}, but its location "
            f"{backup_set.location.label} resolves to {expected} under the root {root}"
        )
    return expected


def _marker_source(timestamp: str, names: list[str]) -> str:
    """The file whose rename hides the set: the manifest, else the first CSV, else any file."""
    candidates = [manifest_file_name(timestamp)] + [csv_file_name(t, timestamp) for t in MANAGED_TABLES]
    return next((name for name in candidates if name in names), names[0])


def _step(backup_set: BackupSet, path: Path, state: str, action: Callable[[], object]) -> None:
    """Run one file operation and make it durable before the next one starts."""
    try:
        action()
        fsync_folder(path.parent)
    except OSError as exc:
        raise PruneError(
            f"cannot delete {path.name} of set {backup_set.key} in {path.parent}: {exc.strerror or exc}; {state}"
        ) from exc
