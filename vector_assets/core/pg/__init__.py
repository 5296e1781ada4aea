"""The Postgres side of the core: all SQL lives in this package."""
