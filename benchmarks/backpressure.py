"""Submitter memory and throughput for long submission loops on htex, with and without backpressure.

Each case runs in a fresh process: ``N`` no-op tasks submitted in one loop whose
futures are dropped (as a campaign that collects results by callback does), on a
HighThroughputExecutor with 2 workers on 127.0.0.1; then the kernel waits for
every task. Prints, per case, the submitter's peak RSS, its growth over the
baseline, and the throughput (tasks/s from the first submission to the last result);
also the seconds the submitter spent in garbage collection (all generations, and the
oldest alone) and the interchange's RSS before and after the loop.

    python benchmarks/backpressure.py                      # 10^4 and 10^6 tasks, bound 10^5 and none
    python benchmarks/backpressure.py --tasks 10000,100000 --bounds 10000,none
    python benchmarks/backpressure.py --tasks 10000,1000000 --bounds 1000000 --pacing on,off
"""

from __future__ import annotations

import argparse
import json
import resource
import time

from fresh_process import local_htex_config, rss_bytes, run_fresh


def noop(i):
    return i


class _GCTimer:
    """Seconds spent in the garbage collector, in total and in full (oldest generation) collections."""

    def __init__(self) -> None:
        self.total = self.full = 0.0
        self._started = 0.0
        self.by_generation = [[0, 0.0], [0, 0.0], [0, 0.0]]  # collections and seconds per generation

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        spent = time.perf_counter() - self._started
        self.total += spent
        self.by_generation[info["generation"]][0] += 1
        self.by_generation[info["generation"]][1] += spent
        if info["generation"] == 2:
            self.full += spent


def run_case(tasks: int, bound: int | None, pacing: bool = True) -> dict[str, float]:
    import gc

    import flowlib
    from flowlib import python_app

    app = python_app(noop)
    config = local_htex_config(2, "flowlib-backpressure-", max_tasks_in_flight=bound, pace_submissions=pacing)
    htex = config.executors[0]
    with flowlib.load(config) as dfk:
        app(-1).result(timeout=120)  # workers connected
        interchange = htex._client.process.pid
        interchange_before = rss_bytes(interchange) / (1 << 20)
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        timer = _GCTimer()
        gc.callbacks.append(timer)
        start = time.perf_counter()
        for i in range(tasks):
            app(i)
        dfk.wait_for_current_tasks()
        elapsed = time.perf_counter() - start
        gc.callbacks.remove(timer)
        interchange_after = rss_bytes(interchange) / (1 << 20)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "tasks": tasks,
        "bound": -1 if bound is None else bound,
        "pacing": pacing,
        "peak_rss_mib": peak / 1024,
        "growth_mib": (peak - baseline) / 1024,
        "tasks_per_s": tasks / elapsed,
        "gc_s": timer.total,
        "gc_full_s": timer.full,
        "gc_by_generation": timer.by_generation,
        "interchange_rss_mib": [interchange_before, interchange_after],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="10000,1000000")
    parser.add_argument("--bounds", default="100000,none")
    parser.add_argument("--pacing", default="on", help="on, off or on,off: Config(pace_submissions=...)")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        tasks, bound, pacing = args.case.split(":")
        print(json.dumps(run_case(int(tasks), None if bound == "none" else int(bound), pacing == "on")))
        return
    print(
        f"{'tasks':>10} {'bound':>10} {'pacing':>6} {'peak RSS MiB':>13} {'growth MiB':>11} {'tasks/s':>9} "
        f"{'GC s':>6} {'full GC s':>9} {'interchange RSS MiB':>20}"
    )
    cases = [(b, p) for b in args.bounds.split(",") for p in args.pacing.split(",")]
    for bound, pacing in cases:
        for tasks in args.tasks.split(","):
            r = run_fresh(__file__, "--case", f"{tasks}:{bound}:{pacing}")
            shown = "none" if r["bound"] < 0 else f"{int(r['bound']):,}"
            print(
                f"{int(r['tasks']):>10,} {shown:>10} {pacing:>6} {r['peak_rss_mib']:>13.0f} "
                f"{r['growth_mib']:>11.0f} {r['tasks_per_s']:>9,.0f} {r['gc_s']:>6.1f} {r['gc_full_s']:>9.1f} "
                f"{r['interchange_rss_mib'][0]:>9.0f} -> {r['interchange_rss_mib'][1]:>6.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
