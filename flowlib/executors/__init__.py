"""Executors: where tasks run. Engine executors import their engine only when used."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flowlib.executors.base import FlowlibExecutor, ParslExecutor

if TYPE_CHECKING:
    from flowlib.executors.dask import DaskExecutor
    from flowlib.executors.flux import FluxExecutor
    from flowlib.executors.globus_compute import GlobusComputeExecutor
    from flowlib.executors.high_throughput.executor import HighThroughputExecutor
    from flowlib.executors.high_throughput.mpi_executor import MPIExecutor
    from flowlib.executors.radical import RadicalPilotExecutor
    from flowlib.executors.threads import ThreadPoolExecutor

__all__ = [
    "DaskExecutor",
    "FlowlibExecutor",
    "FluxExecutor",
    "GlobusComputeExecutor",
    "HighThroughputExecutor",
    "MPIExecutor",
    "ParslExecutor",
    "RadicalPilotExecutor",
    "ThreadPoolExecutor",
]

_LAZY = {
    "DaskExecutor": "flowlib.executors.dask",
    "FluxExecutor": "flowlib.executors.flux",
    "ThreadPoolExecutor": "flowlib.executors.threads",
    "HighThroughputExecutor": "flowlib.executors.high_throughput.executor",
    "MPIExecutor": "flowlib.executors.high_throughput.mpi_executor",
    "GlobusComputeExecutor": "flowlib.executors.globus_compute",
    "RadicalPilotExecutor": "flowlib.executors.radical",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'flowlib.executors' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
