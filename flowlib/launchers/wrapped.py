"""WrappedLauncher: put a prefix such as a container runtime in front of the command."""

from __future__ import annotations

import logging

from flowlib.launchers._shell import check_call, check_constructor
from flowlib.launchers.base import Launcher

logger = logging.getLogger(__name__)


class WrappedLauncher(Launcher):
    """Return ``"<prepend> <command>"``, as Parsl's WrappedLauncher does.

    ``prepend`` is shell text put in front of the command, for example
    ``"singularity exec image.sif"``, ``"docker run --rm -v $PWD:$PWD image"``
    or ``"env OMP_NUM_THREADS=1"``; it must be one line. Both are inserted
    verbatim, so the provider's shell expands them: a command made of several
    shell commands (``a; b``) has only its first one behind the prefix (quote it
    yourself, or use ``sh -c '...'`` in the command, to wrap all of it). Like
    :class:`SimpleLauncher`, it starts one copy per block and logs a warning
    when asked for more. ``debug`` is accepted and does not change the text.
    """

    def __init__(self, prepend: str, debug: bool = True) -> None:
        check_constructor("WrappedLauncher", {"prepend": (prepend, str), "debug": (debug, bool)}, one_line=("prepend",))
        super().__init__(debug=debug)
        self.prepend = prepend

    def __call__(self, command: str, tasks_per_node: int, nodes_per_block: int, script_dir: str = "") -> str:
        """The command behind the prefix: ``f"{prepend} {command}"``."""
        check_call("WrappedLauncher", command, tasks_per_node, nodes_per_block, script_dir)
        if tasks_per_node > 1:
            logger.warning("WrappedLauncher ignores tasks per node (%d): the command runs once", tasks_per_node)
        if nodes_per_block > 1:
            logger.warning("WrappedLauncher ignores nodes per block (%d): the command runs once", nodes_per_block)
        return f"{self.prepend} {command}"
