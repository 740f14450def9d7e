"""LLNL's TOSS 3 clusters (Quartz, Ruby, ...): Slurm, one worker pool per node started with ``srun --mpibind=off``.

::

    from flowlib.configs.toss3_llnl import config, fresh_config
    config = fresh_config(partition="pdebug", account="<your bank>")

The same name as Parsl's ``parsl.configs.toss3_llnl``. Parsl's runs a
``FluxExecutor`` inside the Slurm job; constructing one needs Flux's Python
package (``flux``), which importing a config module must not require, so this
module puts flowlib's HighThroughputExecutor on the same SlurmProvider (the same
blocks: one node each, 30 minutes, ``--mpibind=off`` so that tasks are not pinned).
Apps run unchanged; Flux-specific resource specifications are refused with an
error naming them. For Flux itself, use
``FluxExecutor(provider=SlurmProvider(...))`` (see the Flux page of the docs).

What this config assumes:

- Run on a login node. ``partition``: ``pbatch`` (production) or ``pdebug``
  (short tests); ``account``: your bank (None: your default).
- ``worker_init`` must make flowlib importable on the compute nodes; the default
  is a comment that does nothing.
"""

from __future__ import annotations

from typing import Any

from flowlib.config import Config
from flowlib.configs._common import WORKER_INIT_PLACEHOLDER, slurm_site

__all__ = ["config", "fresh_config"]


def fresh_config(
    *,
    partition: str = "pbatch",
    account: str | None = None,
    walltime: str = "00:30:00",
    nodes_per_block: int = 1,
    max_blocks: int = 1,
    worker_init: str = WORKER_INIT_PLACEHOLDER,
    **config_kwargs: Any,
) -> Config:
    """A new Config with one HighThroughputExecutor labelled ``"toss3_htex"`` on a SlurmProvider.

    :param partition: ``pbatch`` or ``pdebug``.
    :param account: the bank to charge (None: your default).
    :param walltime: each block's ``--time``.
    :param nodes_per_block: nodes per Slurm job.
    :param max_blocks: the most Slurm jobs at once.
    :param worker_init: shell run in each job before the workers start.
    :param config_kwargs: other :class:`~flowlib.config.Config` keywords.
    """
    from flowlib.launchers import SrunLauncher

    return slurm_site(
        label="toss3_htex",
        partition=partition,
        account=account,
        walltime=walltime,
        nodes_per_block=nodes_per_block,
        max_blocks=max_blocks,
        worker_init=worker_init,
        config_kwargs=config_kwargs,
        launcher=SrunLauncher(overrides="--mpibind=off"),
    )


config = fresh_config()
"""A Config built at import; load it once (use :func:`fresh_config` to load it again)."""
