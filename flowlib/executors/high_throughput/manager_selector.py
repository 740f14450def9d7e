"""Manager selectors under Parsl's module path, for ``HighThroughputExecutor(manager_selector=...)``.

In Parsl a manager selector orders the worker pools (managers) the interchange
offers tasks to. flowlib's interchange always places tasks itself: a task with
a resource specification goes to a pool that can hold it, and plain tasks go in
chunks to pools with free worker slots. The selectors here are accepted so
that Parsl configurations load unchanged; the executor keeps the object in
``manager_selector`` and the placement is flowlib's in every case.
"""

from __future__ import annotations

import abc

from flowlib.utils import RepresentationMixin

__all__ = ["BlockIdManagerSelector", "ManagerSelector", "RandomManagerSelector"]


class ManagerSelector(RepresentationMixin, metaclass=abc.ABCMeta):
    """Base class of the values ``manager_selector=`` accepts.

    It has no abstract methods: flowlib's interchange never calls a selector.
    """

    def __init__(self) -> None:
        pass


class RandomManagerSelector(ManagerSelector):
    """Parsl's default: try the pools in random order. In flowlib: accepted, flowlib's placement applies."""


class BlockIdManagerSelector(ManagerSelector):
    """Parsl: prefer the pools of the newest block (highest block id).

    In flowlib: accepted, flowlib's placement applies.
    """
