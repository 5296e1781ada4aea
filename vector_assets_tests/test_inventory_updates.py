"""The inventory the sensor reports, kept up to date location by location: after every change it
equals a full rebuild (`build_inventory`, what `vector-assets list` prints), and it lists only the
folders that changed, unless what it remembers cannot be trusted."""

import json
import shutil
from pathlib import Path

from vector_assets.core.sets.discovery import Discovery, DiscoveryCursor, discover
from vector_assets.core.sets.inventory import InventoryRequest, build_inventory
from vector_assets.core.sets.inventory_state import (
    STATE_FILE,
    InventorySummary,
    InventoryUpdateRequest,
    update_inventory,
)
from vector_assets.core.sets.legacy_rows import STATE_FOLDER
from vector_assets.core.sets.roots import open_root
from vector_assets_tests.support.files import write_tiny_legacy_set, write_tiny_set

NEWEST_SHOWN = 4
TASKS = ("task_20250101_000000", "task_20250102_000000", "task_20250103_000000")


class Root:
    """A root on disk, looked at as the sensor does: discovery with the last tick's cursor, then
    the inventory from the fingerprints it took."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last: Discovery | None = None

    def update(self) -> InventorySummary:
        root = open_root(self.path)
        cursor = DiscoveryCursor(self.last.folders, {}) if self.last else DiscoveryCursor()
        self.last = discover(root, cursor)
        return update_inventory(InventoryUpdateRequest(
            root=root, locations=self.last.fingerprints(), skipped=tuple(self.last.skipped), newest_shown=NEWEST_SHOWN,
        ))

    def rebuilt(self) -> InventorySummary:
        return InventorySummary.of(build_inventory(InventoryRequest(root=self.path)), NEWEST_SHOWN)


def write_sets(root: Path) -> None:
    write_tiny_set(root / "vector_bak", "20250101_020000", manifest=True)
    write_tiny_set(root / "vector_bak", "20250102_020000", manifest=True)
    for day, task in enumerate(TASKS, start=1):
        write_tiny_set(root / task / "vector_bak", f"202501{day:02}_030000", manifest=True)
        write_tiny_legacy_set(root / task / "vector_bak", f"202501{day:02}_040000")


def test_each_change_lists_only_the_folders_that_changed_and_totals_as_a_full_rebuild(backup_root):
    root = Root(backup_root)
    write_sets(backup_root)
    first = root.update()
    assert first == root.rebuilt() and first.total_backup_sets == 8
    assert sorted(first.listed) == sorted(["vector_bak", *(f"{task}/vector_bak" for task in TASKS)])

    write_tiny_set(backup_root / TASKS[1] / "vector_bak", "20250110_020000", manifest=True)
    added = root.update()
    assert added.listed == (f"{TASKS[1]}/vector_bak",)
    assert added == root.rebuilt() and added.total_backup_sets == 9
    assert added.newest[0]["key"] == "20250110_020000"

    for path in (backup_root / TASKS[0] / "vector_bak").glob("*20250101_030000*"):
        path.unlink()
    removed = root.update()
    assert removed.listed == (f"{TASKS[0]}/vector_bak",)
    assert removed == root.rebuilt() and removed.total_backup_sets == 8

    # The global folder takes a timestamp a task folder has: that set's key moves to
    # <ts>__<task id> though its own folder did not change.
    write_tiny_set(backup_root / "vector_bak", "20250103_030000", manifest=True)
    repeated = root.update()
    assert repeated.listed == ("vector_bak",)
    assert repeated == root.rebuilt()
    assert {record["key"] for record in repeated.newest} >= {"20250103_030000", f"20250103_030000__{TASKS[2]}"}

    unchanged = root.update()
    assert unchanged.listed == () and unchanged == repeated


def test_remembered_lines_missing_damaged_or_of_another_root_mean_a_full_rebuild(backup_root, tmp_path):
    root = Root(backup_root)
    write_sets(backup_root)
    root.update()
    every_folder = sorted(["vector_bak", *(f"{task}/vector_bak" for task in TASKS)])
    state = backup_root / STATE_FOLDER / STATE_FILE

    state.write_text('{"version": 1, "root": "' + str(backup_root) + '", "locations": {"vector_bak": [1]}}')
    damaged = root.update()
    assert sorted(damaged.listed) == every_folder and damaged == root.rebuilt()

    body = json.loads(state.read_text())
    body["locations"]["vector_bak"][1][0][4] = 1  # a line's bytes, where they read well
    state.write_text(json.dumps({**body, "version": 0}))
    other_version = root.update()
    assert sorted(other_version.listed) == every_folder and other_version == root.rebuilt()

    state.unlink()
    missing = root.update()
    assert sorted(missing.listed) == every_folder and missing == root.rebuilt()

    copied = tmp_path / "copied_root"
    shutil.copytree(backup_root, copied)  # folder times kept: the fingerprints match, the root does not
    elsewhere = Root(copied)
    elsewhere.last = root.last
    moved = elsewhere.update()
    assert sorted(moved.listed) == every_folder and moved == elsewhere.rebuilt()
