"""Recovery-time targets by size class: under 1 GB in 5 minutes, 1 to 10 GB in 30
minutes, above 10 GB in 2 hours. A drill's restore is judged against the target of its set's size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vector_assets.core.errors import ConfigError

WITHIN = "within target"
OVER = "over target"
OVER_TWICE = "over twice the target"

SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb)")
BYTES_PER_UNIT = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smh]?)")
SECONDS_PER_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600}
FORMAT_HINT = "such as '1GB=5m,10GB=30m,*=2h' (sizes up to which each time applies; '*' for the rest)"


@dataclass(frozen=True)
class RtoTarget:
    up_to_bytes: int | None  # None: every larger set
    seconds: float


DEFAULT_RTO_TARGETS = (RtoTarget(10**9, 300.0), RtoTarget(10 * 10**9, 1800.0), RtoTarget(None, 7200.0))


def target_seconds(targets: tuple[RtoTarget, ...], byte_count: int) -> float:
    for target in targets:
        if target.up_to_bytes is None or byte_count < target.up_to_bytes:
            return target.seconds
    raise AssertionError("the targets end with a catch-all")


def verdict(restore_seconds: float, target: float) -> str:
    if restore_seconds <= target:
        return WITHIN
    return OVER if restore_seconds <= 2 * target else OVER_TWICE


def parse_rto_targets(text: str, variable: str) -> tuple[RtoTarget, ...]:
    """Targets from ``1GB=5m,10GB=30m,*=2h``, or a ConfigError that names the variable."""
    targets = [_parse_one(part.strip().lower(), variable, text) for part in text.split(",") if part.strip()]
    bounds = [t.up_to_bytes for t in targets[:-1]]
    if not targets or targets[-1].up_to_bytes is not None or None in bounds or bounds != sorted(set(bounds)):
        raise ConfigError(f"environment variable {variable} must list growing sizes ending with '*', {FORMAT_HINT}; got {text!r}")
    return tuple(targets)


def _parse_one(part: str, variable: str, text: str) -> RtoTarget:
    size, _, duration = part.partition("=")
    size_match, duration_match = SIZE.fullmatch(size.strip()), DURATION.fullmatch(duration.strip())
    if (size.strip() != "*" and size_match is None) or duration_match is None or float(duration_match.group(1)) <= 0:
        raise ConfigError(f"environment variable {variable} must look like {FORMAT_HINT}; {part!r} in {text!r} is not")
    seconds = float(duration_match.group(1)) * SECONDS_PER_UNIT[duration_match.group(2)]
    if size.strip() == "*":
        return RtoTarget(None, seconds)
    return RtoTarget(round(float(size_match.group(1)) * BYTES_PER_UNIT[size_match.group(2)]), seconds)
