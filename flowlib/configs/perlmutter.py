"""Perlmutter at NERSC: Slurm; GPU nodes with 4 NVIDIA A100, CPU nodes with 2 x 64 cores.

::

    from flowlib.configs.perlmutter import fresh_config
    gpu_config = fresh_config(account="m1234", constraint="gpu")
    cpu_config = fresh_config(account="m1234", constraint="cpu", qos="regular")

Run the workflow on a Perlmutter login node. Last checked in 2026 against the
facility's public documentation (https://docs.nersc.gov/jobs/): adjust account and
qos, and check the documentation when something fails.

What this config assumes:

- Slurm jobs pick the node type with ``--constraint`` (``gpu`` or ``cpu``) and
  the queue with ``--qos`` (``debug``, the default at NERSC, for short tests;
  ``regular`` for production); ``--account`` names the project to charge (your
  default project when None).
- A GPU node has one 64-core AMD EPYC 7763 and 4 A100 GPUs; each GPU block asks
  for ``--gpus-per-node=4`` and its pool runs 4 workers, one per GPU
  (``CUDA_VISIBLE_DEVICES`` = 0..3). A CPU node has two 64-core EPYC 7763; its
  pool runs one worker per core the job step gives it.
- One worker pool per node is started with ``srun``; blocks take whole nodes.
- ``worker_init`` must make flowlib importable on the compute nodes (e.g.
  ``"module load python; conda activate <env>"``); the default is a comment that
  does nothing.
"""

from __future__ import annotations

from typing import Any, Literal

from flowlib.config import Config
from flowlib.configs._common import WORKER_INIT_PLACEHOLDER
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.launchers import SrunLauncher
from flowlib.providers.slurm import SlurmProvider

__all__ = ["GPUS_PER_NODE", "config", "fresh_config"]

GPUS_PER_NODE = 4
"""NVIDIA A100 GPUs in a Perlmutter GPU node."""


def fresh_config(
    *,
    account: str | None = None,
    constraint: Literal["gpu", "cpu"] = "gpu",
    qos: str = "debug",
    walltime: str = "00:30:00",
    nodes_per_block: int = 1,
    max_blocks: int = 1,
    worker_init: str = WORKER_INIT_PLACEHOLDER,
    **config_kwargs: Any,
) -> Config:
    """A new Config with one HighThroughputExecutor labelled ``"htex_perlmutter_gpu"`` or ``"..._cpu"``.

    :param account: the NERSC project to charge (None: your default project).
    :param constraint: ``"gpu"`` or ``"cpu"`` nodes.
    :param qos: ``debug``, ``regular``, ...
    :param walltime: each block's ``--time``.
    :param nodes_per_block: nodes per Slurm job.
    :param max_blocks: the most Slurm jobs at once.
    :param worker_init: shell run in each job before the workers start.
    :param config_kwargs: other :class:`~flowlib.config.Config` keywords.
    """
    if constraint not in ("gpu", "cpu"):
        raise ValueError(f"perlmutter.fresh_config: constraint must be 'gpu' or 'cpu', got {constraint!r}")
    gpu = constraint == "gpu"
    provider = SlurmProvider(
        account=account,
        constraint=constraint,
        qos=qos,
        gpus_per_node=GPUS_PER_NODE if gpu else None,
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
        label=f"htex_perlmutter_{constraint}",
        provider=provider,
        available_accelerators=GPUS_PER_NODE if gpu else (),
        max_workers_per_node=GPUS_PER_NODE if gpu else None,
    )
    return Config(executors=[executor], **config_kwargs)


config = fresh_config()
"""A Config built at import: GPU nodes, debug qos, your default project."""
