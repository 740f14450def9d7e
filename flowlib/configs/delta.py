"""Delta at the National Center for Supercomputing Applications (NCSA): Slurm, A100 GPU nodes.

::

    from flowlib.configs.delta import config, fresh_config
    config = fresh_config(account="<your allocation>", partition='gpuA100x4')

The same name as Parsl's ``parsl.configs.delta``, with a module-level ``config``
built at import (no I/O) and ``fresh_config()`` for a new one per load. Run the
workflow on a login node; blocks are Slurm jobs whose worker pools (one per node,
started with ``srun``) connect back to it.

What this config assumes (adjust to your allocation; check the facility's user
guide when something fails):

- GPU jobs go to a GPU partition (``gpuA100x4`` here; ``gpuA40x4`` and others
  exist); each block asks for 32 cores and one GPU of one node
  (``--gpus-per-node=1``) and runs one worker with that GPU. CPU work: ``partition="cpu"``.
- ``account``: your Delta allocation, e.g. ``"bbka-delta-gpu"`` (``accounts`` lists them).
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
    partition: str = "gpuA100x4",
    walltime: str = "00:30:00",
    nodes_per_block: int = 1,
    max_blocks: int = 1,
    worker_init: str = WORKER_INIT_PLACEHOLDER,
    **config_kwargs: Any,
) -> Config:
    """A new Config with one HighThroughputExecutor labelled ``'Delta_GPU_Executor'`` on a SlurmProvider.

    :param account: the allocation to charge (``--account``; None: your default).
    :param partition: the Slurm partition.
    :param walltime: each block's ``--time``.
    :param nodes_per_block: nodes per Slurm job.
    :param max_blocks: the most Slurm jobs at once.
    :param worker_init: shell run in each job before the workers start.
    :param config_kwargs: other :class:`~flowlib.config.Config` keywords.
    """
    return slurm_site(
        label="Delta_GPU_Executor",
        partition=partition,
        account=account,
        walltime=walltime,
        nodes_per_block=nodes_per_block,
        max_blocks=max_blocks,
        worker_init=worker_init,
        config_kwargs=config_kwargs,
        cores_per_node=32,
        gpus_per_node=1,
        max_workers_per_node=1,
        exclusive=False,
    )


config = fresh_config()
"""A Config built at import; load it once (use :func:`fresh_config` to load it again)."""
