"""A setting read from the environment when asked for: its name, default and meaning, and the
checked forms a value may take. ``vector_assets.settings`` declares the project's settings with
it; an object-store driver declares the variables its client library reads."""

from __future__ import annotations

import os
import re
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass

from vector_assets.core.errors import ConfigError


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    meaning: str
    deprecated_alias: str | None = None

    def get(self, environ: Mapping[str, str] | None = None) -> str:
        """The value, else the deprecated alias's value, else the default; empty counts as unset."""
        env = os.environ if environ is None else environ
        value = (env.get(self.name) or "").strip()
        if not value and self.deprecated_alias:
            value = (env.get(self.deprecated_alias) or "").strip()
        return value or self.default

    def count(self, environ: Mapping[str, str] | None = None) -> int:
        """A whole number >= 0, or a ConfigError that names the variable."""
        raw = self.get(environ)
        if not raw.isascii() or not raw.isdigit():
            raise ConfigError(f"environment variable {self.name} must be a whole number >= 0, got {raw!r}")
        return int(raw)

    def seconds(self, environ: Mapping[str, str] | None = None) -> float:
        """A duration above 0 such as ``5``, ``0.5s``, ``30m``, ``26h`` or ``2d``, or a ConfigError
        that names the variable."""
        return parse_duration(self.get(environ), self.name)


def over_the_environment(values: Mapping[str, str]) -> Mapping[str, str]:
    """These values, and the process environment for every variable they leave out, read now."""
    return ChainMap(dict(values), os.environ)


def values_of(names: tuple[str, ...], environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of these variables, stripped, for variables a client library reads itself
    (an object store's secrets, which messages must never show)."""
    env = os.environ if environ is None else environ
    return [(env.get(name) or "").strip() for name in names]


DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
SECONDS_PER_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, variable: str) -> float:
    match = DURATION.fullmatch(text.strip().lower())
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(
            f"environment variable {variable} must be a duration above 0 such as 90, 30m, 26h or 2d, got {text!r}"
        )
    return float(match.group(1)) * SECONDS_PER_UNIT[match.group(2)]
