#!/usr/bin/env python3
"""Scale by simulation: one real interchange, up to 2,048 simulated worker pools.

Usage (in the project's venv)::

    python benchmarks/htex_scale.py                      # M = 64 ... 2048, 100,000 tasks per path
    python benchmarks/htex_scale.py --quick              # 8 pools, 2,000 tasks: a smoke test
    python benchmarks/htex_scale.py --managers 2048 --paths executor --rounds 3

The measuring code is :mod:`flowlib.benchmark.scale` (its docstring has the
picture); results go to ``benchmarks/results/htex_scale-<UTC time>.json`` and
``.md`` unless ``--json`` / ``--markdown`` say otherwise.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from flowlib.benchmark.scale import main

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def run(argv: list[str]) -> int:
    if "-h" not in argv and "--help" not in argv:
        stem = RESULTS_DIR / f"htex_scale-{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%dT%H%M%SZ')}"
        if not any(arg.startswith("--json") for arg in argv):
            argv = [*argv, "--json", f"{stem}.json"]
        if not any(arg.startswith("--markdown") for arg in argv):
            argv = [*argv, "--markdown", f"{stem}.md"]
    return main(argv, prog="python benchmarks/htex_scale.py")


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
