"""Benchmark tooling: ``flowlib-perf`` and the workloads behind it.

The workloads are written against the Parsl-compatible API only and import the
library under test by name, so the same code measures flowlib and Parsl::

    from flowlib.benchmark import Options, run_workloads
    results = run_workloads("flowlib", config, Options(workloads=("throughput",)))

This package imports only the standard library and refers to its own modules
relatively, so ``benchmarks/side_by_side.py`` can load it by file path in an
interpreter that imports nothing of flowlib but what it benchmarks. (pyzmq is
imported inside :mod:`.rawcopy` when a raw copy is measured.) Two modules are
flowlib's own and are never loaded that way: :mod:`.scale` (scale by
simulation of the high-throughput executor) and :mod:`.simulated_managers`.
"""

from .configs import load_config_file, make_config
from .workloads import WORKLOADS, BenchmarkError, Options, run_workloads

__all__ = [
    "WORKLOADS",
    "BenchmarkError",
    "Options",
    "load_config_file",
    "make_config",
    "run_workloads",
]
