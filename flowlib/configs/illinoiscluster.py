"""The Illinois Campus Cluster (University of Illinois Urbana-Champaign): Slurm.

::

    from flowlib.configs.illinoiscluster import config, fresh_config
    config = fresh_config(account="<your allocation>", partition='secondary')

The same name as Parsl's ``parsl.configs.illinoiscluster``, with a module-level ``config``
built at import (no I/O) and ``fresh_config()`` for a new one per load. Run the
workflow on a login node; blocks are Slurm jobs whose worker pools (one per node,
started with ``srun``) connect back to it.

What this config assumes (adjust to your allocation; check the facility's user
guide when something fails):

- ``partition``: ``secondary`` is open to every user (jobs may be preempted);
  your investor partition otherwise.
- Each block is two nodes; each worker takes 16 cores (``cores_per_worker=16``),
  so a 16-core node runs one task at a time.
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
    partition: str = "secondary",
    walltime: str = "00:10:00",
    nodes_per_block: int = 2,
    max_blocks: int = 1,
    worker_init: str = WORKER_INIT_PLACEHOLDER,
    **config_kwargs: Any,
) -> Config:
    """A new Config with one HighThroughputExecutor labelled ``'CC_htex'`` on a SlurmProvider.

    :param account: the allocation to charge (``--account``; None: your default).
    :param partition: the Slurm partition.
    :param walltime: each block's ``--time``.
    :param nodes_per_block: nodes per Slurm job.
    :param max_blocks: the most Slurm jobs at once.
    :param worker_init: shell run in each job before the workers start.
    :param config_kwargs: other :class:`~flowlib.config.Config` keywords.
    """
    return slurm_site(
        label="CC_htex",
        partition=partition,
        account=account,
        walltime=walltime,
        nodes_per_block=nodes_per_block,
        max_blocks=max_blocks,
        worker_init=worker_init,
        config_kwargs=config_kwargs,
        cores_per_worker=16.0,
    )


config = fresh_config()
"""A Config built at import; load it once (use :func:`fresh_config` to load it again)."""
