"""Expanse at the San Diego Supercomputer Center (SDSC): Slurm, 128-core CPU nodes.

::

    from flowlib.configs.expanse import config, fresh_config
    config = fresh_config(account="<your allocation>", partition='compute')

The same name as Parsl's ``parsl.configs.expanse``, with a module-level ``config``
built at import (no I/O) and ``fresh_config()`` for a new one per load. Run the
workflow on a login node; blocks are Slurm jobs whose worker pools (one per node,
started with ``srun``) connect back to it.

What this config assumes (adjust to your allocation; check the facility's user
guide when something fails):

- ``compute`` partition (whole nodes, billed by node); ``shared`` for parts of a node.
- Each block is two nodes; each node's pool runs 32 workers (set
  ``max_workers_per_node`` to what your tasks need).
- ``account``: your Expanse project (``expanse-client user`` lists them).
- ``worker_init`` must make flowlib importable on the compute nodes (e.g.
  ``"module load anaconda; conda activate <env>"``); the default is a comment that
  does nothing.
"""

from __future__ import annotations

from typing import Any

from flowlib.config import Config
from flowlib.configs._common import WORKER_INIT_PLACEHOLDER, slurm_site

__all__ = ["config", "fresh_config"]


def fresh_config(
    *,
    account: str | None = None,
    partition: str = "compute",
    walltime: str = "01:00:00",
    nodes_per_block: int = 2,
    max_blocks: int = 1,
    worker_init: str = WORKER_INIT_PLACEHOLDER,
    **config_kwargs: Any,
) -> Config:
    """A new Config with one HighThroughputExecutor labelled ``'Expanse_CPU_Multinode'`` on a SlurmProvider.

    :param account: the allocation to charge (``--account``; None: your default).
    :param partition: the Slurm partition.
    :param walltime: each block's ``--time``.
    :param nodes_per_block: nodes per Slurm job.
    :param max_blocks: the most Slurm jobs at once.
    :param worker_init: shell run in each job before the workers start.
    :param config_kwargs: other :class:`~flowlib.config.Config` keywords.
    """
    return slurm_site(
        label="Expanse_CPU_Multinode",
        partition=partition,
        account=account,
        walltime=walltime,
        nodes_per_block=nodes_per_block,
        max_blocks=max_blocks,
        worker_init=worker_init,
        config_kwargs=config_kwargs,
        max_workers_per_node=32,
    )


config = fresh_config()
"""A Config built at import; load it once (use :func:`fresh_config` to load it again)."""
