"""The code location: ``defs`` builds the definitions of its stores when Dagster loads it.

workspace.yaml and ``[tool.dg]`` in pyproject.toml both point here. The stores are those
``store_files`` reads: the ones declared in ``defs/stores/`` (or ``VECTOR_ASSETS_STORES_DIR``), and
the environment's own store when none is declared or ``VECTOR_ASSETS_PG_DSN`` is set. Each is
checked by the one function the ``VectorStore`` component builds with.
"""

import warnings

import dagster as dg

from vector_assets.defs.location import code_location_definitions
from vector_assets.store_files import check_declared_tables, code_location_stores

# Dagster copies a sensor that targets jobs with owners=[] of its own making, and that copy warns
# that `owners` is a beta parameter: on every `dagster job launch`, in every process that loads
# this location. We pass no owners; the warning says nothing about this code.
warnings.filterwarnings("ignore", message="Parameter `owners` of initializer `SensorDefinition", category=dg.BetaWarning)


@dg.definitions
def defs() -> dg.Definitions:
    return code_location_definitions(check_declared_tables(code_location_stores()))
