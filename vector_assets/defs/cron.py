"""Schedules' cron strings from a store's settings, checked when the code location loads."""

from collections.abc import Mapping

import dagster as dg

from vector_assets.core.errors import ConfigError
from vector_assets.settings import Setting


def cron_from(setting: Setting, environ: Mapping[str, str] | None = None) -> str:
    """The setting's cron string, or a one-line ConfigError that names the variable; Dagster's
    own refusal would name only the schedule."""
    value = setting.get(environ)
    try:
        dg.ScheduleDefinition(name="cron_check", cron_schedule=value, job_name="cron_check")
    except dg.DagsterInvalidDefinitionError:
        raise ConfigError(
            f"environment variable {setting.name} must be a cron schedule of five fields "
            f"(minute hour day-of-month month day-of-week) such as {setting.default!r}, got {value!r}"
        ) from None
    return value
