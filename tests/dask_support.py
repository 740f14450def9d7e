"""One real Dask LocalCluster (worker processes) shared by the tests of a pytest process.

A cluster takes about a second to start; the behavioural suite builds one executor
per test, so every executor gets its own Client to this shared cluster (a cluster
passed in is left running by the executor) and the cluster is closed at exit.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import Any

from conftest import REPO_ROOT

_cluster: Any = None


def shared_cluster() -> Any:
    """The process-wide LocalCluster: 1 worker process with 2 threads and a GPU=1 resource."""
    global _cluster
    if _cluster is None:
        from distributed import LocalCluster

        # Spawned worker processes import the test modules that define the apps.
        for path in (REPO_ROOT, os.path.join(REPO_ROOT, "tests")):
            if path not in sys.path:
                sys.path.insert(0, path)
        _cluster = LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            resources={"GPU": 1, "MEMORY": 1e9},
        )
        atexit.register(_cluster.close)
    return _cluster


def make_executor(tmp_path: Any, label: str = "exec") -> Any:
    from flowlib.executors.dask import DaskExecutor

    return DaskExecutor(shared_cluster(), label=label)
