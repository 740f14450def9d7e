"""Small helpers shared by the ready configs. Nothing here does I/O."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from flowlib.config import Config

__all__ = ["WORKER_INIT_PLACEHOLDER", "from_env", "local_htex", "slurm_site"]

WORKER_INIT_PLACEHOLDER = (
    "# set up the Python environment that has flowlib installed here (module load ..., source .../activate)"
)
"""The default ``worker_init`` of the cluster configs: a shell comment that does nothing.

Replace it with the commands that make ``python3 -m flowlib...`` work on the compute
nodes, e.g. ``"module load python; source ~/envs/flowlib/bin/activate"``.
"""


def from_env(name: str, default: str | None = None) -> str | None:
    """``$name`` when it is set and not blank, else ``default``."""
    value = os.environ.get(name, "").strip()
    return value or default


def slurm_site(
    *,
    label: str,
    partition: str | None,
    account: str | None,
    walltime: str,
    nodes_per_block: int,
    max_blocks: int,
    worker_init: str,
    config_kwargs: dict[str, Any],
    cores_per_node: int | None = None,
    gpus_per_node: int | None = None,
    scheduler_options: str = "",
    exclusive: bool = True,
    launcher: Any = None,
    max_workers_per_node: int | None = None,
    cores_per_worker: float = 1.0,
    available_accelerators: int | Sequence[str] = (),
) -> Config:
    """A Config with one HighThroughputExecutor whose blocks are Slurm jobs, one worker pool per node (srun).

    The shared shape of the facility configs on Slurm (anvil, bridges, delta, ...);
    each module passes its machine's values. Builds objects only: no I/O.
    """
    from flowlib.executors.high_throughput.executor import HighThroughputExecutor
    from flowlib.launchers import SrunLauncher
    from flowlib.providers.slurm import SlurmProvider

    provider = SlurmProvider(
        partition=partition,
        account=account,
        cores_per_node=cores_per_node,
        gpus_per_node=gpus_per_node,
        scheduler_options=scheduler_options,
        exclusive=exclusive,
        walltime=walltime,
        nodes_per_block=nodes_per_block,
        init_blocks=1,
        min_blocks=0,
        max_blocks=max_blocks,
        worker_init=worker_init,
        launcher=launcher if launcher is not None else SrunLauncher(),
    )
    executor = HighThroughputExecutor(
        label=label,
        provider=provider,
        max_workers_per_node=max_workers_per_node,
        cores_per_worker=cores_per_worker,
        available_accelerators=available_accelerators,
    )
    return Config(executors=[executor], **config_kwargs)


def local_htex(label: str, config_kwargs: dict[str, Any], max_workers_per_node: int | None = None) -> Config:
    """A Config with one HighThroughputExecutor on this machine (a LocalProvider with one block)."""
    from flowlib.executors.high_throughput.executor import HighThroughputExecutor
    from flowlib.providers.local import LocalProvider

    executor = HighThroughputExecutor(
        label=label,
        max_workers_per_node=max_workers_per_node,
        cores_per_worker=1,
        provider=LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1),
    )
    return Config(executors=[executor], **config_kwargs)
