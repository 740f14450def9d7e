"""Bridges-2 at the Pittsburgh Supercomputing Center (PSC): Slurm, one worker per node over two-node blocks.

::

    from flowlib.configs.bridges import config, fresh_config
    config = fresh_config(account="<your allocation>", partition='RM')

The same name as Parsl's ``parsl.configs.bridges``, with a module-level ``config``
built at import (no I/O) and ``fresh_config()`` for a new one per load. Run the
workflow on a login node; blocks are Slurm jobs whose worker pools (one per node,
started with ``srun``) connect back to it.

What this config assumes (adjust to your allocation; check the facility's user
guide when something fails):

- ``partition``: ``RM`` (regular memory, whole 128-core nodes), ``RM-shared``,
  ``EM`` or ``GPU``: pick yours.
- Each block is two nodes; one worker pool per node, each with one worker (a task
  that uses the whole node, e.g. a threaded or MPI-less multicore program).
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
    partition: str = "RM",
    walltime: str = "00:10:00",
    nodes_per_block: int = 2,
    max_blocks: int = 1,
    worker_init: str = WORKER_INIT_PLACEHOLDER,
    **config_kwargs: Any,
) -> Config:
    """A new Config with one HighThroughputExecutor labelled ``'Bridges_HTEX_multinode'`` on a SlurmProvider.

    :param account: the allocation to charge (``--account``; None: your default).
    :param partition: the Slurm partition.
    :param walltime: each block's ``--time``.
    :param nodes_per_block: nodes per Slurm job.
    :param max_blocks: the most Slurm jobs at once.
    :param worker_init: shell run in each job before the workers start.
    :param config_kwargs: other :class:`~flowlib.config.Config` keywords.
    """
    return slurm_site(
        label="Bridges_HTEX_multinode",
        partition=partition,
        account=account,
        walltime=walltime,
        nodes_per_block=nodes_per_block,
        max_blocks=max_blocks,
        worker_init=worker_init,
        config_kwargs=config_kwargs,
        max_workers_per_node=1,
    )


config = fresh_config()
"""A Config built at import; load it once (use :func:`fresh_config` to load it again)."""
