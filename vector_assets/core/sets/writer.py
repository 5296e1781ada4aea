"""Writing a new set: the timestamp it is written under.

The set writer itself (``write_set``: the files of one set, then the log block, then the
manifest last) stays in ``core/ops/backup.py`` for now: it exports increments and parts with
``core/ops/increments.py``, and ``core/sets/`` does not import ``core/ops/``.
"""

from __future__ import annotations

import time

from vector_assets.core.errors import BackupSetExistsError, BackupWriteError
from vector_assets.core.sets.catalog import published_timestamps, timestamps_in_folder
from vector_assets.core.sets.naming import new_timestamp
from vector_assets.core.sets.storage import SetFolder

TIMESTAMP_RETRIES = 3


def free_timestamp(folder: SetFolder, requested: str | None) -> str:
    """The requested timestamp if unused; otherwise now, waiting out a same-second clash.

    A requested timestamp may reuse one with only ``.tmp`` leftovers (rerunning a killed
    backup). A chosen one never does: those files may be another process's backup in progress,
    and sharing its timestamp would write into its files.
    """
    if requested is not None:
        if requested in published_timestamps(folder):
            raise BackupSetExistsError(f"a backup set {requested} already exists in {folder}")
        return requested
    for _ in range(TIMESTAMP_RETRIES):
        candidate = new_timestamp()
        if candidate not in timestamps_in_folder(folder):
            return candidate
        time.sleep(1.0)
    raise BackupWriteError(f"could not find a free timestamp in {folder}")
