"""Discovery: which sets are under the root now, re-reading only folders that changed.

The sensor keeps a ``DiscoveryCursor`` between ticks. A folder whose fingerprint (on disk the
directory's mtime and entry count, from one ``stat`` and one listing; in an object store one
listing's names, sizes and times) is unchanged reuses the timestamps the cursor remembers, so
a tick over an unchanged root reads no file at all. A changed folder is listed again, and only
its new sets' manifests are read (for the kind their partition key carries).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from vector_assets.core.errors import ManifestError
from vector_assets.core.sets.catalog import (
    SkippedLocation,
    backup_folders,
    complete_timestamps_in,
    key_label,
    partition_keys,
)
from vector_assets.core.sets.manifest import ManifestReads
from vector_assets.core.sets.naming import Location, manifest_file_name
from vector_assets.core.sets.roots import open_root
from vector_assets.core.sets.storage import FileEntry, Root, SetFolder

CURSOR_VERSION = 3
# A version 1 cursor has no key labels: its folders are listed again. Version 2 names every
# reported set; version 3 only those not reported under the key their folder state gives them.
READABLE_CURSOR_VERSIONS = (1, 2, 3)


@dataclass
class FolderState:
    fingerprint: str | None
    timestamps: list[str]
    labels: dict[str, str] | None = field(default_factory=dict)  # timestamp -> key label; None: not known

    def sets(self) -> list[tuple[str, str | None]]:
        return [(ts, (self.labels or {}).get(ts)) for ts in self.timestamps]


@dataclass
class DiscoveryCursor:
    """What the last tick saw: per folder its fingerprint and complete timestamps, and which
    sets (``<location>/<timestamp>``) were reported under which partition key.

    Nearly every set was reported under the key its folder state gives it (its timestamp, and
    its kind's label), so the JSON names only the sets that were not reported, or were under
    another key (a timestamp repeated in another location): it holds what is under the root now,
    about 25 bytes a set, not a second list of every set.
    """

    folders: dict[str, FolderState] = field(default_factory=dict)
    reported: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        implied = self._implied_keys()
        return json.dumps({
            "version": CURSOR_VERSION,
            "folders": {
                label: [state.fingerprint, state.timestamps, state.labels] for label, state in self.folders.items()
            },
            "not_reported": [identity for identity in implied if identity not in self.reported],
            "reported_otherwise": {
                identity: key for identity, key in self.reported.items() if implied.get(identity) != key
            },
        }, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> DiscoveryCursor:
        """An unreadable or old cursor means: start afresh (the next tick rescans everything)."""
        try:
            data = json.loads(text or "")
            if data.get("version") not in READABLE_CURSOR_VERSIONS:
                return cls()
            folders = {
                label: FolderState(state[0], list(state[1]), dict(state[2]) if len(state) > 2 else None)
                for label, state in data["folders"].items()
            }
            if data["version"] < 3:
                return cls(folders, dict(data["reported"]))
            cursor = cls(folders)
            not_reported = set(data["not_reported"])
            cursor.reported = {
                identity: key for identity, key in cursor._implied_keys().items() if identity not in not_reported
            } | {str(identity): str(key) for identity, key in data["reported_otherwise"].items()}
            return cursor
        except (ValueError, TypeError, KeyError, AttributeError):
            return cls()

    def _implied_keys(self) -> dict[str, str]:
        """Each set's key as its folder state gives it, by identity."""
        return {
            f"{label}/{ts}": f"{ts}__{key_label}" if key_label else ts
            for label, state in self.folders.items() for ts, key_label in state.sets()
        }


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
    locations: list[Location] = field(default_factory=list)  # in scan order

    def fingerprints(self) -> tuple[tuple[Location, str | None], ...]:
        """Each location with the fingerprint its folder had when it was looked at."""
        return tuple((location, self.folders[location.label].fingerprint) for location in self.locations)

    def unreported(self, cursor: DiscoveryCursor) -> list[FoundSet]:
        """Sets not yet reported under their current key, newest first."""
        fresh = [found for found in self.sets if cursor.reported.get(found.identity) != found.key]
        return sorted(fresh, key=lambda found: (found.timestamp, found.key), reverse=True)


def discover(root: Root | Path | str, cursor: DiscoveryCursor, manifests: ManifestReads | None = None) -> Discovery:
    """The sets under the root now; a new set's manifest is read through ``manifests``, which
    the rest of the tick then reads it from."""
    root = open_root(root)
    manifests = ManifestReads() if manifests is None else manifests
    skipped: list[SkippedLocation] = []
    located = backup_folders(root, skipped)
    folders: dict[str, FolderState] = {}
    rescanned = []
    for location, folder in located.items():
        fingerprint = folder.fingerprint()  # taken before listing: a later change shows next tick
        known = cursor.folders.get(location.label)
        if known is not None and known.fingerprint == fingerprint and known.labels is not None:
            folders[location.label] = known
            continue
        folders[location.label] = _listed_again(folder, fingerprint, known, manifests)
        rescanned.append(location.label)
    keyed = partition_keys([(location, folders[location.label].sets()) for location in located])
    found = [FoundSet(key, location, ts) for key, location, ts in keyed]
    return Discovery(found, folders, rescanned, skipped, list(located))


def _listed_again(
    folder: SetFolder, fingerprint: str | None, known: FolderState | None, manifests: ManifestReads
) -> FolderState:
    """The folder's complete sets; the key labels of sets the cursor knew are kept, a new set's
    manifest is read for its own."""
    old_labels = known.labels if known is not None and known.labels is not None else {}
    old_timestamps = set(known.timestamps) if known is not None and known.labels is not None else set()
    timestamps, labels = [], {}
    listing = folder.entries()
    for timestamp, has_manifest in complete_timestamps_in(folder, list(listing)):
        timestamps.append(timestamp)
        label = (
            old_labels.get(timestamp) if timestamp in old_timestamps
            else _label_of(folder, timestamp, listing, manifests) if has_manifest else None
        )
        if label:
            labels[timestamp] = label
    return FolderState(fingerprint, timestamps, labels)


def _label_of(folder: SetFolder, timestamp: str, listing: dict[str, FileEntry], manifests: ManifestReads) -> str | None:
    name = manifest_file_name(timestamp)
    try:
        return key_label(manifests.read(folder, name, listing[name]))
    except ManifestError:
        return None
