"""Exceptions raised by the DataFlowKernel about tasks and their dependencies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flowlib.errors import FlowlibError


class DataFlowException(FlowlibError):
    """Base class of the kernel's task-level errors."""


def _describe(items: Sequence[tuple[BaseException, Any]]) -> str:
    return ", ".join(str(name) for _, name in items)


class DependencyError(DataFlowException):
    """A task did not run because one or more of the futures it depends on failed.

    ``dependent_exceptions_tids`` is a list of ``(exception, name)`` pairs where the
    name is ``"task N"`` for an app future and the future's repr otherwise. Raised
    by the kernel on the dependent task's future; never retried.
    """

    def __init__(self, dependent_exceptions_tids: Sequence[tuple[BaseException, Any]], task_id: int | None) -> None:
        self.dependent_exceptions_tids = list(dependent_exceptions_tids)
        self.task_id = task_id
        super().__init__(self.dependent_exceptions_tids, task_id)

    def __str__(self) -> str:
        failed = _describe(self.dependent_exceptions_tids)
        return f"Dependency failure for task {self.task_id}. The failed dependencies are {failed}"


class JoinError(DataFlowException):
    """A join app's inner futures failed; ``dependent_exceptions_tids`` names them."""

    def __init__(self, dependent_exceptions_tids: Sequence[tuple[BaseException, Any]], task_id: int | None) -> None:
        self.dependent_exceptions_tids = list(dependent_exceptions_tids)
        self.task_id = task_id
        super().__init__(self.dependent_exceptions_tids, task_id)

    def __str__(self) -> str:
        failed = _describe(self.dependent_exceptions_tids)
        return f"Join failure for task {self.task_id} with failed join dependencies from {failed}"


class BadCheckpoint(DataFlowException):
    """A checkpoint given in ``checkpoint_files`` is missing or is not a flowlib checkpoint."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)

    def __str__(self) -> str:
        return self.reason
