"""python run.py LAYOUT make|add|change|answer: one client's step, its result printed as JSON.

Run with the clients' own python (.venv/clients/bin/python), the database's libpq DSN in
CLIENT_PG_DSN. ``make`` builds the store as the client's documentation does, ``add`` adds a few
documents, ``change`` adds, rewrites and deletes documents through the client, ``answer`` asks
the fixed questions with index scans off (exact answers).
"""

from __future__ import annotations

import importlib
import json
import sys

LAYOUTS = {"langchain_postgres": "with_langchain_postgres", "llamaindex": "with_llamaindex", "pgai": "with_pgai"}
STEPS = ("make", "add", "change", "answer")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in LAYOUTS or argv[1] not in STEPS:
        print(f"usage: run.py {'|'.join(LAYOUTS)} {'|'.join(STEPS)}", file=sys.stderr)
        return 2
    client = importlib.import_module(LAYOUTS[argv[0]])
    print(json.dumps(getattr(client, argv[1])()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
