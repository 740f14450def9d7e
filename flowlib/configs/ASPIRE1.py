"""ASPIRE 1 at the National Supercomputing Centre Singapore (NSCC): PBS Pro, 24-core nodes.

::

    from flowlib.configs.ASPIRE1 import config, fresh_config
    config = fresh_config(account="<project id>", array_jobs=10)

The same name as Parsl's ``parsl.configs.ASPIRE1``. Run on a login node; each
block is a PBS Pro job of three nodes whose worker pools (one per node) are
started with ``mpirun``; each pool runs four workers.

What this config assumes:

- ``queue``: None uses the site's routing queue; the ``medium`` queue allows up to
  24 hours, the walltime set here.
- ``array_jobs``: when > 0, each block is a PBS job array of that many sub-jobs
  (``#PBS -J 1-N``), as Parsl's example shows; 0 (the default) submits plain jobs.
- ``worker_init`` must make flowlib importable on the compute nodes (e.g.
  ``"module load openmpi; source activate <env>"``); the default is a comment that
  does nothing.
"""

from __future__ import annotations

from typing import Any

from flowlib.config import Config
from flowlib.configs._common import WORKER_INIT_PLACEHOLDER
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.launchers import MpiRunLauncher
from flowlib.providers.pbspro import PBSProProvider

__all__ = ["config", "fresh_config"]


def fresh_config(
    *,
    account: str | None = None,
    queue: str | None = None,
    walltime: str = "24:00:00",
    nodes_per_block: int = 3,
    max_blocks: int = 1,
    array_jobs: int = 0,
    worker_init: str = WORKER_INIT_PLACEHOLDER,
    **config_kwargs: Any,
) -> Config:
    """A new Config with one HighThroughputExecutor labelled ``"htex"`` on a PBSProProvider (mpirun).

    :param account: the project to charge (``-A``).
    :param queue: the PBS queue (None: the default).
    :param walltime: each block's walltime.
    :param nodes_per_block: nodes per PBS job.
    :param max_blocks: the most PBS jobs at once.
    :param array_jobs: sub-jobs per block as a PBS job array (0: no array).
    :param worker_init: shell run in each job before the workers start.
    :param config_kwargs: other :class:`~flowlib.config.Config` keywords.
    """
    provider = PBSProProvider(
        account=account,
        queue=queue,
        cpus_per_node=24,
        scheduler_options=f"#PBS -J 1-{array_jobs}" if array_jobs > 0 else "",
        walltime=walltime,
        nodes_per_block=nodes_per_block,
        init_blocks=1,
        min_blocks=0,
        max_blocks=max_blocks,
        worker_init=worker_init,
        launcher=MpiRunLauncher(),
    )
    executor = HighThroughputExecutor(label="htex", provider=provider, max_workers_per_node=4)
    return Config(executors=[executor], **config_kwargs)


config = fresh_config()
"""A Config built at import; load it once (use :func:`fresh_config` to load it again)."""
