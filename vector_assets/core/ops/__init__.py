"""One module per operator command: ``XRequest`` -> ``run_x()`` -> ``XResult``.

The CLI, the Dagster ops and the tests build the same request objects.
"""
