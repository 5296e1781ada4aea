"""The job ``diff_vector_backup``: what differs between the chosen set (its partition) and the
live tables, or another set, per table and per collection, with a sample of keys of each kind.
It reads and changes nothing: the set's rows are staged in temporary tables of a transaction
that is rolled back."""

import dagster as dg
from pydantic import Field

from vector_assets import settings
from vector_assets.core.errors import VectorAssetsError
from vector_assets.core.ops.diff import DEFAULT_SAMPLE, LIVE, MAX_SAMPLE, DiffRequest, DiffResult, run_diff
from vector_assets.core.sets.row_index import CHANGED, ONLY_OURS, ONLY_THEIRS
from vector_assets.defs.failures import as_failure
from vector_assets.defs.partitions import chosen_set
from vector_assets.defs.resources import BackupRootResource, PgVectorResource
from vector_assets.defs.run_facts import READS_SETS, log_progress, tag_run
from vector_assets.defs.store_keys import StoreKeys

DIFF_JOB = "diff_vector_backup"
DIFF_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("table", "string"), dg.TableColumn("collection", "string"), dg.TableColumn("only_in_set", "int"),
    dg.TableColumn("only_in_other", "int"), dg.TableColumn("changed", "int"),
    dg.TableColumn("sample_only_in_set", "string"), dg.TableColumn("sample_only_in_other", "string"),
    dg.TableColumn("sample_changed", "string"),
])


class DiffConfig(dg.Config):
    against: str = Field(default=LIVE, description="live (the store's tables now), or another set's partition key.")
    sample: int = Field(default=DEFAULT_SAMPLE, ge=0, le=MAX_SAMPLE, description="Keys shown of each kind, per table and collection.")


def diff_op(keys: StoreKeys) -> dg.OpDefinition:
    store, job_name = keys.store, keys.name(DIFF_JOB)

    @dg.op(name=keys.name("diff_backup_set"))
    def diff_backup_set(
        context: dg.OpExecutionContext, config: DiffConfig, pgvector: PgVectorResource, backup_root: BackupRootResource,
    ) -> dg.Output:
        """Compare the chosen set with the live tables or another set, row by row, by their digests."""
        key = chosen_set(context, job_name)
        tag_run(context, key)
        try:
            result = run_diff(DiffRequest(
                dsn=pgvector.dsn_of(store), root=backup_root.open(store), key=key, against=config.against.strip(),
                sample=config.sample, store=store, encryption=settings.store_encryption_keys(store),
                configured_root=backup_root.configured(store), progress=log_progress(context),
            ))
        except VectorAssetsError as error:
            raise as_failure(error, "diff") from None
        for line in summary_lines(result):
            context.log.info(line)
        return dg.Output(None, metadata=diff_metadata(result))

    return diff_backup_set


def summary_lines(result: DiffResult) -> list[str]:
    lines = []
    for table in result.tables:
        if table.skipped:
            lines.append(f"{table.table}: not compared: {table.skipped}")
            continue
        lines.append(f"{table.table}: {table.differences.describe(result.other)}")
        lines += [f"  {table.table} {name}: {found.describe(result.other)}" for name, found in table.collections.items()]
    return lines


def diff_metadata(result: DiffResult) -> dict:
    records = []
    for table in result.tables:
        rows = [("(all)", table.differences), *table.collections.items()]
        records += [dg.TableRecord({
            "table": table.table, "collection": name, "only_in_set": found.only_in_set,
            "only_in_other": found.only_in_other, "changed": found.changed,
            "sample_only_in_set": ", ".join(found.samples[ONLY_OURS]),
            "sample_only_in_other": ", ".join(found.samples[ONLY_THEIRS]), "sample_changed": ", ".join(found.samples[CHANGED]),
        }) for name, found in rows]
    return {
        "partition": result.backup_set.key,
        "against": result.against,
        "identical": result.identical,
        "differences": dg.MetadataValue.table(records, schema=DIFF_SCHEMA),
        "result": dg.MetadataValue.json(result.as_json()),
        "duration_seconds": dg.MetadataValue.float(round(result.duration_seconds, 3)),
    }


def diff_definitions(keys: StoreKeys) -> dg.Definitions:
    diff_backup_set = diff_op(keys)

    @dg.job(
        name=keys.name(DIFF_JOB),
        partitions_def=keys.partitions,
        tags=READS_SETS,
        description="What differs between the chosen set and the live tables (or another set): rows only in the set, "
        "only in the other side, and changed, per table and collection, with a sample of keys. Changes nothing.",
    )
    def diff_vector_backup() -> None:
        diff_backup_set()

    return dg.Definitions(jobs=[diff_vector_backup])
