"""SimpleLauncher: run the command once, as it is."""

from __future__ import annotations

import logging

from flowlib.launchers._shell import ShellLauncher, check_constructor

logger = logging.getLogger(__name__)


class SimpleLauncher(ShellLauncher):
    """Run the command once, on the node where the block's script runs.

    ``tasks_per_node`` is ignored: the command runs exactly once. A block of
    several nodes still gets one copy, on its first node; that is what an
    executor in MPI mode wants (its one worker pool places tasks on all the
    block's nodes itself), and anyone else is warned through the ``flowlib``
    logger, because they would get fewer workers than they asked for.
    """

    template = "simple.sh"

    def __init__(self, debug: bool = True) -> None:
        check_constructor("SimpleLauncher", {"debug": (debug, bool)})
        super().__init__(debug=debug)

    def template_values(self, tasks_per_node: int, nodes_per_block: int) -> dict[str, str | int]:
        if nodes_per_block > 1:
            logger.warning(
                "SimpleLauncher runs the command once, on the first of the block's %d nodes; "
                "use SrunLauncher, MpiExecLauncher, ... for one copy per node",
                nodes_per_block,
            )
        return {}
