"""The launcher contract: wrap a worker command so it starts on every node of a block."""

from __future__ import annotations

import abc

from flowlib.utils import RepresentationMixin


class Launcher(RepresentationMixin, metaclass=abc.ABCMeta):
    """A small callable: ``launcher(command, tasks_per_node, nodes_per_block) -> shell text``.

    The returned text runs ``command`` ``tasks_per_node`` times on each of the
    ``nodes_per_block`` nodes of a block (one worker pool per node, usually).
    ``debug`` makes the generated shell trace its commands (``set -x``).
    """

    def __init__(self, debug: bool = True) -> None:
        self.debug = debug

    @abc.abstractmethod
    def __call__(self, command: str, tasks_per_node: int, nodes_per_block: int) -> str:
        """The shell text that launches ``command`` across the block."""
