"""Importable test helpers: databases, set files, Dagster runs and ticks, faults, the make dev stack.

``conftest.py`` holds fixtures only; everything a test calls lives here.
"""
