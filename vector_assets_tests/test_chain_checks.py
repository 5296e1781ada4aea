"""The checks of an increment cover its whole chain: every set present, and each set's data
files, row index and deleted keys with the manifest's sha256 and counts. A missing or damaged
ancestor fails them, named."""

import dagster as dg
import pytest
import zstandard

from vector_assets.cli import EXIT_FAILED, main
from vector_assets.core.ops.verify import CHECK_NAMES
from vector_assets.core.sets.naming import manifest_file_name
from vector_assets.core.tables import COLLECTION_TABLE, EMBEDDING_TABLE
from vector_assets_tests.support.chains import build_chain
from vector_assets_tests.support.dagster import definitions

CHAIN = ["20250301_020000", "20250301_030000", "20250301_040000"]
BASE, MIDDLE, TIP = CHAIN


@pytest.fixture
def folder(store_db, backup_root, dagster_instance):
    """A full set and two increments on it (pgcopy.zst), registered as partitions: their folder."""
    build_chain(store_db, backup_root, CHAIN, format="pgcopy.zst")
    dagster_instance.add_dynamic_partitions("vector_backups", CHAIN)
    return backup_root / "vector_bak"


def run_checks(instance, key: str) -> dict[tuple[str, str], object]:
    result = definitions().resolve_job_def("check_vector_backup").execute_in_process(
        instance=instance, partition_key=key, raise_on_error=False
    )
    records = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    evaluations = [record.dagster_event.event_specific_data for record in records]
    return {(ev.asset_key.path[-1].removesuffix("_backup"), ev.check_name): ev for ev in evaluations
            if ev.check_name in CHECK_NAMES}  # the file checks; the data-quality counts are tested on their own


def rewrite_zstd_lines(path, extra: bytes) -> None:
    """A valid zstd text file with one more line than its manifest says: sha256 and count differ."""
    text = zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes())
    path.write_bytes(zstandard.ZstdCompressor().compress(text + extra))


def test_every_check_of_an_increment_passes_over_its_whole_chain(folder, dagster_instance):
    evaluations = run_checks(dagster_instance, TIP)

    assert len(evaluations) == 6 and all(ev.passed for ev in evaluations.values())
    for check in ("file_present", "sha256_matches_manifest", "row_count_matches_manifest"):
        assert f"its 2 ancestor sets, {BASE} to {MIDDLE}, pass too" in evaluations[(EMBEDDING_TABLE, check)].description
    rows = evaluations[(EMBEDDING_TABLE, "row_count_matches_manifest")].description
    assert rows.startswith(f"{EMBEDDING_TABLE}_{TIP}.changes.pgcopy.zst has the manifest's 5 rows; its row index and its "
                           "deleted keys have the manifest's line counts")
    base = run_checks(dagster_instance, BASE)
    assert all(ev.passed for ev in base.values())
    assert "with its row index are present" in base[(EMBEDDING_TABLE, "file_present")].description
    assert "ancestor" not in base[(EMBEDDING_TABLE, "file_present")].description


def test_a_missing_ancestor_fails_every_check_of_the_increment_naming_it(folder, dagster_instance, capsys):
    (folder / manifest_file_name(MIDDLE)).unlink()

    evaluations = run_checks(dagster_instance, TIP)

    assert len(evaluations) == 6
    for evaluation in evaluations.values():
        assert not evaluation.passed
        assert f"increment {TIP} needs its parent set {MIDDLE}, which is missing" in evaluation.description
    assert main(["verify", TIP]) == EXIT_FAILED
    assert f"needs its parent set {MIDDLE}, which is missing" in capsys.readouterr().out


def test_a_damaged_ancestor_fails_the_checks_naming_it_and_the_file(folder, dagster_instance):
    deleted_keys = folder / f"{EMBEDDING_TABLE}_{MIDDLE}.deleted.zst"
    rewrite_zstd_lines(deleted_keys, b"no-such-key\n")

    evaluations = run_checks(dagster_instance, TIP)

    assert evaluations[(EMBEDDING_TABLE, "file_present")].passed
    sha = evaluations[(EMBEDDING_TABLE, "sha256_matches_manifest")].description
    assert sha.startswith(f"ancestor set {MIDDLE} of increment {TIP}: {deleted_keys.name} sha256 ")
    rows = evaluations[(EMBEDDING_TABLE, "row_count_matches_manifest")].description
    assert rows == f"ancestor set {MIDDLE} of increment {TIP}: {deleted_keys.name} has 2 lines but the manifest says 1"
    assert not any(evaluations[(EMBEDDING_TABLE, check)].passed for check in ("sha256_matches_manifest",
                                                                            "row_count_matches_manifest"))
    assert all(evaluations[(COLLECTION_TABLE, check)].passed for check in ("sha256_matches_manifest",
                                                                          "row_count_matches_manifest"))
    middle = run_checks(dagster_instance, MIDDLE)[(EMBEDDING_TABLE, "row_count_matches_manifest")]
    assert not middle.passed and middle.description.startswith(deleted_keys.name)


def test_a_missing_row_index_in_the_base_set_fails_file_present_for_every_increment_on_it(folder, dagster_instance):
    index = folder / f"{COLLECTION_TABLE}_{BASE}.index.zst"
    index.unlink()

    for key in (BASE, TIP):
        present = run_checks(dagster_instance, key)[(COLLECTION_TABLE, "file_present")]
        assert not present.passed and f"{index.name} missing from" in present.description
    assert "ancestor set" in run_checks(dagster_instance, TIP)[(COLLECTION_TABLE, "file_present")].description

