"""Turning core errors into Dagster failures that keep the message and say whether to retry."""

from __future__ import annotations

import dagster as dg

from vector_assets.core.errors import VectorAssetsError


def as_failure(error: VectorAssetsError, step: str) -> dg.Failure:
    return dg.Failure(
        description=f"{step} failed: {error}",
        metadata={"error_type": type(error).__name__, "retryable": error.retryable, "step": step},
        allow_retries=error.retryable,
    )
