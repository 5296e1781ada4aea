"""Discovery: which sets are under the root now, re-reading only folders that changed.

The sensor keeps a ``DiscoveryCursor`` between ticks. A folder whose fingerprint (on disk the
directory's mtime and entry count, from one ``stat`` and one listing; in an object store one
listing's names, sizes and times) is unchanged reuses the timestamps the cursor remembers, so
a tick over an unchanged root reads no file at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from vector_assets.core.sets.catalog import (
    SkippedLocation,
    backup_locations,
    complete_timestamps_in,
    partition_keys,
)
from vector_assets.core.sets.naming import Location
from vector_assets.core.sets.roots import Root, open_root

CURSOR_VERSION = 1


@dataclass
class FolderState:
    fingerprint: str | None
    timestamps: list[str]


@dataclass
class DiscoveryCursor:
    """What the last tick saw: per folder its fingerprint and complete timestamps, and which
    sets (``<location>/<timestamp>``) were reported under which partition key."""

    folders: dict[str, FolderState] = field(default_factory=dict)
    reported: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({
            "version": CURSOR_VERSION,
            "folders": {label: [state.fingerprint, state.timestamps] for label, state in self.folders.items()},
            "reported": self.reported,
        }, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> DiscoveryCursor:
        """An unreadable or old cursor means: start afresh (the next tick rescans everything)."""
        try:
            data = json.loads(text or "")
            if data.get("version") != CURSOR_VERSION:
                return cls()
            folders = {label: FolderState(fp, list(ts)) for label, (fp, ts) in data["folders"].items()}
            return cls(folders, dict(data["reported"]))
        except (ValueError, TypeError, KeyError, AttributeError):
            return cls()


@dataclass(frozen=True)
class FoundSet:
    key: str
    location: Location
    timestamp: str

    @property
    def identity(self) -> str:
        return f"{self.location.label}/{self.timestamp}"


@dataclass
class Discovery:
    """The sets on disk now, and the folder states to remember for the next tick."""

    sets: list[FoundSet]
    folders: dict[str, FolderState]
    rescanned: list[str]
    skipped: list[SkippedLocation] = field(default_factory=list)

    def unreported(self, cursor: DiscoveryCursor) -> list[FoundSet]:
        """Sets not yet reported under their current key, newest first."""
        fresh = [found for found in self.sets if cursor.reported.get(found.identity) != found.key]
        return sorted(fresh, key=lambda found: (found.timestamp, found.key), reverse=True)


def discover(root: Root | Path | str, cursor: DiscoveryCursor) -> Discovery:
    root = open_root(root)
    skipped: list[SkippedLocation] = []
    locations = backup_locations(root, skipped)
    folders: dict[str, FolderState] = {}
    rescanned = []
    for location in locations:
        folder = location.folder(root)
        fingerprint = folder.fingerprint()  # taken before listing: a later change shows next tick
        known = cursor.folders.get(location.label)
        if known is not None and known.fingerprint == fingerprint:
            folders[location.label] = known
            continue
        folders[location.label] = FolderState(fingerprint, [ts for ts, _ in complete_timestamps_in(folder)])
        rescanned.append(location.label)
    keyed = partition_keys([(location, folders[location.label].timestamps) for location in locations])
    return Discovery([FoundSet(key, location, ts) for key, location, ts in keyed], folders, rescanned, skipped)
