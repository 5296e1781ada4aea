"""The prune command: plan retention, and unless this is a dry run, delete what the plan says.

It is pgBackRest's ``expire`` with its ``--dry-run``: the plan is shown first, and files go
only when the request says ``dry_run=False``. Each set is hidden before its files go (see
``sets/storage.py``), so an interrupted prune never leaves a set that looks complete.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from vector_assets.core.errors import ConfigError, PathOutsideRootError, PruneError
from vector_assets.core.ops.verify import verify_set
from vector_assets.core.sets.catalog import BackupSet, SkippedLocation, scan_root
from vector_assets.core.sets.naming import csv_file_name, manifest_file_name
from vector_assets.core.sets.retention import (
    PlannedSet,
    PrunePlan,
    RetentionPolicy,
    plan_retention,
)
from vector_assets.core.sets.roots import delete_files, open_root
from vector_assets.core.sets.storage import FileEntry, Root, SetFolder
from vector_assets.core.tables import LEGACY_TABLES
from vector_assets.core.units import count_of, human_size


@dataclass(frozen=True)
class PruneRequest:
    """Options for one prune run; ``dry_run`` is on unless the caller turns it off."""

    root: Root | Path | str
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

    def summary(self, how_to_apply: str = "run with --apply") -> str:
        """One line for the CLI and the run's log: what a dry run would delete, or what went."""
        plan = self.plan
        if self.dry_run:
            return (f"dry run ({plan.policy.describe()}): would keep {count_of(len(plan.kept), 'set')} and delete "
                    f"{count_of(len(plan.to_delete), 'set')} ({human_size(plan.bytes_to_free)}); {how_to_apply} to delete")
        return (f"kept {count_of(len(plan.kept), 'set')}, deleted {count_of(len(self.deleted), 'set')} "
                f"({human_size(self.bytes_freed)} freed); policy {plan.policy.describe()}")


def run_prune(request: PruneRequest) -> PruneResult:
    """Plan, and unless this is a dry run, delete the sets the plan marks for deletion."""
    root = open_root(request.root)
    if not root.exists():
        raise ConfigError(f"backup root {root} does not exist or is not a folder (VECTOR_ASSETS_ROOT)")
    skipped: list[SkippedLocation] = []
    sets = scan_root(root, skipped)
    files = files_by_set(sets)
    sizes = {key: sum(entry.size for entry in entries.values()) for key, entries in files.items()}
    plan = plan_retention(sets, request.policy, request.in_use, sizes=sizes, damaged=damaged_newest_sets(sets))
    plan = replace(plan, sets=tuple(replace(planned, files=tuple(files[planned.key])) for planned in plan.sets))
    plan = replace(plan, skipped_locations=tuple(f"{s.label} was not read: {s.reason}" for s in skipped))
    if request.dry_run:
        for planned in plan.to_delete:  # what the real run checks before it deletes, so it fails alike
            _folder_inside_root(planned.backup_set, root)
        return PruneResult(plan=plan, dry_run=True)
    return _delete_planned(plan, root, sets)


def damaged_newest_sets(sets: list[BackupSet]) -> dict[str, str]:
    """Per location, newest first: the sets that fail verification before the first that passes.

    Only these matter to the "keep the newest restorable set" guarantee, and usually that is
    one set read per location. A set passes when its files are present and their sizes,
    sha256 and row counts match the manifest (a legacy set: present and valid CSV).
    """
    damaged: dict[str, str] = {}
    by_location: dict[str, list[BackupSet]] = {}
    for backup_set in sets:
        by_location.setdefault(backup_set.location.label, []).append(backup_set)
    for location_sets in by_location.values():
        for backup_set in sorted(location_sets, key=lambda s: (s.timestamp, s.key), reverse=True):
            failed = [outcome.message for outcome in verify_set(backup_set) if not outcome.passed]
            if not failed:
                break
            damaged[backup_set.key] = failed[0]
    return damaged


def _delete_planned(plan: PrunePlan, root: Root, before: list[BackupSet]) -> PruneResult:
    deleted: list[PlannedSet] = []
    freed = 0
    done: set[tuple[str, str]] = set()
    for planned in plan.to_delete:
        place = (str(planned.backup_set.folder), planned.timestamp)
        try:
            freed += 0 if place in done else delete_set(planned.backup_set, root)
        except PruneError as error:
            error.partial_result = _result_after(plan, root, before, deleted, freed)
            raise
        done.add(place)
        deleted.append(planned)
    return _result_after(plan, root, before, deleted, freed)


def _result_after(
    plan: PrunePlan, root: Root, before: list[BackupSet], deleted: list[PlannedSet], freed: int
) -> PruneResult:
    after = {(str(s.folder), s.timestamp): s.key for s in scan_root(root)}
    after_keys = set(after.values())
    removed = tuple(s.key for s in before if s.key not in after_keys)
    new = tuple(
        after[(str(s.folder), s.timestamp)]
        for s in before
        if after.get((str(s.folder), s.timestamp), s.key) != s.key
    )
    return PruneResult(plan, False, tuple(deleted), freed, removed, new)


def files_by_set(sets: list[BackupSet]) -> dict[str, dict[str, FileEntry]]:
    """Per set, its files (``BackupSet.files_in``) with their sizes; one listing per folder."""
    listings: dict[str, dict[str, FileEntry]] = {}
    files = {}
    for backup_set in sets:
        listing = listings.setdefault(str(backup_set.folder), backup_set.folder.entries())
        files[backup_set.key] = {name: listing[name] for name in backup_set.files_in(listing)}
    return files


def set_files(backup_set: BackupSet) -> list[str]:
    """Names in the set's folder that belong to it, as its size counts them. An operator's file
    that only looks like a data file of the timestamp (a compressed copy of a legacy CSV) is
    not the set's; a file its manifest lists is, under any name (a rekeyed set's
    ``<table>_<ts>.k<tag>.….age``, which no scan takes for the timestamp's)."""
    return backup_set.files_in()


def delete_set(backup_set: BackupSet, root: Root | Path | str) -> int:
    """Delete one set's files, hiding the set first. ``vector_backup_log.txt`` is shared by all
    sets of the folder and is left as it is. Returns the bytes freed."""
    folder = _folder_inside_root(backup_set, open_root(root))
    names = set_files(backup_set)
    if not names:
        return 0
    return delete_files(folder, names, _marker_source(backup_set.timestamp, names), backup_set.key)


def _folder_inside_root(backup_set: BackupSet, root: Root) -> SetFolder:
    """The set's folder as the root resolves it; a set claiming any other folder is refused."""
    expected = backup_set.location.folder(root)
    actual = backup_set.folder
    if str(actual) != str(expected):
        raise PathOutsideRootError(
            f"set {backup_set.key} claims folder {backup_set.folder}, but its location "
            f"{backup_set.location.label} resolves to {expected} under the root {root}"
        )
    return expected


def _marker_source(timestamp: str, names: list[str]) -> str:
    """The file whose rename hides the set: the manifest, else the first CSV, else any file."""
    candidates = [manifest_file_name(timestamp)] + [csv_file_name(t, timestamp) for t in LEGACY_TABLES]
    return next((name for name in candidates if name in names), names[0])
