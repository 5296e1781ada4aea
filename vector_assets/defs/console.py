"""What runs print to their process's console: warnings and errors only, by default.

Every event is still in the run's log in the UI; the console of ``make dev`` (or of a run
worker in a deployment) is not the place for each step's DEBUG event.
"""

import dagster as dg

from vector_assets import settings


@dg.definitions
def console() -> dg.Definitions:
    level = settings.console_log_level()
    return dg.Definitions(
        loggers={"console": dg.colored_console_logger.configured({"name": "dagster", "log_level": level})}
    )
