"""Summit at the Oak Ridge Leadership Computing Facility (OLCF): IBM LSF, pools started with ``jsrun``.

::

    from flowlib.configs.summit import config, fresh_config
    config = fresh_config(project="ABC123", nodes_per_block=2)

The same name as Parsl's ``parsl.configs.summit`` (Summit was retired in 2024; the
config suits other LSF machines with ``jsrun``, such as LLNL's Lassen). Run on a
login node; each block is an LSF job whose worker pools (one per node) are started
with ``jsrun``.

What this config assumes:

- ``project``: the allocation to charge (``-P``; required on OLCF machines);
  ``queue``: None uses the default (``batch``).
- Blocks are requested by nodes (``-nnodes``); each node's pool runs one worker per
  core ``jsrun`` gives it, or ``max_workers_per_node``.
- ``worker_init`` must make flowlib importable on the compute nodes; the default
  is a comment that does nothing.
"""

from __future__ import annotations

from typing import Any

from flowlib.config import Config
from flowlib.configs._common import WORKER_INIT_PLACEHOLDER
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.launchers import JsrunLauncher
from flowlib.providers.lsf import LSFProvider

__all__ = ["config", "fresh_config"]


def fresh_config(
    *,
    project: str | None = None,
    queue: str | None = None,
    walltime: str = "00:10:00",
    nodes_per_block: int = 2,
    max_blocks: int = 1,
    max_workers_per_node: int | None = None,
    worker_init: str = WORKER_INIT_PLACEHOLDER,
    **config_kwargs: Any,
) -> Config:
    """A new Config with one HighThroughputExecutor labelled ``"Summit_HTEX"`` on an LSFProvider (jsrun).

    :param project: the allocation to charge (``-P``).
    :param queue: the LSF queue (None: the default).
    :param walltime: each block's walltime.
    :param nodes_per_block: nodes per LSF job.
    :param max_blocks: the most LSF jobs at once.
    :param max_workers_per_node: workers per node's pool (None: one per core).
    :param worker_init: shell run in each job before the workers start.
    :param config_kwargs: other :class:`~flowlib.config.Config` keywords.
    """
    provider = LSFProvider(
        project=project,
        queue=queue,
        walltime=walltime,
        nodes_per_block=nodes_per_block,
        init_blocks=1,
        min_blocks=0,
        max_blocks=max_blocks,
        request_by_nodes=True,
        worker_init=worker_init,
        launcher=JsrunLauncher(),
    )
    executor = HighThroughputExecutor(label="Summit_HTEX", provider=provider, max_workers_per_node=max_workers_per_node)
    return Config(executors=[executor], **config_kwargs)


config = fresh_config()
"""A Config built at import; load it once (use :func:`fresh_config` to load it again)."""
