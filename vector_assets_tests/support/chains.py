"""Chains of sets for tests: a full set, then increments, each after a real change to the store."""

from __future__ import annotations

from pathlib import Path

from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.sets.manifest import INCREMENTAL
from vector_assets.core.sets.writer import BackupResult, PartPolicy
from vector_assets_tests.support.database import execute

EMBEDDINGS = "langchain_pg_embedding"


def change_store(dsn: str, step: int, tag: str = "") -> None:
    """One round of writes: a document, a metadata value and an embedding changed, two rows
    added (copies of original rows under new ids ``new<step><tag>-…``) and one original deleted.
    Deterministic per step; ``tag`` keeps the new ids of two rounds with one step apart."""
    execute(dsn, f"UPDATE {EMBEDDINGS} SET document = %s WHERE id = (SELECT id FROM {EMBEDDINGS} ORDER BY id OFFSET %s LIMIT 1)",
            (f"changed in step {step}{tag}", step * 7))
    execute(dsn, f"UPDATE {EMBEDDINGS} SET cmetadata = %s::jsonb WHERE id = (SELECT id FROM {EMBEDDINGS} ORDER BY id OFFSET %s LIMIT 1)",
            (f'{{"step": "{step}{tag}"}}', step * 7 + 1))
    execute(dsn, f"UPDATE {EMBEDDINGS} SET embedding = embedding + embedding "
                 f"WHERE id = (SELECT id FROM {EMBEDDINGS} ORDER BY id OFFSET %s LIMIT 1)", (step * 7 + 2,))
    execute(dsn, f"INSERT INTO {EMBEDDINGS} (id, collection_id, embedding, document, cmetadata) "
                 f"SELECT %s || id, collection_id, embedding, document, cmetadata FROM {EMBEDDINGS} "
                 f"WHERE id NOT LIKE 'new%%' ORDER BY id LIMIT 2", (f"new{step}{tag}-",))
    execute(dsn, f"DELETE FROM {EMBEDDINGS} WHERE id = "
                 f"(SELECT id FROM {EMBEDDINGS} WHERE id NOT LIKE 'new%%' ORDER BY id DESC OFFSET %s LIMIT 1)", (step,))


def build_chain(
    dsn: str, root: Path | str, timestamps: list[str], *, format: str = "csv", task_id: str | None = None,
    parts: PartPolicy = PartPolicy(),
) -> list[BackupResult]:
    """A full set at ``timestamps[0]``, then an increment at each later timestamp, with
    ``change_store`` between any two. Each result is checked to be what was asked for."""
    results = []
    for step, timestamp in enumerate(timestamps):
        if step:
            change_store(dsn, step, timestamp)
        kind = INCREMENTAL if step else "full"
        result = run_backup(BackupRequest(
            dsn=dsn, root=root, timestamp=timestamp, format=format, task_id=task_id, parts=parts, kind=kind,
            row_index=True,
        ))
        assert result.manifest.kind == kind and result.manifest.fallback is None, result.manifest.fallback
        results.append(result)
    return results
