"""The IN2P3 Computing Centre (CC-IN2P3, Lyon): Grid Engine, run from a login node.

::

    from flowlib.configs.cc_in2p3 import config, fresh_config
    config = fresh_config(queue="long", walltime="02:00:00")

The same name as Parsl's ``parsl.configs.cc_in2p3``. The workflow runs on a login
node (so no GSISSH is needed) and submits Grid Engine jobs with ``qsub``; each job
is one node whose worker pool runs two workers.

What this config assumes:

- ``queue``: None uses the default queue; ``scheduler_options``: extra ``#$``
  lines (e.g. ``"#$ -l sps=1"`` to reach the SPS storage).
- ``worker_init`` must make flowlib importable on the worker nodes; the default is
  a comment that does nothing.
"""

from __future__ import annotations

from typing import Any

from flowlib.config import Config
from flowlib.configs._common import WORKER_INIT_PLACEHOLDER
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.providers.gridengine import GridEngineProvider

__all__ = ["config", "fresh_config"]


def fresh_config(
    *,
    queue: str | None = None,
    walltime: str = "00:20:00",
    max_blocks: int = 1,
    scheduler_options: str = "",
    worker_init: str = WORKER_INIT_PLACEHOLDER,
    **config_kwargs: Any,
) -> Config:
    """A new Config with one HighThroughputExecutor labelled ``"cc_in2p3_htex"`` on a GridEngineProvider.

    :param queue: the Grid Engine queue (``-q``; None: the default).
    :param walltime: each block's ``-l h_rt``.
    :param max_blocks: the most jobs at once.
    :param scheduler_options: extra lines for the submit script.
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
        scheduler_options=scheduler_options,
        worker_init=worker_init,
    )
    executor = HighThroughputExecutor(label="cc_in2p3_htex", provider=provider, max_workers_per_node=2)
    return Config(executors=[executor], **config_kwargs)


config = fresh_config()
"""A Config built at import; load it once (use :func:`fresh_config` to load it again)."""
