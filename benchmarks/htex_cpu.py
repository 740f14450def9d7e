#!/usr/bin/env python3
"""CPU time per no-op task in each process of a local htex run: submitter, interchange, pool, workers.

Usage::

    .venv/bin/python benchmarks/htex_cpu.py [--tasks N] [--workers 2]

Starts the benchmark's standard htex configuration (one ``LocalProvider`` block,
``--workers`` workers), warms up, then submits N no-op ``python_app`` tasks and
waits for all. Prints the rate, the garbage collector's time in the submitter,
and for every process the CPU time (user + system) it used during the timed
part divided by N. CPU time per task is steadier than the rate on a shared
machine: on 2 cores, the sum over all processes bounds the rate from above
(2 / sum tasks per second).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _processes(htex: Any) -> dict[str, Any]:
    import psutil

    client = htex._client
    found: dict[str, Any] = {"submitter": psutil.Process(), "interchange": psutil.Process(client.process.pid)}
    socket_path = str(client.pool_socket)
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "worker_pool" in " ".join(cmdline) and socket_path in cmdline:
            found["pool manager"] = proc
            workers = [child for child in proc.children(recursive=True) if not child.children()]
            for index, worker in enumerate(sorted(workers, key=lambda p: p.pid)):
                found[f"pool process {index} (worker, or resource tracker)"] = worker
    return found


def _cpu(processes: dict[str, Any]) -> dict[str, float]:
    seconds = {}
    for name, proc in processes.items():
        times = proc.cpu_times()
        seconds[name] = times.user + times.system
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=30000)
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args()

    import flowlib
    from flowlib.benchmark.configs import make_config
    from flowlib.benchmark.workloads import _make_apps

    dfk = flowlib.load(make_config("flowlib", "htex", workers=options.workers))
    try:
        apps = _make_apps(flowlib)
        for fut in [apps.noop(b"") for _ in range(2000)]:
            fut.result()
        processes = _processes(dfk.executors["htex"])
        spent = [0.0]
        started = [0.0]

        def gc_timer(phase: str, info: dict) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                spent[0] += time.perf_counter() - started[0]

        before = _cpu(processes)
        gc.callbacks.append(gc_timer)
        start = time.perf_counter()
        futures = [apps.noop(b"") for _ in range(options.tasks)]
        for fut in futures:
            fut.result()
        elapsed = time.perf_counter() - start
        gc.callbacks.remove(gc_timer)
        after = _cpu(processes)
    finally:
        dfk.cleanup()
    n = options.tasks
    print(f"{n} tasks in {elapsed:.3f} s = {n / elapsed:,.0f} tasks/s; load average {os.getloadavg()[0]:.1f}")
    print(f"  garbage collector in the submitter: {spent[0]:.2f} s ({spent[0] / n * 1e6:.1f} us per task)")
    total = 0.0
    for name in processes:
        per_task = (after[name] - before[name]) / n * 1e6
        total += per_task
        print(f"  {per_task:6.1f} us CPU per task  {name}")
    print(f"  {total:6.1f} us CPU per task  all processes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
