"""The RAG clients' own steps, run by their own python (see run.py), and the schema dump of the
stores they make (dump_schemas.py, run by the project's python)."""
