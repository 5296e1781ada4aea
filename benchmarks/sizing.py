"""The README's Sizing tables, from the per-row costs a scaling run measured.

    python -m benchmarks.sizing benchmarks/results/scaling-A.csv [benchmarks/results/scaling-B.csv ...]

Each CSV is one scaling run (one dimension count each; give a 384 and a 1536 run). For every
dimension count it takes the largest size measured and extrapolates to 1, 10 and 100 million
rows: sizes and backup/restore times linearly (the scaling targets hold them flat per row), an
increment per day at 1% change from the measured increment, and the HNSW build as n log n from
the measured build, to more cores by pgvector's published speed-ups. A figure at a size that was
measured is marked "measured", everything else "extrapolated".
"""

from __future__ import annotations

import math
import sys

PLAN_ROWS = (1_000_000, 10_000_000, 100_000_000)
CHANGED_SHARE = 0.01
ROW_INDEX_BYTES_PER_ROW = 38.5  # the increments section's row index, for runs that did not record it
# pgvector issue #409 (parallel HNSW builds), SIFT 1M x 128 on one machine: 1 process 309 s,
# 2 processes 184 s, 4 processes 107 s, 8 processes 83 s. Here the leader and cores - 1 workers
# build, so a 2-core figure scales to 4 and 8 cores by these ratios.
PROCESS_SECONDS = {2: 184.0, 4: 107.0, 8: 83.0}
GRAPH_BYTES_PER_DIMENSION = 4
GRAPH_ROW_OVERHEAD = 8 + 2 * 16 * 16 + 100  # the vector's header, 2 x m neighbours of 16 bytes, the element
GRAPH_MARGIN = 1.2


def graph_bytes(rows: int, dims: int) -> float:
    """The build's memory estimate, as the restore makes it (m = 16)."""
    return rows * (dims * GRAPH_BYTES_PER_DIMENSION + GRAPH_ROW_OVERHEAD) * GRAPH_MARGIN


def hnsw_seconds(measured_seconds: float, measured_rows: int, rows: int, cores: int) -> float:
    """n log n from the measured build (2 cores, 1 worker), then to ``cores`` by pgvector's ratios."""
    grown = measured_seconds * (rows / measured_rows) * (math.log(rows) / math.log(measured_rows))
    return grown * PROCESS_SECONDS[cores] / PROCESS_SECONDS[2]


def human(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def gigabytes(size: float) -> str:
    if size < 1e9:
        return f"{size / 1e6:.0f} MB"
    return f"{size / 1e9:.1f} GB" if size < 1e11 else f"{size / 1e9:.0f} GB"


def sizing_tables(frame) -> list[str]:
    lines = []
    for dims, run in frame.groupby("dims"):
        top = int(run.rows.max())
        at_top = run[run.rows == top]
        ours = at_top[at_top.tool == "ours"].set_index(["operation", "format"])
        mark = {rows: "measured" if rows <= top and rows in set(run.rows) else "extrapolated" for rows in PLAN_ROWS}
        lines += [f"#### {dims} dimensions (per-row costs measured at {top:,} rows)", ""]
        lines += ["| rows | | " + " | ".join(f"`{fmt}` size" for fmt in _formats(ours, "backup")) + " | backup (`"
                  + "`, `".join(_formats(ours, "backup")) + "`) | restore (`" + "`, `".join(_formats(ours, "restore")) + "`) |",
                  "|---:|---|" + "---:|" * (len(_formats(ours, "backup")) + 2)]
        for rows in PLAN_ROWS:
            scale = rows / top
            sizes = " | ".join(gigabytes(ours.loc[("backup", fmt)].bytes * scale) for fmt in _formats(ours, "backup"))
            backups = ", ".join(human(ours.loc[("backup", fmt)].seconds * scale) for fmt in _formats(ours, "backup"))
            restores = ", ".join(human(ours.loc[("restore", fmt)].seconds * scale) for fmt in _formats(ours, "restore"))
            lines.append(f"| {rows:,} | {mark[rows]} | {sizes} | {backups} | {restores} |")
        increment = ours.loc[("increment", slice(None))].iloc[0]
        changed = max(3, int(top * CHANGED_SHARE))
        per_changed_row = increment.bytes / changed
        index_per_row = increment.get("row_index_bytes", float("nan")) / top
        if index_per_row != index_per_row:  # not recorded by this run
            index_per_row = ROW_INDEX_BYTES_PER_ROW
        build = at_top[at_top.operation == "HNSW build"].iloc[0]
        lines += ["", "| rows | | increment a day at 1% change (data + row index) | HNSW graph in memory "
                  "| HNSW build, 2 cores | 4 cores | 8 cores |", "|---:|---|---:|---:|---:|---:|---:|"]
        for rows in PLAN_ROWS:
            day = per_changed_row * rows * CHANGED_SHARE + index_per_row * rows
            builds = [human(hnsw_seconds(build.seconds, top, rows, cores)) for cores in (2, 4, 8)]
            lines.append(f"| {rows:,} | {mark[rows]} | {gigabytes(day)} | {gigabytes(graph_bytes(rows, int(dims)))} | "
                         + " | ".join(builds) + " |")
        lines.append("")
    return lines


def _formats(ours, operation: str) -> list[str]:
    return [fmt for op, fmt in ours.index if op == operation]


def main(paths: list[str]) -> int:
    import pandas as pd

    if not paths:
        print("usage: python -m benchmarks.sizing SCALING.csv [SCALING.csv ...]", file=sys.stderr)
        return 2
    print("\n".join(sizing_tables(pd.concat([pd.read_csv(path) for path in paths]))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
