"""A generic Slurm cluster: worker pools in Slurm batch jobs, one pool per node, started with ``srun``.

::

    from flowlib.configs.slurm import config, fresh_config
    config = fresh_config(partition="compute", account="proj123", nodes_per_block=2, max_blocks=4)

Assumes: this script runs on a machine where ``sbatch``/``squeue``/``scancel``
work (a login node), the compute nodes can open TCP connections back to it, and
the file system holding the run directory is shared with the compute nodes.

Placeholders to adapt:

- ``partition``: ``$FLOWLIB_SLURM_PARTITION`` when set, else None (the cluster's
  default partition);
- ``account``, ``qos``, ``walltime`` ("00:30:00"), ``nodes_per_block`` (1),
  ``max_blocks`` (1);
- ``worker_init``: a comment that does nothing; replace it with the commands that
  activate a Python environment with flowlib on the compute nodes.

Each block asks for whole nodes (``--exclusive``); the pool on each node runs one
worker per core the job step gives it.
"""

from __future__ import annotations

from typing import Any

from flowlib.config import Config
from flowlib.configs._common import WORKER_INIT_PLACEHOLDER, from_env
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.launchers import SrunLauncher
from flowlib.providers.slurm import SlurmProvider

__all__ = ["config", "fresh_config"]


def fresh_config(
    *,
    partition: str | None = None,
    account: str | None = None,
    qos: str | None = None,
    walltime: str = "00:30:00",
    nodes_per_block: int = 1,
    max_blocks: int = 1,
    worker_init: str = WORKER_INIT_PLACEHOLDER,
    **config_kwargs: Any,
) -> Config:
    """A new Config with one HighThroughputExecutor labelled ``"htex_slurm"`` on a SlurmProvider.

    :param partition: ``--partition``; None: ``$FLOWLIB_SLURM_PARTITION``, else the cluster's default.
    :param account: ``--account`` to charge (None: your default account).
    :param qos: ``--qos`` (None: the default).
    :param walltime: each block's ``--time``.
    :param nodes_per_block: nodes per Slurm job.
    :param max_blocks: the most Slurm jobs at once (one is submitted at load; more follow the load).
    :param worker_init: shell run in each job before the workers start.
    :param config_kwargs: other :class:`~flowlib.config.Config` keywords.
    """
    provider = SlurmProvider(
        partition=partition or from_env("FLOWLIB_SLURM_PARTITION"),
        account=account,
        qos=qos,
        walltime=walltime,
        nodes_per_block=nodes_per_block,
        init_blocks=1,
        min_blocks=0,
        max_blocks=max_blocks,
        worker_init=worker_init,
        launcher=SrunLauncher(),
    )
    return Config(executors=[HighThroughputExecutor(label="htex_slurm", provider=provider)], **config_kwargs)


config = fresh_config()
"""A Config built at import; load it once (use :func:`fresh_config` to load it again)."""
