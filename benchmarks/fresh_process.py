"""What the memory benchmarks share: one case per fresh process, and the resident sizes /proc reports.

A memory figure taken in a process that already ran another case carries that
case's high-water mark and its allocator's free lists, so ``payload_memory.py``
and ``backpressure.py`` run every case as ``python <script> --case ...`` and read
the JSON line it prints last.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any


def run_fresh(script: str, *args: str) -> dict[str, Any]:
    """Run ``script`` with ``args`` in a new interpreter and return the JSON object of its last stdout line."""
    out = subprocess.run(
        [sys.executable, os.path.abspath(script), *args], check=True, capture_output=True, text=True
    ).stdout
    lines = out.strip().splitlines()
    if not lines:
        raise RuntimeError(f"{script} {' '.join(args)} printed nothing")
    return json.loads(lines[-1])


def _status_kib(field: str, pid: int | str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def rss_bytes(pid: int | str = "self") -> int:
    """The resident set size of a process (this one by default)."""
    return _status_kib("VmRSS", pid) * 1024


def high_water_bytes() -> int:
    """This process's resident high-water mark (``VmHWM``: it counts libzmq's buffers, which tracemalloc does not)."""
    return _status_kib("VmHWM", "self") * 1024


def reset_high_water() -> None:
    """Start this process's resident high-water mark again from its current RSS."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def local_htex_config(workers: int, prefix: str, **options: Any) -> Any:
    """A Config with one HighThroughputExecutor ``htex`` of ``workers`` workers in one local block on 127.0.0.1."""
    from flowlib.config import Config
    from flowlib.executors.high_throughput.executor import HighThroughputExecutor
    from flowlib.providers import LocalProvider

    config_options = {key: options.pop(key) for key in ("max_tasks_in_flight", "pace_submissions") if key in options}
    htex = HighThroughputExecutor(
        label="htex",
        address="127.0.0.1",
        max_workers_per_node=workers,
        provider=LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1),
        **options,
    )
    run_dir = tempfile.mkdtemp(prefix=prefix)
    return Config(executors=[htex], run_dir=run_dir, initialize_logging=False, **config_options)
