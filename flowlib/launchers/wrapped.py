"""WrappedLauncher: run the command once, behind a prefix such as a container runtime."""

from __future__ import annotations

import logging

from flowlib.launchers._shell import ShellLauncher, check_constructor

logger = logging.getLogger(__name__)


class WrappedLauncher(ShellLauncher):
    """Run ``<prepend> /bin/sh -c <command>`` once.

    ``prepend`` is shell text put in front of the command, for example
    ``"singularity exec image.sif"``, ``"docker run --rm -v $PWD:$PWD image"``
    or ``"env OMP_NUM_THREADS=1"``; it is inserted verbatim (so ``$VAR`` in it is
    expanded) and must be one line. The command itself reaches the wrapper as
    one quoted argument of ``/bin/sh -c`` (not bash: a container image may not
    have bash). Like :class:`SimpleLauncher`, it starts one copy per block and
    logs a warning when asked for more.
    """

    template = "wrapped.sh"

    def __init__(self, prepend: str, debug: bool = True) -> None:
        check_constructor("WrappedLauncher", {"prepend": (prepend, str), "debug": (debug, bool)}, one_line=("prepend",))
        super().__init__(debug=debug)
        self.prepend = prepend

    def template_values(self, tasks_per_node: int, nodes_per_block: int) -> dict[str, str | int]:
        if tasks_per_node > 1 or nodes_per_block > 1:
            logger.warning(
                "WrappedLauncher runs the command once per block, not %d times on each of %d nodes",
                tasks_per_node,
                nodes_per_block,
            )
        return {"prepend": self.prepend}
