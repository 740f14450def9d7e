"""Improv at Argonne's Laboratory Computing Resource Center (LCRC): PBS Pro, 128-core nodes.

::

    from flowlib.configs.improv import config, fresh_config
    config = fresh_config(account="<project>", nodes_per_block=2)

The same name as Parsl's ``parsl.configs.improv``. Run on a login node; each block
is a PBS Pro job in the ``compute`` queue whose worker pools (one per node) are
started with ``mpirun``; each pool runs 32 workers.

What this config assumes:

- ``account``: your LCRC project (``-A``); ``queue``: ``compute`` (or ``debug``,
  ``bigmem``).
- A node has two 64-core AMD EPYC processors (``ncpus=128`` per node).
- ``worker_init`` must make flowlib importable on the compute nodes; the default
  is a comment that does nothing.
"""

from __future__ import annotations

from typing import Any

from flowlib.config import Config
from flowlib.configs._common import WORKER_INIT_PLACEHOLDER
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.launchers import MpiRunLauncher
from flowlib.providers.pbspro import PBSProProvider

__all__ = ["config", "fresh_config"]


def fresh_config(
    *,
    account: str | None = None,
    queue: str = "compute",
    walltime: str = "00:10:00",
    nodes_per_block: int = 2,
    max_blocks: int = 1,
    max_workers_per_node: int = 32,
    worker_init: str = WORKER_INIT_PLACEHOLDER,
    **config_kwargs: Any,
) -> Config:
    """A new Config with one HighThroughputExecutor labelled ``"Improv_multinode"`` on a PBSProProvider.

    :param account: the LCRC project to charge (``-A``).
    :param queue: the PBS queue.
    :param walltime: each block's walltime.
    :param nodes_per_block: nodes per PBS job.
    :param max_blocks: the most PBS jobs at once.
    :param max_workers_per_node: workers in each node's pool.
    :param worker_init: shell run in each job before the workers start.
    :param config_kwargs: other :class:`~flowlib.config.Config` keywords.
    """
    provider = PBSProProvider(
        account=account,
        queue=queue,
        cpus_per_node=128,
        walltime=walltime,
        nodes_per_block=nodes_per_block,
        init_blocks=1,
        min_blocks=0,
        max_blocks=max_blocks,
        worker_init=worker_init,
        launcher=MpiRunLauncher(),
    )
    executor = HighThroughputExecutor(
        label="Improv_multinode", provider=provider, max_workers_per_node=max_workers_per_node
    )
    return Config(executors=[executor], **config_kwargs)


config = fresh_config()
"""A Config built at import; load it once (use :func:`fresh_config` to load it again)."""
