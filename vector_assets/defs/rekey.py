"""The job ``rekey_vector_backups``: re-encrypt a store's encrypted sets to new recipients (key
rotation), a set at a time, each manifest swapped last. The identity comes from
``VECTOR_ASSETS_IDENTITY_FILE``, or the variable a store's ``identity_file_env`` names, never from run
config; the new recipients are public keys, which run config may hold."""

import dagster as dg
from pydantic import Field

from vector_assets import settings
from vector_assets.core.errors import ConfigError, VectorAssetsError
from vector_assets.core.ops.rekey import RekeyRequest, RekeyResult, run_rekey
from vector_assets.core.sets.encryption import Recipients
from vector_assets.defs.failures import as_failure
from vector_assets.defs.resources import BackupRootResource
from vector_assets.defs.run_facts import READS_SETS
from vector_assets.defs.store_keys import StoreKeys


class RekeyConfig(dg.Config):
    to: str = Field(description="The new age recipients (public keys, age1…), separated by commas or spaces.")
    offsite: bool = Field(default=False, description="Rekey the offsite root (VECTOR_ASSETS_OFFSITE_ROOT) instead.")
    dry_run: bool = Field(
        default=True,
        description="Read and check every encrypted set with the identity and say what would be rekeyed, writing "
        "nothing. Set false to rekey.",
    )


def rekey_op(keys: StoreKeys) -> dg.OpDefinition:
    store = keys.store

    @dg.op(name=keys.name("rekey_sets"), pool=keys.pool)  # never beside a prune or a backup
    def rekey_sets(context: dg.OpExecutionContext, config: RekeyConfig, backup_root: BackupRootResource) -> dg.Output:
        """Each encrypted set read with the identity, written again to the new recipients, checked,
        its manifest swapped last; plaintext sets are left as they are."""
        try:
            recipients = Recipients.parse(config.to, "to")
            if recipients is None:
                raise ConfigError("to names no recipient")
            root = backup_root.open_offsite(store) if config.offsite else backup_root.open(store)
            if root is None:
                raise ConfigError(f"offsite: true, but {settings.OFFSITE_ROOT.name} is not set")
            result = run_rekey(RekeyRequest(
                root=root, to=recipients, identity_file=settings.identity_file(store.environment()),
                dry_run=config.dry_run, report=context.log.info,
            ))
        except VectorAssetsError as error:
            raise as_failure(error, "rekey") from None
        context.log.info(result.summary())
        return dg.Output(None, metadata=rekey_metadata(result))

    return rekey_sets


def rekey_metadata(result: RekeyResult) -> dict:
    return {
        "sets_rekeyed": dg.MetadataValue.json(result.rekeyed),
        "sets_already_encrypted_to_them": len(result.already),
        "sets_plaintext": len(result.plaintext),
        "bytes": result.bytes,
        "dry_run": result.dry_run,
        "duration_seconds": round(result.duration_seconds, 3),
    }


def rekey_definitions(keys: StoreKeys) -> dg.Definitions:
    rekey_sets = rekey_op(keys)

    @dg.job(
        name=keys.name("rekey_vector_backups"),
        description="Re-encrypt the encrypted backup sets to new recipients (key rotation); a dry run unless told "
        f"dry_run: false. Needs the identity file named by {settings.identity_file_variable(keys.store.environment())}.",
        tags=READS_SETS,
    )
    def rekey_vector_backups() -> None:
        rekey_sets()

    return dg.Definitions(jobs=[rekey_vector_backups])
