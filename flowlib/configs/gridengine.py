"""A generic Grid Engine cluster (Son of Grid Engine, Univa/Altair Grid Engine): one worker pool per job.

::

    from flowlib.configs.gridengine import config, fresh_config
    config = fresh_config(queue="all.q", max_blocks=8)

Assumes: ``qsub``/``qstat``/``qdel`` work where this script runs, the execution
hosts can open TCP connections back to it, and the run directory is on a shared
file system. Each block is a single-host job (Grid Engine spreads a job over
several hosts only through a parallel environment; for that, build a
:class:`~flowlib.providers.GridEngineProvider` with ``pe=`` and a multi-node
launcher yourself).

Placeholders to adapt: ``queue`` (None: the cluster's default), ``walltime``
("00:30:00", sent as ``-l h_rt``), ``max_blocks`` (1) and ``worker_init`` (a
comment that does nothing: activate a Python environment with flowlib there).
The pool runs one worker per core it may use on its host.
"""

from __future__ import annotations

from typing import Any

from flowlib.config import Config
from flowlib.configs._common import WORKER_INIT_PLACEHOLDER
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.launchers import SingleNodeLauncher
from flowlib.providers.gridengine import GridEngineProvider

__all__ = ["config", "fresh_config"]


def fresh_config(
    *,
    queue: str | None = None,
    walltime: str = "00:30:00",
    max_blocks: int = 1,
    worker_init: str = WORKER_INIT_PLACEHOLDER,
    **config_kwargs: Any,
) -> Config:
    """A new Config with one HighThroughputExecutor labelled ``"htex_gridengine"`` on a GridEngineProvider.

    :param queue: ``-q`` queue (None: the cluster's default).
    :param walltime: each block's ``-l h_rt``.
    :param max_blocks: the most Grid Engine jobs at once.
    :param worker_init: shell run in each job before the workers start.
    :param config_kwargs: other :class:`~flowlib.config.Config` keywords.
    """
    provider = GridEngineProvider(
        queue=queue,
        walltime=walltime,
        nodes_per_block=1,
        init_blocks=1,
        min_blocks=0,
        max_blocks=max_blocks,
        worker_init=worker_init,
        launcher=SingleNodeLauncher(),
    )
    return Config(executors=[HighThroughputExecutor(label="htex_gridengine", provider=provider)], **config_kwargs)


config = fresh_config()
"""A Config built at import; load it once (use :func:`fresh_config` to load it again)."""
