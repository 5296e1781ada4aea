"""The thin Dagster shell over ``vector_assets.core``: no SQL and no file-format logic here."""
