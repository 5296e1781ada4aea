"""The code location: ``defs`` builds the definitions of its stores when Dagster loads it.

workspace.yaml and ``[tool.dg]`` in pyproject.toml both point here. Today the one store is the
environment's (``settings.default_store()``).
"""

import warnings

import dagster as dg

from vector_assets import settings
from vector_assets.defs.location import code_location_definitions

# Dagster copies a sensor that targets jobs with owners=[] of its own making, and that copy warns
# that `owners` is a beta parameter: on every `dagster job launch`, in every process that loads
# this location. We pass no owners; the warning says nothing about this code.
warnings.filterwarnings("ignore", message="Parameter `owners` of initializer `SensorDefinition", category=dg.BetaWarning)


@dg.definitions
def defs() -> dg.Definitions:
    return code_location_definitions([settings.default_store()])
