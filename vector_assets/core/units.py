"""How sizes read everywhere: in the log, the CLI, metadata and the inventory."""

from __future__ import annotations


def human_size(byte_count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if byte_count < 1024 or unit == "GB":
            return f"{byte_count:.0f} {unit}" if unit == "B" else f"{byte_count:.1f} {unit}"
        byte_count /= 1024
    raise AssertionError("unreachable")
