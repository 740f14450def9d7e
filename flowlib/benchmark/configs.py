"""Benchmark configurations, built by library name so one definition serves both.

``make_config("parsl", "threads")`` and ``make_config("flowlib", "threads")``
build the same configuration with each library's own classes (flowlib keeps
Parsl's module paths and keyword names). A user's own configuration comes from
a Python file defining a module-level ``config``, as with ``parsl-perf``.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

__all__ = ["EXECUTORS", "MONITORING_MODES", "load_config_file", "make_config", "make_monitoring_hub"]

#: Executor kinds understood by :func:`make_config`.
EXECUTORS: tuple[str, ...] = ("threads", "htex", "dask", "flux", "radical-pilot")

#: Monitoring modes understood by :func:`make_config`: none, state tracking only
#: (``resource_monitoring_enabled=False``), and the hub's defaults (resource
#: sampling at the library's default interval), and resource sampling every
#: 0.1 s (``resources-fast``: the sampler's cost made visible in a short run).
MONITORING_MODES: tuple[str, ...] = ("off", "state", "resources", "resources-fast")


def make_monitoring_hub(lib_name: str, mode: str, db_path: str | Path) -> Any:
    """Build library *lib_name*'s own ``MonitoringHub`` for *mode*, writing to SQLite at *db_path*.

    Only keywords both libraries document are used: ``logging_endpoint`` and
    ``resource_monitoring_enabled``; everything else keeps each library's default.
    """
    if mode not in MONITORING_MODES[1:]:
        raise ValueError(f"unknown monitoring mode {mode!r}; choose from {', '.join(MONITORING_MODES)}")
    monitoring = importlib.import_module(f"{lib_name}.monitoring")
    extra: dict[str, Any] = {"resource_monitoring_interval": 0.1} if mode == "resources-fast" else {}
    return monitoring.MonitoringHub(
        logging_endpoint="sqlite:///" + str(Path(db_path).absolute()),
        resource_monitoring_enabled=mode.startswith("resources"),
        **extra,
    )


def make_config(
    lib_name: str,
    executor: str = "threads",
    *,
    workers: int = 2,
    monitoring: str = "off",
    monitoring_db: str | Path | None = None,
) -> Any:
    """Build the benchmark's standard configuration for library *lib_name*.

    ``threads``: one ``ThreadPoolExecutor(max_threads=workers, label='threads')``.
    ``htex``: one ``HighThroughputExecutor`` on this machine only: a
    ``LocalProvider`` with one block, *workers* workers, address 127.0.0.1.
    ``dask``: one ``DaskExecutor`` (flowlib only; Parsl has none) on a
    ``LocalCluster`` it makes: *workers* worker processes of one thread each.
    ``radical-pilot``: one ``RadicalPilotExecutor`` on ``local.localhost``: a pilot
    of *workers* + 2 cores, one RAPTOR master and one worker of *workers* cores,
    bulk mode (set ``RADICAL_DEFAULT_IFACE=lo`` and ``RADICAL_PROFILE=FALSE`` on a
    machine without outside network).
    ``flux``: one ``FluxExecutor`` on a ``LocalProvider``: a Flux instance on
    this machine started with the ``flux`` on PATH (the ``flux`` package must be
    importable). Everything else (logging included) keeps the library's
    defaults, because that is what users get. *monitoring* other than
    ``"off"`` adds the library's ``MonitoringHub`` (see
    :func:`make_monitoring_hub`) writing to *monitoring_db*.
    """
    if executor == "dask" and lib_name != "flowlib":
        raise ValueError(f"{lib_name} has no DaskExecutor; the 'dask' executor is flowlib's only")
    if monitoring not in MONITORING_MODES:
        raise ValueError(f"unknown monitoring mode {monitoring!r}; choose from {', '.join(MONITORING_MODES)}")
    hub = None
    if monitoring != "off":
        if monitoring_db is None:
            raise ValueError(f"monitoring mode {monitoring!r} needs a database path")
        hub = make_monitoring_hub(lib_name, monitoring, monitoring_db)
    config_module = importlib.import_module(f"{lib_name}.config")
    if executor == "threads":
        threads = importlib.import_module(f"{lib_name}.executors.threads")
        chosen = threads.ThreadPoolExecutor(max_threads=workers, label="threads")
    elif executor == "htex":
        executors = importlib.import_module(f"{lib_name}.executors")
        providers = importlib.import_module(f"{lib_name}.providers")
        chosen = executors.HighThroughputExecutor(
            label="htex",
            address="127.0.0.1",
            max_workers_per_node=workers,
            provider=providers.LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1),
        )
    elif executor == "dask":
        dask = importlib.import_module("flowlib.executors.dask")
        chosen = dask.DaskExecutor(label="dask", local_cluster_kwargs={"n_workers": workers, "threads_per_worker": 1})
    elif executor == "flux":
        executors = importlib.import_module(f"{lib_name}.executors")
        providers = importlib.import_module(f"{lib_name}.providers")
        chosen = executors.FluxExecutor(label="flux", provider=providers.LocalProvider())
    elif executor == "radical-pilot":
        import os
        import tempfile

        radical = importlib.import_module(f"{lib_name}.executors.radical")
        chosen = radical.RadicalPilotExecutor(
            "local.localhost",
            label="rp",
            bulk_mode=True,
            rpex_cfg=radical.ResourceConfig(worker_cores_per_node=workers),
            cores=workers + 2,
            runtime=60,
            sandbox=os.path.join(tempfile.mkdtemp(prefix="flowlib-perf-rp-"), "sandbox"),
        )
    else:
        raise ValueError(f"unknown executor {executor!r}; choose from {', '.join(EXECUTORS)}")
    if hub is None:
        return config_module.Config(executors=[chosen])
    return config_module.Config(executors=[chosen], monitoring=hub)


def load_config_file(path: str | Path) -> Any:
    """Run the Python file at *path* and return its module-level ``config``."""
    location = Path(path)
    if not location.is_file():
        raise FileNotFoundError(f"no config file at {location}")
    spec = importlib.util.spec_from_file_location("flowlib_benchmark_user_config", location)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {location} as Python")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        return module.config
    except AttributeError:
        raise AttributeError(f"{location} defines no module-level 'config'") from None
