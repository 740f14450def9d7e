"""The ``import`` workload: how long ``import <library>`` takes in a fresh interpreter."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from statistics import median
from typing import Any

_IMPORT_PROBE = (
    "import sys, time\nstart = time.perf_counter()\n__import__(sys.argv[1])\nprint(repr(time.perf_counter() - start))\n"
)


def measure_import_time(
    lib_name: str, *, python: str, samples: int, timeout: float, say: Callable[[str], None]
) -> dict[str, Any]:
    """Median wall time of ``import <lib_name>`` over ``samples`` fresh interpreters, run from an empty directory."""
    millis: list[float] = []
    with tempfile.TemporaryDirectory(prefix="flowlib-import-") as neutral_dir:
        for _ in range(samples):
            done = subprocess.run(
                [python, "-c", _IMPORT_PROBE, lib_name],
                cwd=neutral_dir,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"import {lib_name} failed:\n{done.stderr.strip()}")
            millis.append(float(done.stdout.strip().splitlines()[-1]) * 1000.0)
    result = {"module": lib_name, "samples_ms": millis, "median_ms": median(millis), "verified": True}
    say(f"import: import {lib_name} takes {result['median_ms']:.1f} ms (median of {len(millis)})")
    return result
