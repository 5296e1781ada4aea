"""Typed errors. Each message names the table, file or setting at fault.

``retryable`` tells the caller (and Dagster's retry policy) whether running the same request
again later may succeed, for example when the database was unreachable.
"""

from __future__ import annotations


class VectorAssetsError(Exception):
    """Base class for every error this package raises on purpose."""

    retryable: bool = False


class ConfigError(VectorAssetsError):
    """A setting or request field is missing or malformed."""


class InvalidTimestampError(ConfigError):
    """A backup timestamp is not of the form YYYYMMDD_HHMMSS."""


class InvalidTaskIdError(ConfigError):
    """A task id is not of the form (task|manual)_YYYYMMDD_HHMMSS."""


class UnknownTableError(ConfigError):
    """A table name is not one of the LangChain tables we manage."""


class UnknownCollectionError(ConfigError):
    """A collection restore names a collection the set does not hold."""


class PathOutsideRootError(ConfigError):
    """A path resolves outside the backup root."""


class IdentityError(ConfigError):
    """An encrypted set's file needs an identity that is not given, or not one it is encrypted to."""


class DatabaseUnreachableError(VectorAssetsError):
    """The database could not be reached; trying again later may work."""

    retryable = True


class LockTimeoutError(VectorAssetsError):
    """A lock was not granted in time because another session holds it; trying later may work."""

    retryable = True


class DatabaseError(VectorAssetsError):
    """The database refused a statement (a permission, an unsupported column, a constraint).
    Trying again will not help until something changes."""


class StatementCancelledError(VectorAssetsError):
    """The server cancelled a statement (a cancel request, a timeout) on a connection that is
    still open: the connection was never lost, and trying again later may work."""

    retryable = True


class DatabaseAccessError(VectorAssetsError):
    """The server refused the login (wrong password, unknown role or database, pg_hba rule).
    Trying again will not help until the configuration changes."""


class TableNotFoundError(VectorAssetsError):
    """A managed table does not exist in the database."""


class BackupWriteError(VectorAssetsError):
    """A backup file could not be written (disk full, permissions, connection lost mid-COPY)."""


class BackupReadError(VectorAssetsError):
    """A backup file on disk could not be read (an I/O error, a network mount gone, no permission);
    the message names the file. Never a database error, even when it stops a COPY FROM.
    Retryable when its cause may pass (a timeout, a stale network mount)."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class BackupSetExistsError(VectorAssetsError):
    """A set with this timestamp already exists in the location; we never overwrite one."""


class BackupSetNotFoundError(VectorAssetsError):
    """No complete set has the requested timestamp or partition key."""


class IncompleteBackupSetError(VectorAssetsError):
    """A set lacks a partner file, or still has .tmp files being written."""


class BrokenChainError(IncompleteBackupSetError):
    """An increment's parent (or an older ancestor) is missing or damaged."""


class ManifestError(VectorAssetsError):
    """A manifest is unreadable or does not describe its set."""


class GuardedTruncateError(VectorAssetsError):
    """A step of the guarded truncate failed; nothing was truncated."""

    def __init__(self, step: str, cause: BaseException) -> None:
        super().__init__(f"guarded truncate stopped at step '{step}', nothing was truncated: {cause}")
        self.step = step
        self.retryable = getattr(cause, "retryable", False)


class SafetyBackupError(VectorAssetsError):
    """A restore could not back up what it would replace, so it restored nothing."""

    @property
    def retryable(self) -> bool:  # as retryable as its cause
        return bool(getattr(self.__cause__, "retryable", False))


class VerificationError(VectorAssetsError):
    """Files of a set do not match the database or the manifest."""


class ColumnMismatchError(VectorAssetsError):
    """A set's columns do not match the target table's columns."""


class ExtensionMissingError(VectorAssetsError):
    """The target database lacks the pgvector extension, and the role may not create it."""


class MissingTableDefinitionError(TableNotFoundError):
    """A table the target lacks, from a set that holds no definition to create it."""


class RestoreConflictError(VectorAssetsError):
    """Append mode found rows whose primary key already exists in the target."""


class BackupFileError(VectorAssetsError):
    """A backup file is damaged: cut off, not valid CSV, or not matching its manifest."""


class WrongStoreError(ConfigError):
    """A set of one store asked to restore into another store's tables."""


class TriggersError(VectorAssetsError):
    """A load would fire the target tables' own triggers, and this role may not turn them off."""


class SourceTableMissingError(TableNotFoundError):
    """An embedding store restored alone into a database without the table it was made from."""


class TableShapeError(VectorAssetsError):
    """A store's table whose rows a COPY of it would not hold: it has child tables, or is partitioned."""


class RestoreLoadError(VectorAssetsError):
    """The target refused rows during the load (a constraint, a trigger); the restore rolled back."""


class PruneError(VectorAssetsError):
    """Deleting a pruned set's files failed. Sets deleted before it stay deleted; the rest are kept.

    ``partial_result`` holds what was done before the failure, so the caller can still drop
    the partitions of the sets that are gone.
    """

    partial_result: object | None = None


class ObjectStoreError(VectorAssetsError):
    """The object store failed a request; the message names the bucket and key."""


class ObjectStoreAccessError(ObjectStoreError):
    """Wrong credentials, no permission, or an unknown bucket: retrying will not help."""


class ObjectStoreUnreachableError(ObjectStoreError):
    """The object store could not be reached, broke the connection, or throttled us."""

    retryable = True


class ObjectMissingError(ObjectStoreError):
    """The object asked for does not exist."""
