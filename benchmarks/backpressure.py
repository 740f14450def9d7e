"""Submitter memory and throughput for long submission loops on htex, with and without backpressure.

Each case runs in a fresh process: ``N`` no-op tasks submitted in one loop whose
futures are dropped (as a campaign that collects results by callback does), on a
HighThroughputExecutor with 2 workers on 127.0.0.1; then the kernel waits for
every task. Prints, per case, the submitter's peak RSS, its growth over the
baseline, and the throughput (tasks/s from the first submission to the last result).

    python benchmarks/backpressure.py                      # 10^4 and 10^6 tasks, bound 10^5 and none
    python benchmarks/backpressure.py --tasks 10000,100000 --bounds 10000,none
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def noop(i):
    return i


def run_case(tasks: int, bound: int | None) -> dict[str, float]:
    import flowlib
    from flowlib import python_app
    from flowlib.config import Config
    from flowlib.executors.high_throughput.executor import HighThroughputExecutor
    from flowlib.providers import LocalProvider

    app = python_app(noop)
    htex = HighThroughputExecutor(
        label="htex",
        address="127.0.0.1",
        max_workers_per_node=2,
        provider=LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1),
    )
    run_dir = tempfile.mkdtemp(prefix="flowlib-backpressure-")
    config = Config(executors=[htex], run_dir=run_dir, max_tasks_in_flight=bound, initialize_logging=False)
    with flowlib.load(config) as dfk:
        app(-1).result(timeout=120)  # workers connected
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        for i in range(tasks):
            app(i)
        dfk.wait_for_current_tasks()
        elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "tasks": tasks,
        "bound": -1 if bound is None else bound,
        "peak_rss_mib": peak / 1024,
        "growth_mib": (peak - baseline) / 1024,
        "tasks_per_s": tasks / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="10000,1000000")
    parser.add_argument("--bounds", default="100000,none")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        tasks, bound = args.case.split(":")
        print(json.dumps(run_case(int(tasks), None if bound == "none" else int(bound))))
        return
    print(f"{'tasks':>10} {'bound':>10} {'peak RSS MiB':>13} {'growth MiB':>11} {'tasks/s':>9}")
    for bound in args.bounds.split(","):
        for tasks in args.tasks.split(","):
            out = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--case", f"{tasks}:{bound}"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            shown = "none" if r["bound"] < 0 else f"{int(r['bound']):,}"
            print(
                f"{int(r['tasks']):>10,} {shown:>10} {r['peak_rss_mib']:>13.0f} "
                f"{r['growth_mib']:>11.0f} {r['tasks_per_s']:>9,.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
