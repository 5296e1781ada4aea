"""The thin Dagster shell over ``vector_assets.core``, one module per operation.

``definitions.py`` loads this folder with ``dg.load_from_defs_folder``: every job, schedule,
sensor, asset and check declared at the top level of a module here is picked up. No SQL,
file formats or storage code lives here.
"""
