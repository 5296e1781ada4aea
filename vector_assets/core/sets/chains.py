"""Chains: an increment restores on top of its parent, which may be an increment itself, back
to a set that is not one. A chain lives in one location, and each parent is older than its child.
"""

from __future__ import annotations

from dataclasses import dataclass

from vector_assets.core.errors import BrokenChainError, ManifestError
from vector_assets.core.sets.manifest import Manifest
from vector_assets.core.sets.naming import manifest_file_name
from vector_assets.core.sets.storage import SetFolder


@dataclass(frozen=True)
class ChainLink:
    timestamp: str
    manifest: Manifest


def chain_of(folder: SetFolder, timestamp: str, manifest: Manifest) -> list[ChainLink]:
    """The links to restore for this set, base first; just the set itself when it is no increment.

    A missing or unreadable ancestor raises, naming it, before anything is read or changed.
    """
    links = [ChainLink(timestamp, manifest)]
    while links[-1].manifest.is_increment:
        child = links[-1]
        parent = child.manifest.parent
        if not parent or parent >= child.timestamp:
            raise BrokenChainError(f"increment {child.timestamp} in {folder} names no older parent set ({parent!r})")
        links.append(ChainLink(parent, _parent_manifest(folder, child.timestamp, parent)))
    return links[::-1]


def _parent_manifest(folder: SetFolder, child: str, parent: str) -> Manifest:
    name = manifest_file_name(parent)
    if folder.size(name) is None:
        raise BrokenChainError(
            f"increment {child} needs its parent set {parent}, which is missing from {folder}; "
            "the chain cannot be restored"
        )
    try:
        return Manifest.read(folder, name)
    except ManifestError as error:
        raise BrokenChainError(
            f"increment {child} needs its parent set {parent}, which is damaged ({error}); the chain cannot be restored"
        ) from None
