"""No run config carries a secret or a place: every job's resources take no config at all.

Dagster stores run config in plain text and shows it under "View tags and config"; a DSN typed
into the Launchpad would keep its password there, and a root typed there would write a set the
sensor cannot see. The database, the roots and the targets come from the code location's
environment and from declared names only, so Dagster's own config validation refuses the run
before it is stored.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import dagster as dg
import pytest

from vector_assets_tests.support.dagster import PARTITIONS, definitions
from vector_assets_tests.support.database import tables_now
from vector_assets_tests.support.files import folder_snapshot

SET_KEY = "20250721_213627"
ELSEWHERE = f"/tmp/va-elsewhere-{uuid.uuid4().hex[:12]}"  # a place no earlier run can have made
ATTEMPTS = {
    "a DSN with a password": ("pgvector", {"dsn": "postgresql://postgres:hunter2@127.0.0.1:5432/other"}),
    "another backup root": ("backup_root", {"root": ELSEWHERE}),
    "an offsite root": ("backup_root", {"offsite": "s3://somebody-elses-bucket/x"}),
    "a folder for run outputs": ("io_manager", {"base_dir": ELSEWHERE}),
}


def all_jobs() -> list[dg.JobDefinition]:
    return [job for job in definitions().resolve_all_job_defs() if not job.name.startswith("__")]


def test_every_job_and_resource_is_covered():
    names = {job.name for job in all_jobs()}
    assert {"backup_vector_tables", "restore_vector_tables", "truncate_vector_tables", "prune_vector_backups",
            "check_vector_backup", "drill_vector_backup", "replicate_vector_backups"} <= names
    keys = {key for job in all_jobs() for key in job.resource_defs}
    assert {"pgvector", "backup_root", "io_manager"} <= keys


@pytest.mark.parametrize("job_name", [job.name for job in all_jobs()])
def test_no_resource_of_a_job_offers_a_config_field(job_name):
    job = definitions().resolve_job_def(job_name)
    for key in job.required_resource_keys:
        fields = job.resource_defs[key].config_schema.as_field().config_type.fields
        assert fields == {}, f"{job_name}: resource {key} takes {sorted(fields)} at run time"


def attempts_per_job() -> list:
    """Each job with each attempt on a resource it uses."""
    return [
        pytest.param(job.name, resource, config, id=f"{job.name}-{what}")
        for job in all_jobs()
        for what, (resource, config) in ATTEMPTS.items()
        if resource in job.required_resource_keys
    ]


@pytest.mark.parametrize(("job_name", "resource", "config"), attempts_per_job())
def test_a_run_config_that_names_a_place_or_secret_is_refused_before_any_run_is_stored(
    job_name, resource, config, dagster_instance, store_db: str, backup_root: Path
):
    job = definitions().resolve_job_def(job_name)
    if job.partitions_def is not None:
        dagster_instance.add_dynamic_partitions(PARTITIONS, [SET_KEY])
    tables_before, root_before = tables_now(store_db), folder_snapshot(backup_root)

    with pytest.raises(dg.DagsterInvalidConfigError) as refused:
        job.execute_in_process(
            run_config={"resources": {resource: {"config": config}}}, instance=dagster_instance,
            partition_key=SET_KEY if job.partitions_def is not None else None,
        )

    assert f"root:resources:{resource}:config" in str(refused.value)
    assert "hunter2" not in str(refused.value)
    assert dagster_instance.get_runs_count() == 0
    assert tables_now(store_db) == tables_before
    assert folder_snapshot(backup_root) == root_before
    assert not Path(ELSEWHERE).exists()


def test_the_resources_still_read_the_environment(dagster_instance, store_db: str, backup_root: Path, monkeypatch):
    resources = definitions().resources
    assert resources["pgvector"].dsn == store_db
    assert resources["backup_root"].configured() == str(backup_root)
    monkeypatch.setenv("VECTOR_ASSETS_OFFSITE_ROOT", str(backup_root / "offsite"))
    assert resources["backup_root"].open_offsite() is not None
    monkeypatch.delenv("VECTOR_ASSETS_OFFSITE_ROOT")
    assert resources["backup_root"].open_offsite() is None
