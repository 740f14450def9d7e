"""The high-throughput executor on this machine: one worker process per usable core (Parsl's ``htex_local``).

::

    from flowlib.configs.htex_local import config, fresh_config

Also importable as :mod:`flowlib.configs.local_htex` (flowlib's earlier name).

Assumes one machine: a :class:`~flowlib.providers.local.LocalProvider` starts one
block (a worker pool) on it. The pool counts the cores it may use when it starts
(its CPU affinity and cgroup quota) and runs one worker per core, unless
``max_workers_per_node`` says fewer. Workers are separate processes, so CPU-bound
Python code runs in parallel; arguments and results are serialized.
"""

from __future__ import annotations

from typing import Any

from flowlib.config import Config
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.providers.local import LocalProvider

__all__ = ["config", "fresh_config"]


def fresh_config(*, max_workers_per_node: int | None = None, **config_kwargs: Any) -> Config:
    """A new Config with one HighThroughputExecutor labelled ``"htex_local"`` on a LocalProvider.

    :param max_workers_per_node: at most this many workers (None: one per usable core).
    :param config_kwargs: other :class:`~flowlib.config.Config` keywords.
    """
    executor = HighThroughputExecutor(
        label="htex_local",
        max_workers_per_node=max_workers_per_node,
        cores_per_worker=1,
        provider=LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1),
    )
    return Config(executors=[executor], **config_kwargs)


config = fresh_config()
"""A Config built at import; load it once (use :func:`fresh_config` to load it again)."""
