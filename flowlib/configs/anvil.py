"""Anvil at Purdue's Rosen Center for Advanced Computing (RCAC), an ACCESS machine: Slurm, GPU nodes.

::

    from flowlib.configs.anvil import config, fresh_config
    config = fresh_config(account="<your allocation>", partition='gpu')

The same name as Parsl's ``parsl.configs.anvil``, with a module-level ``config``
built at import (no I/O) and ``fresh_config()`` for a new one per load. Run the
workflow on a login node; blocks are Slurm jobs whose worker pools (one per node,
started with ``srun``) connect back to it.

What this config assumes (adjust to your allocation; check the facility's user
guide when something fails):

- GPU jobs go to the ``gpu`` partition; each block asks for one node and one
  GPU (``--gpus-per-node=1``) and runs one worker, which sees that GPU. For CPU
  work use ``partition="wholenode"`` (whole 128-core nodes) with ``gpus_per_node=None``
  and more workers per node.
- ``account``: your ACCESS allocation on Anvil (``mybalance`` lists them), e.g. ``"abc123-gpu"``.
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
    partition: str = "gpu",
    walltime: str = "00:30:00",
    nodes_per_block: int = 1,
    max_blocks: int = 1,
    worker_init: str = WORKER_INIT_PLACEHOLDER,
    **config_kwargs: Any,
) -> Config:
    """A new Config with one HighThroughputExecutor labelled ``'Anvil_GPU_Executor'`` on a SlurmProvider.

    :param account: the allocation to charge (``--account``; None: your default).
    :param partition: the Slurm partition.
    :param walltime: each block's ``--time``.
    :param nodes_per_block: nodes per Slurm job.
    :param max_blocks: the most Slurm jobs at once.
    :param worker_init: shell run in each job before the workers start.
    :param config_kwargs: other :class:`~flowlib.config.Config` keywords.
    """
    return slurm_site(
        label="Anvil_GPU_Executor",
        partition=partition,
        account=account,
        walltime=walltime,
        nodes_per_block=nodes_per_block,
        max_blocks=max_blocks,
        worker_init=worker_init,
        config_kwargs=config_kwargs,
        cores_per_node=4,
        gpus_per_node=1,
        max_workers_per_node=1,
        exclusive=False,
    )


config = fresh_config()
"""A Config built at import; load it once (use :func:`fresh_config` to load it again)."""
