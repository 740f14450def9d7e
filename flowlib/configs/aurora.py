"""Aurora at the Argonne Leadership Computing Facility (ALCF): PBS Pro, 6 Intel GPUs = 12 tiles per node.

::

    from flowlib.configs.aurora import fresh_config
    config = fresh_config(account="MyProject", queue="debug")

Run the workflow on an Aurora login node. Last checked in 2026 against the
facility's public user guide (https://docs.alcf.anl.gov/aurora/): adjust account
and queue, and check the guide when something fails.

What this config assumes:

- PBS Pro jobs need ``-A <project>`` (``account``, no default: set it), a queue
  (``debug``: 1-2 nodes, up to 1 hour; ``debug-scaling``; ``prod``) and
  ``-l filesystems=...`` (``home:flare`` here; add the ones you use).
- A node has two 52-core Intel Xeon CPU Max processors and six Intel Data Center
  GPU Max 1550, each of two tiles; the 12 tiles are used as 12 separate devices.
  Each block asks for ``select=N:ncpus=104`` with ``place=scatter``.
- One worker pool per node is started with Cray PALS ``mpiexec --ppn 1``, not
  pinned (``--cpu-bind none``); it runs 12 workers, one per tile
  (``ZE_AFFINITY_MASK`` = ``0.0``, ``0.1``, ... ``5.1``).
- ``worker_init`` must make flowlib importable on the compute nodes (e.g.
  ``"module load frameworks; source <venv>/bin/activate"``); the default is a
  comment that does nothing.
"""

from __future__ import annotations

from typing import Any

from flowlib.config import Config
from flowlib.configs._common import WORKER_INIT_PLACEHOLDER
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.launchers import MpiExecLauncher
from flowlib.providers.pbspro import PBSProProvider

__all__ = ["TILES", "config", "fresh_config"]

TILES = tuple(f"{gpu}.{tile}" for gpu in range(6) for tile in range(2))
"""The GPU tiles of an Aurora node, as ``ZE_AFFINITY_MASK`` names them."""


def fresh_config(
    *,
    account: str | None = None,
    queue: str = "debug",
    filesystems: str = "home:flare",
    walltime: str = "01:00:00",
    nodes_per_block: int = 1,
    max_blocks: int = 1,
    worker_init: str = WORKER_INIT_PLACEHOLDER,
    **config_kwargs: Any,
) -> Config:
    """A new Config with one HighThroughputExecutor labelled ``"htex_aurora"``.

    :param account: the ALCF project to charge (``-A``); required by the facility.
    :param queue: ``debug``, ``debug-scaling`` or ``prod``.
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
        cpus_per_node=104,
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
        label="htex_aurora",
        provider=provider,
        available_accelerators=list(TILES),
        max_workers_per_node=len(TILES),
    )
    return Config(executors=[executor], **config_kwargs)


config = fresh_config()
"""A Config built at import (``account`` unset: use :func:`fresh_config`)."""
