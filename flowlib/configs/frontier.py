"""Frontier at the Oak Ridge Leadership Computing Facility (OLCF): Slurm, 8 AMD GPUs (GCDs) per node.

::

    from flowlib.configs.frontier import fresh_config
    config = fresh_config(account="ABC123", nodes_per_block=2)

Run the workflow on a Frontier login node. Last checked in 2026 against the
facility's public user guide (https://docs.olcf.ornl.gov/systems/frontier_user_guide.html):
adjust account, partition and qos, and check the guide when something fails.

What this config assumes:

- Slurm jobs need ``--account`` (your project id, no default: set it); the
  partition is ``batch`` (``extended`` for small long jobs); ``qos="debug"`` gives
  short test jobs a higher priority.
- A node has one 64-core AMD EPYC CPU (56 cores usable by jobs in the default
  low-noise mode) and four MI250X, i.e. 8 GCDs that Slurm and ROCm show as 8
  GPUs. Each block asks for whole nodes with ``--gpus-per-node=8``, so the job
  step that runs the pool sees all 8.
- One worker pool per node is started with ``srun``; it runs 8 workers, one per
  GCD (``ROCR_VISIBLE_DEVICES`` = 0..7). If the workers see no GPU, add
  ``--gpus-per-node=8`` to the SrunLauncher's ``overrides``.
- ``worker_init`` must make flowlib importable on the compute nodes (e.g.
  ``"module load cray-python; source <venv>/bin/activate"``); the default is a
  comment that does nothing.
"""

from __future__ import annotations

from typing import Any

from flowlib.config import Config
from flowlib.configs._common import WORKER_INIT_PLACEHOLDER
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.launchers import SrunLauncher
from flowlib.providers.slurm import SlurmProvider

__all__ = ["GCDS_PER_NODE", "config", "fresh_config"]

GCDS_PER_NODE = 8
"""Graphics compute dies (GPUs, as Slurm counts them) in a Frontier node."""


def fresh_config(
    *,
    account: str | None = None,
    partition: str = "batch",
    qos: str | None = None,
    walltime: str = "01:00:00",
    nodes_per_block: int = 1,
    max_blocks: int = 1,
    worker_init: str = WORKER_INIT_PLACEHOLDER,
    **config_kwargs: Any,
) -> Config:
    """A new Config with one HighThroughputExecutor labelled ``"htex_frontier"``.

    :param account: the OLCF project to charge (``--account``); required by the facility.
    :param partition: ``batch`` or ``extended``.
    :param qos: e.g. ``"debug"`` for short tests (None: the default).
    :param walltime: each block's ``--time``.
    :param nodes_per_block: nodes per Slurm job.
    :param max_blocks: the most Slurm jobs at once.
    :param worker_init: shell run in each job before the workers start.
    :param config_kwargs: other :class:`~flowlib.config.Config` keywords.
    """
    provider = SlurmProvider(
        account=account,
        partition=partition,
        qos=qos,
        gpus_per_node=GCDS_PER_NODE,
        exclusive=True,
        walltime=walltime,
        nodes_per_block=nodes_per_block,
        init_blocks=1,
        min_blocks=0,
        max_blocks=max_blocks,
        worker_init=worker_init,
        launcher=SrunLauncher(),
    )
    executor = HighThroughputExecutor(
        label="htex_frontier",
        provider=provider,
        available_accelerators=GCDS_PER_NODE,
        max_workers_per_node=GCDS_PER_NODE,
    )
    return Config(executors=[executor], **config_kwargs)


config = fresh_config()
"""A Config built at import (``account`` unset: use :func:`fresh_config`)."""
