"""AllocationProvider: blocks inside the batch allocation this process already runs in.

::

    this process (on the allocation's first node)          every node of the allocation
    executor --submit--> AllocationProvider
                         └─ setsid bash BLOCK_SCRIPT ──> launcher (srun / mpiexec) ──> one worker pool per node

No job is submitted: a block is a local process group (as with
:class:`~flowlib.providers.local.LocalProvider`) whose launcher spreads the worker
pools over nodes the scheduler has already given to this job. Used by
:func:`flowlib.configs.auto`.

Unlike a ``LocalProvider``, whose workers are on this machine, this provider's
workers may be on other nodes, so the high-throughput executor treats it as remote:
its interchange listens on every interface and the pools try each of this machine's
addresses.
"""

from __future__ import annotations

from typing import ClassVar

from flowlib.launchers.base import Launcher
from flowlib.providers.local import LocalProvider

__all__ = ["AllocationProvider"]


class AllocationProvider(LocalProvider):
    """Start each block on ``nodes_per_block`` nodes of the current allocation with ``launcher``.

    :param nodes_per_block: how many of the allocation's nodes one block uses.
    :param launcher: a launcher that reaches the allocation's nodes (``SrunLauncher``
        in a Slurm job, ``MpiExecLauncher`` in a PBS job); required.
    :param worker_init: shell run before the workers start.
    :param label: a name for log messages.

    There is one block, kept for the whole run (``init_blocks = min_blocks =
    max_blocks = 1``): the nodes are already paid for.
    """

    scheduler: ClassVar[str] = "the current batch allocation"
    workers_on_this_machine = False  # the allocation's other nodes must reach the interchange
    # Inside an allocation every launcher is in its element: refuse none.
    incompatible_launchers: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        nodes_per_block: int,
        launcher: Launcher,
        worker_init: str = "",
        label: str = "allocation",
    ) -> None:
        super().__init__(
            nodes_per_block=nodes_per_block,
            launcher=launcher,
            init_blocks=1,
            min_blocks=1,
            max_blocks=1,
            worker_init=worker_init,
            label=label,
        )
