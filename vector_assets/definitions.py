"""The code location: ``defs`` loads everything declared in the ``defs/`` folder.

workspace.yaml and ``[tool.dg]`` in pyproject.toml both point here; nothing is listed by hand.
"""

import warnings
from pathlib import Path

import dagster as dg

# Dagster copies a sensor that targets jobs with owners=[] of its own making, and that copy warns
# that `owners` is a beta parameter: on every `dagster job launch`, in every process that loads
# this location. We pass no owners; the warning says nothing about this code.
warnings.filterwarnings("ignore", message="Parameter `owners` of initializer `SensorDefinition", category=dg.BetaWarning)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
