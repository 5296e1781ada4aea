"""``make bench``: our backup, restore and sensor against psql, pg_dump and pg_restore.

Not installed with the package; run from the repository root as ``python -m benchmarks``.
"""
