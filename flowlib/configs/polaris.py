"""Polaris at the Argonne Leadership Computing Facility (ALCF): PBS Pro, 4 NVIDIA A100 GPUs per node.

::

    from flowlib.configs.polaris import fresh_config
    config = fresh_config(account="MyProject", queue="debug", nodes_per_block=2)

Run the workflow on a Polaris login node. Last checked in 2026 against the
facility's public user guide (https://docs.alcf.anl.gov/polaris/): adjust account
and queue, and check the guide when something fails.

What this config assumes:

- PBS Pro jobs need ``-A <project>`` (``account``, no default: set it), a queue
  (``debug``: 1-2 nodes, up to 1 hour; ``debug-scaling``, ``preemptable``,
  ``prod`` for 10 nodes and more) and ``-l filesystems=...`` naming the file
  systems the job uses (``home:eagle`` here; add yours, e.g. ``home:eagle:grand``).
- A node has one 32-core AMD EPYC CPU and 4 A100 GPUs; each block asks for
  ``select=N:ncpus=32:system=polaris`` with ``place=scatter`` (Polaris gives
  whole nodes).
- One worker pool per node is started with Cray PALS ``mpiexec --ppn 1``, not
  pinned (``--cpu-bind none``); it runs 4 workers, one per GPU
  (``CUDA_VISIBLE_DEVICES`` = 0..3).
- ``worker_init`` must make flowlib importable on the compute nodes, e.g.
  ``"module use /soft/modulefiles; module load conda; conda activate <env>"``;
  the default is a comment that does nothing.
"""

from __future__ import annotations

from typing import Any

from flowlib.config import Config
from flowlib.configs._common import WORKER_INIT_PLACEHOLDER
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.launchers import MpiExecLauncher
from flowlib.providers.pbspro import PBSProProvider

__all__ = ["GPUS_PER_NODE", "config", "fresh_config"]

GPUS_PER_NODE = 4
"""NVIDIA A100 GPUs in a Polaris compute node."""


def fresh_config(
    *,
    account: str | None = None,
    queue: str = "debug",
    filesystems: str = "home:eagle",
    walltime: str = "01:00:00",
    nodes_per_block: int = 1,
    max_blocks: int = 1,
    worker_init: str = WORKER_INIT_PLACEHOLDER,
    **config_kwargs: Any,
) -> Config:
    """A new Config with one HighThroughputExecutor labelled ``"htex_polaris"``.

    :param account: the ALCF project to charge (``-A``); required by the facility.
    :param queue: ``debug``, ``debug-scaling``, ``preemptable`` or ``prod``.
    :param filesystems: the ``-l filesystems=`` value.
    :param walltime: each block's walltime.
    :param nodes_per_block: nodes per PBS job.
    :param max_blocks: the most PBS jobs at once.
    :param worker_init: shell run in each job before the workers start.
    :param config_kwargs: other :class:`~flowlib.config.Config` keywords.
    """
    provider = PBSProProvider(
        account=account,
        queue=queue,
        cpus_per_node=32,
        select_options="system=polaris",
        scheduler_options=f"#PBS -l filesystems={filesystems}\n#PBS -l place=scatter",
        walltime=walltime,
        nodes_per_block=nodes_per_block,
        init_blocks=1,
        min_blocks=0,
        max_blocks=max_blocks,
        worker_init=worker_init,
        launcher=MpiExecLauncher(bind_cmd="--cpu-bind", overrides="--ppn 1"),
    )
    executor = HighThroughputExecutor(
        label="htex_polaris",
        provider=provider,
        available_accelerators=GPUS_PER_NODE,
        max_workers_per_node=GPUS_PER_NODE,
    )
    return Config(executors=[executor], **config_kwargs)


config = fresh_config()
"""A Config built at import (``account`` unset: use :func:`fresh_config`)."""
