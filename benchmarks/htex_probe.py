"""Sequential round trips on htex (2 local workers): executor.submit, python_app, and a 1,000-task chain.

For A/B comparisons of two checkouts on a loaded machine, alternate processes, each
checkout with its own venv, from a directory that holds neither checkout, e.g.::

    cd /tmp && for r in 1 2 3 4 5; do for tree in /work/main /work/wt/mine; do
        $tree/.venv/bin/python /work/wt/mine/benchmarks/htex_probe.py 400; done; done

(``PYTHONPATH=<tree>`` does not select a checkout: an editable install's import hook
comes first, and ``python -m`` puts the current directory first for the
interchange and the pools, which may then run the other checkout's code.)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time

import flowlib
from flowlib.config import Config
from flowlib.executors import HighThroughputExecutor
from flowlib.providers import LocalProvider


def noop(x: object = None) -> object:
    return x


def _median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    executor = HighThroughputExecutor(
        label="htex",
        address="127.0.0.1",
        max_workers_per_node=2,
        provider=LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1),
    )
    with tempfile.TemporaryDirectory() as run_dir, flowlib.load(Config(executors=[executor], run_dir=run_dir)):
        app = flowlib.python_app(noop)
        app().result()
        for _ in range(50):
            executor.submit(noop, None).result()
        direct = []
        for _ in range(n):
            start = time.perf_counter()
            executor.submit(noop, None).result()
            direct.append(time.perf_counter() - start)
        apps = []
        for _ in range(n):
            start = time.perf_counter()
            app().result()
            apps.append(time.perf_counter() - start)
        start = time.perf_counter()
        future = app()
        for _ in range(999):
            future = app(future)
        future.result()
        chain = time.perf_counter() - start
    print(
        f"executor.submit median {_median_us(direct):.1f} us, python_app median {_median_us(apps):.1f} us, "
        f"chain of 1,000 {chain:.3f} s"
    )


if __name__ == "__main__":
    main()
