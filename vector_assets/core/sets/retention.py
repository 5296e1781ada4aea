"""Retention planning: which sets to keep (grandfather-father-son, per location).

The policy keeps, in each location (global ``vector_bak/`` and every task folder) separately:

- the newest set of each of the newest ``keep_daily`` distinct days,
- the newest set of each of the newest ``keep_weekly`` ISO weeks,
- the newest set of each of the newest ``keep_monthly`` months,
- always the newest complete set, whatever the counts say,
- every set a running restore or drill mentions,
- a restore's ``pre_restore`` set for 7 days, and a guarded truncate's ``pre_truncate`` set (the
  only copy of the rows it removed) for as long as ``keep_truncated_days`` says: forever unless
  the operator sets it. The counts never delete either kind, and neither takes a count's place,
- every ancestor of an increment kept for any of these reasons (its parent, the parent's
  parent, back to a set that is no increment), so a kept increment always restores.

A set kept for any reason is kept, and the plan records every reason. The plan is pure: the
prune command (``core/ops/prune.py``) shows it first and deletes only when asked.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from vector_assets.core.errors import ConfigError
from vector_assets.core.sets.catalog import BackupSet
from vector_assets.core.sets.catalog import is_safety_set as is_safety_manifest  # by manifest; here by set
from vector_assets.core.sets.manifest import PRE_RESTORE, PRE_TRUNCATE
from vector_assets.core.sets.naming import Location, timestamp_time

KEEP = "keep"
DELETE = "delete"

DAILY = "daily"
WEEKLY = "weekly"
MONTHLY = "monthly"
NEWEST = "newest"
IN_USE = "in-use"
SAFETY = "safety set, kept 7 days"
ANCESTOR = "ancestor of"  # "ancestor of <ts>": a kept increment restores on top of this set
TRUNCATED = "holds truncated rows, kept"  # "… kept until <date>" or "… kept until told otherwise"
REASON_ORDER = (DAILY, WEEKLY, MONTHLY, NEWEST, IN_USE, SAFETY)
# A restore's safety set (what it replaced) is kept this long, whatever the counts say. It is not
# a scheduled backup, so it never takes a daily, weekly, monthly or newest place from one.
SAFETY_SET_DAYS = 7


@dataclass(frozen=True)
class RetentionPolicy:
    """How many days, ISO weeks and months keep a set, per location (by default 7 / 4 / 12)."""

    keep_daily: int = 7
    keep_weekly: int = 4
    keep_monthly: int = 12
    # Days a pre_truncate set is kept; None keeps it until the operator sets a number.
    keep_truncated_days: int | None = None

    def __post_init__(self) -> None:
        for name in ("keep_daily", "keep_weekly", "keep_monthly"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"retention {name} must be a whole number >= 0, got {value!r}")
        days = self.keep_truncated_days
        if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 0):
            raise ConfigError(f"retention keep_truncated_days must be a whole number >= 0 or unset, got {days!r}")

    def describe(self) -> str:
        truncated = "forever" if self.keep_truncated_days is None else f"{self.keep_truncated_days} days"
        return (
            f"{self.keep_daily} daily, {self.keep_weekly} weekly, {self.keep_monthly} monthly per location; "
            f"truncated rows (pre_truncate sets) {truncated}"
        )

    def truncated_rows_kept_until(self, backup_set: BackupSet) -> datetime | None:
        """When a pre_truncate set may go; None: not before the operator sets keep_truncated_days."""
        if self.keep_truncated_days is None:
            return None
        return timestamp_time(backup_set.timestamp) + timedelta(days=self.keep_truncated_days)


@dataclass(frozen=True)
class PlannedSet:
    """One set in the plan, what happens to it, and why it is kept (empty when deleted)."""

    backup_set: BackupSet
    action: str
    reasons: tuple[str, ...]
    bytes: int = 0
    note: str = ""  # why a set is damaged, or why an older set is kept as the newest intact one
    files: tuple[str, ...] = ()  # the set's files that deleting it removes, which ``bytes`` counts

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
    skipped_locations: tuple[str, ...] = ()  # locations not read (outside the root), and why

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
    damaged: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> PrunePlan:
    """Decide keep or delete for every set. Pure: it reads nothing from disk.

    ``in_use`` holds strings taken from running restores and drills (run config values, tags);
    a set is in use when any of them contains its key or timestamp. ``sizes`` maps keys to
    bytes on disk, for the report. ``damaged`` maps keys of sets that cannot be restored as they
    are (a file missing, a size or sha256 not as the manifest says) to what is wrong: the
    "newest" guarantee goes to the newest set that can actually be restored.
    """
    by_location: dict[Location, list[BackupSet]] = {}
    for backup_set in sets:
        by_location.setdefault(backup_set.location, []).append(backup_set)
    planned: list[PlannedSet] = []
    for location in sorted(by_location, key=lambda loc: (loc.task_id is not None, loc.task_id or "")):
        reasons = _reasons_in_location(
            by_location[location], policy, in_use, dict(damaged or {}), now or datetime.now()
        )
        for backup_set, why, note in reasons:
            action = KEEP if why else DELETE
            planned.append(PlannedSet(backup_set, action, why, (sizes or {}).get(backup_set.key, 0), note))
    return PrunePlan(policy, tuple(planned))


def _reasons_in_location(
    sets: list[BackupSet], policy: RetentionPolicy, in_use: Collection[str], damaged: dict[str, str], now: datetime
) -> list[tuple[BackupSet, tuple[str, ...], str]]:
    everything = sorted(sets, key=lambda s: (s.timestamp, s.key), reverse=True)
    reasons: dict[str, set[str]] = {s.key: set() for s in everything}
    for backup_set in everything:
        if is_restore_safety_set(backup_set) and now - timestamp_time(backup_set.timestamp) < timedelta(days=SAFETY_SET_DAYS):
            reasons[backup_set.key].add(SAFETY)
    newest_first = [s for s in everything if not is_safety_set(s)] or everything
    rules: list[tuple[str, Callable[[datetime], object], int]] = [
        (DAILY, lambda t: t.date(), policy.keep_daily),
        (WEEKLY, lambda t: t.isocalendar()[:2], policy.keep_weekly),
        (MONTHLY, lambda t: (t.year, t.month), policy.keep_monthly),
    ]
    for reason, period_of, count in rules:
        for backup_set in newest_per_period(newest_first, period_of, count):
            reasons[backup_set.key].add(reason)
    notes = {key: f"damaged: {why}" for key, why in damaged.items()}
    intact = [s for s in newest_first if s.key not in damaged]
    newest_intact = (intact or newest_first)[0]
    reasons[newest_intact.key].add(NEWEST)
    newer_damaged = [s.key for s in newest_first if s.timestamp > newest_intact.timestamp]
    if intact and newer_damaged:
        notes[newest_intact.key] = f"kept as the newest intact set: newer {', '.join(newer_damaged)} damaged"
    for backup_set in everything:
        if is_in_use(backup_set, in_use):
            reasons[backup_set.key].add(IN_USE)
    ordered = {s.key: tuple(r for r in REASON_ORDER if r in reasons[s.key]) for s in everything}
    for backup_set in everything:
        if holds_truncated_rows(backup_set):
            until = policy.truncated_rows_kept_until(backup_set)
            if until is None:
                ordered[backup_set.key] += (f"{TRUNCATED} until VECTOR_ASSETS_KEEP_TRUNCATED_DAYS is set",)
            elif now < until:
                ordered[backup_set.key] += (f"{TRUNCATED} until {until:%Y-%m-%d %H:%M}",)
    for key, why in ancestor_reasons(everything, ordered).items():
        ordered[key] += (why,)
    return [(s, ordered[s.key], notes.get(s.key, "")) for s in everything]


def ancestor_reasons(newest_first: list[BackupSet], kept: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    """Per set that a kept increment of this location depends on: "ancestor of <ts>", naming
    the newest such increment (it keeps the set longest), and how many more there are."""
    by_timestamp = {s.timestamp: s for s in newest_first}
    dependents: dict[str, list[str]] = {}
    for backup_set in newest_first:
        if kept[backup_set.key]:
            for ancestor in ancestors_in(backup_set, by_timestamp):
                dependents.setdefault(ancestor.key, []).append(backup_set.timestamp)
    return {
        key: f"{ANCESTOR} {children[0]}" + (f" and {len(children) - 1} more" if len(children) > 1 else "")
        for key, children in dependents.items()
    }


def ancestors_in(backup_set: BackupSet, by_timestamp: Mapping[str, BackupSet]) -> Iterator[BackupSet]:
    """The sets an increment restores on top of, parent first, from the manifests the scan
    read, by ``chains.chain_of``'s rule (each parent in the same location, and older), without
    reading every manifest of the chain again. A broken chain yields its links up to the one
    missing; what lies beyond it cannot be told without that link's manifest."""
    child = backup_set
    while child.manifest is not None and child.manifest.is_increment:
        parent = by_timestamp.get(child.manifest.parent or "")
        if parent is None or parent.timestamp >= child.timestamp:
            return
        yield parent
        child = parent


def is_safety_set(backup_set: BackupSet) -> bool:
    """A set a restore or a truncate wrote; it never takes a daily, weekly or monthly place."""
    return is_safety_manifest(backup_set.manifest)


def is_restore_safety_set(backup_set: BackupSet) -> bool:
    return backup_set.manifest is not None and backup_set.manifest.kind == PRE_RESTORE


def holds_truncated_rows(backup_set: BackupSet) -> bool:
    """A guarded truncate's set: the only copy of the rows it removed."""
    return backup_set.manifest is not None and backup_set.manifest.kind == PRE_TRUNCATE


def newest_per_period(
    newest_first: list[BackupSet], period_of: Callable[[datetime], object], count: int
) -> list[BackupSet]:
    """The newest set of each of the newest ``count`` distinct periods."""
    chosen: list[BackupSet] = []
    seen: set[object] = set()
    for backup_set in newest_first:
        period = period_of(timestamp_time(backup_set.timestamp))
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
