"""SingleNodeLauncher: several copies of the command on this node."""

from __future__ import annotations

import logging

from flowlib.launchers._shell import ShellLauncher, check_constructor, snippet

logger = logging.getLogger(__name__)


class SingleNodeLauncher(ShellLauncher):
    """Start ``tasks_per_node`` copies of the command in the background on this node, and wait for all.

    Each copy sees ``FLOWLIB_TASK_RANK`` (0, 1, ...) and ``FLOWLIB_TASK_COUNT``.
    The exit status is 0 unless copies failed: with ``fail_on_any=True`` any
    failed copy fails the block, otherwise only all of them failing does; the
    status is then that of the first failed copy (by rank), and with ``debug``
    (the default) a line on stderr says how many failed. A TERM, INT or HUP sent to the launcher is
    passed on to the copies.

    This launcher knows one node only: given ``nodes_per_block > 1`` it starts
    ``tasks_per_node * nodes_per_block`` copies, all here (the same count as
    Parsl), and logs a warning.
    """

    template = "single_node.sh"

    def __init__(self, debug: bool = True, fail_on_any: bool = False) -> None:
        check_constructor("SingleNodeLauncher", {"debug": (debug, bool), "fail_on_any": (fail_on_any, bool)})
        super().__init__(debug=debug)
        self.fail_on_any = fail_on_any

    def template_values(self, tasks_per_node: int, nodes_per_block: int) -> dict[str, str | int]:
        if nodes_per_block > 1:
            logger.warning(
                "SingleNodeLauncher starts all %d copies on one node (nodes_per_block=%d)",
                tasks_per_node * nodes_per_block,
                nodes_per_block,
            )
        return {
            "fail_on_any": int(self.fail_on_any),
            "report": int(self.debug),
            "wait_functions": snippet("wait.sh", "SingleNodeLauncher"),
        }
