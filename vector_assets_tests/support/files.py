"""Backup roots for tests: snapshots to prove nothing changed, and sets as other tools write them."""

from __future__ import annotations

from pathlib import Path


def folder_snapshot(root: Path) -> dict[str, bytes]:
    """Every file under the root with its content, to show a failure changed nothing."""
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}
