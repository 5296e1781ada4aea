"""How sizes, rates and durations read everywhere: the log, the CLI, metadata and the inventory.

Decimal units throughout (1 MB = 1,000,000 bytes), so a size and a rate in MB/s agree.
"""

from __future__ import annotations

BYTES_PER_MB = 1_000_000


def human_size(byte_count: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if byte_count < 1000 or unit == "GB":
            return f"{byte_count:.0f} {unit}" if unit == "B" else f"{byte_count:.1f} {unit}"
        byte_count /= 1000
    raise AssertionError("unreachable")


def megabytes_per_second(byte_count: float, seconds: float) -> float:
    return byte_count / BYTES_PER_MB / max(seconds, 1e-6)


def human_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def count_of(number: int, noun: str, plural: str | None = None) -> str:
    """``1 row``, ``3,000 rows``: a count and its noun, singular for one; ``plural`` for the
    nouns that do not take an s (``1 index``, ``2 indexes``)."""
    return f"{number:,} {noun if number == 1 else plural or noun + 's'}"
