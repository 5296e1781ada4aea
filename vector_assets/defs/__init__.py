"""The thin Dagster shell over ``vector_assets.core``, one module per operation, each with a
function that builds its definitions for a store; ``location.py`` puts them together. No SQL,
file formats or storage code lives here.
"""
