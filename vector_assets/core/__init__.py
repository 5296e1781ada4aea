"""The plain core of vector_assets. Nothing in this package imports Dagster.

- ``pg/``: everything that speaks SQL (connecting, the catalog, COPY, locks, indexes).
- ``sets/``: backup sets (names, the manifest, storage, the catalog, discovery, inventory,
  retention plans).
- ``ops/``: one module per operator command, each ``XRequest`` -> ``run_x()`` -> ``XResult``.
"""
