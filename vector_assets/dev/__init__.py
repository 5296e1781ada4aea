"""Dev-only: the embedded PostgreSQL with pgvector, the demo store, and ``vector-assets dev``.

Installed with the ``dev`` (or ``test``) extra; the runtime never imports this package.
"""
