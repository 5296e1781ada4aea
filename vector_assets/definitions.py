"""The code location: ``defs`` loads everything declared in the ``defs/`` folder.

workspace.yaml and ``[tool.dg]`` in pyproject.toml both point here; nothing is listed by hand.
"""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
