"""Exceptions raised by the DataFlowKernel about tasks and their dependencies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flowlib.errors import FlowlibError

__all__ = ["BadCheckpoint", "DataFlowException", "DependencyError", "JoinError", "PropagatedException"]


class DataFlowException(FlowlibError):
    """Base class of the kernel's task-level errors."""


class PropagatedException(DataFlowException):
    """A task failed because other futures it waited for failed.

    ``dependent_exceptions_tids`` lists ``(exception, name)`` pairs, one per failed
    future, where the name is ``"task N"`` for an app future and the future's repr
    otherwise. ``__cause__`` is the exception at the root of the chain: following
    the first failure through every nested PropagatedException down to the task
    that really failed. So for t1 -> t2 -> t3 with t1 failing,
    ``t3.exception().__cause__ is t1.exception()``.
    """

    failure_kind = "Dependency"

    def __init__(self, dependent_exceptions_tids: Sequence[tuple[BaseException, Any]], task_id: int | None) -> None:
        self.dependent_exceptions_tids = list(dependent_exceptions_tids)
        self.task_id = task_id
        super().__init__(self.dependent_exceptions_tids, task_id)
        self.__cause__ = _root_cause(self.dependent_exceptions_tids)

    def _path(self) -> tuple[list[str], bool]:
        """Names along the first-failure path to the root (at most ``_MAX_PATH``), and whether it was cut."""
        names: list[str] = []
        current: PropagatedException = self
        while current.dependent_exceptions_tids:
            if len(names) == _MAX_PATH:
                return names, True
            exc, name = current.dependent_exceptions_tids[0]
            more = " (+ others)" if len(current.dependent_exceptions_tids) > 1 else ""
            names.append(f"{name}{more}")
            if not isinstance(exc, PropagatedException):
                break
            current = exc
        return names, False

    def __str__(self) -> str:
        names, cut = self._path()
        if cut:
            names.append("...")
        via = " <- ".join(names) if names else "no recorded dependency"
        text = f"{self.failure_kind} failure for task {self.task_id}. The representative cause is via {via}"
        failed = self.dependent_exceptions_tids
        if len(failed) > 1:
            text += ". Failed dependencies: " + ", ".join(str(name) for _, name in failed)
        return text


_MAX_PATH = 20


def _root_cause(failed: Sequence[tuple[BaseException, Any]]) -> BaseException | None:
    # O(1): a nested PropagatedException already found its own root when it was made
    if not failed:
        return None
    first = failed[0][0]
    if isinstance(first, PropagatedException):
        return first.__cause__ if first.__cause__ is not None else first
    return first


class DependencyError(PropagatedException):
    """A task did not run because one or more of the futures it depends on failed.

    Raised by the kernel on the dependent task's future; never retried. See
    :class:`PropagatedException` for ``dependent_exceptions_tids`` and ``__cause__``.
    """


class JoinError(PropagatedException):
    """A join app's inner futures failed; ``dependent_exceptions_tids`` names them.

    Raised by the kernel on the join app's future; never retried. ``__cause__`` is
    the root exception, as for :class:`DependencyError`.
    """

    failure_kind = "Join"


class BadCheckpoint(DataFlowException):
    """A checkpoint given in ``checkpoint_files`` is missing or is not a flowlib checkpoint."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)

    def __str__(self) -> str:
        return self.reason
