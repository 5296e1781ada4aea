"""The plain core of vector_assets: the Postgres side and the backup-set side.

Nothing in this package imports Dagster; the Dagster shell in ``vector_assets.defs`` calls it.
"""
