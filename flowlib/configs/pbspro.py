"""A generic PBS Professional / OpenPBS cluster: worker pools in PBS jobs, one pool per node.

::

    from flowlib.configs.pbspro import config, fresh_config
    config = fresh_config(account="proj123", queue="workq", nodes_per_block=2, cpus_per_node=32)

Assumes: ``qsub``/``qstat``/``qdel`` work where this script runs, the compute
nodes can open TCP connections back to it, and the run directory is on a file
system the compute nodes share.

The launcher follows ``nodes_per_block``: one node is started directly
(:class:`~flowlib.launchers.SingleNodeLauncher`); several are reached with
``mpiexec`` over ``$PBS_NODEFILE`` (:class:`~flowlib.launchers.MpiExecLauncher`;
give ``bind_cmd="--cpu-bind"`` on HPE Cray PALS systems).

Placeholders to adapt: ``account`` and ``queue`` (None: the server's defaults),
``cpus_per_node`` (``ncpus`` of each chunk, 1), ``select_options`` (e.g.
``"ngpus=4"``), ``walltime`` ("00:30:00"), ``nodes_per_block`` (1), ``max_blocks``
(1) and ``worker_init`` (a comment that does nothing: activate a Python
environment with flowlib there).
"""

from __future__ import annotations

from typing import Any

from flowlib.config import Config
from flowlib.configs._common import WORKER_INIT_PLACEHOLDER
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.launchers import MpiExecLauncher, SingleNodeLauncher
from flowlib.launchers.base import Launcher
from flowlib.providers.pbspro import PBSProProvider

__all__ = ["config", "fresh_config"]


def fresh_config(
    *,
    account: str | None = None,
    queue: str | None = None,
    cpus_per_node: int = 1,
    select_options: str = "",
    walltime: str = "00:30:00",
    nodes_per_block: int = 1,
    max_blocks: int = 1,
    worker_init: str = WORKER_INIT_PLACEHOLDER,
    **config_kwargs: Any,
) -> Config:
    """A new Config with one HighThroughputExecutor labelled ``"htex_pbspro"`` on a PBSProProvider.

    :param account: ``-A`` project to charge.
    :param queue: ``-q`` destination queue.
    :param cpus_per_node: ``ncpus`` asked for each node (chunk).
    :param select_options: added to each chunk of ``-l select=``, e.g. ``"ngpus=4"``.
    :param walltime: each block's ``-l walltime``.
    :param nodes_per_block: nodes (chunks) per PBS job.
    :param max_blocks: the most PBS jobs at once.
    :param worker_init: shell run in each job before the workers start.
    :param config_kwargs: other :class:`~flowlib.config.Config` keywords.
    """
    launcher: Launcher = MpiExecLauncher() if nodes_per_block > 1 else SingleNodeLauncher()
    provider = PBSProProvider(
        account=account,
        queue=queue,
        cpus_per_node=cpus_per_node,
        select_options=select_options,
        walltime=walltime,
        nodes_per_block=nodes_per_block,
        init_blocks=1,
        min_blocks=0,
        max_blocks=max_blocks,
        worker_init=worker_init,
        launcher=launcher,
    )
    return Config(executors=[HighThroughputExecutor(label="htex_pbspro", provider=provider)], **config_kwargs)


config = fresh_config()
"""A Config built at import; load it once (use :func:`fresh_config` to load it again)."""
