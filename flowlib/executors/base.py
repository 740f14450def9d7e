"""The executor contract every executor implements.

An executor runs functions somewhere and returns a future per call::

    start()                                             # called by the kernel once
    submit(func, resource_specification, *args, **kw) -> concurrent.futures.Future
    shutdown()                                          # called by the kernel at cleanup

Before ``start()`` the kernel sets ``run_dir`` (the run directory) and ``run_id``.
A custom executor subclasses :class:`FlowlibExecutor` (``ParslExecutor`` is the
same class, for scripts moved from Parsl).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from flowlib.executors.errors import InvalidResourceSpecification


@dataclass(frozen=True)
class ExecutorStatistics:
    """A snapshot of an executor's load, for monitoring and ``flowlib-perf``."""

    label: str
    """The executor's label."""
    submitted: int
    """Tasks handed to the executor since start."""
    completed: int
    """Tasks whose future has completed (with a result or an exception)."""
    workers: int
    """Workers (threads or processes) currently available."""

    @property
    def outstanding(self) -> int:
        """Tasks submitted and not yet completed."""
        return self.submitted - self.completed


class FlowlibExecutor(metaclass=abc.ABCMeta):
    """Base class of all executors.

    Attributes the kernel reads: ``label`` (unique in a Config), ``storage_access``
    (staging providers, or None for the defaults), ``working_dir``, ``restartable``.
    Attributes the kernel sets before ``start()``: ``run_dir``, ``run_id``.

    ``restartable`` says whether ``start()`` may be called again after
    ``shutdown()``, so that a Config can be loaded again once its kernel was
    cleaned up (as a notebook does when a cell is run twice). An executor that
    cannot start again sets it to False; the kernel then refuses, at load, an
    executor an earlier kernel shut down, with an error saying to build a new
    Config, instead of loading a kernel whose every task would fail.
    """

    label: str = "base"
    restartable: bool = True
    storage_access: list[Any] | None = None
    working_dir: str | None = None
    run_dir: str = "."
    run_id: str | None = None

    @abc.abstractmethod
    def start(self) -> None:
        """Start the executor; called by the kernel before any submit (again after shutdown if ``restartable``)."""

    @abc.abstractmethod
    def submit(
        self, func: Callable[..., Any], resource_specification: dict[str, Any], /, *args: Any, **kwargs: Any
    ) -> Future[Any]:
        """Run ``func(*args, **kwargs)``; return a future of its result.

        ``resource_specification`` is the task's resource request (``{}`` when none).
        Raise InvalidResourceSpecification for a request this executor cannot honour.
        """

    @abc.abstractmethod
    def shutdown(self) -> None:
        """Stop the executor and release its resources; called once at cleanup."""

    def statistics(self) -> ExecutorStatistics | None:
        """A snapshot of the executor's load, or None when it does not keep one."""
        return None

    def task_slots(self) -> int | None:
        """How many tasks the executor runs at once now, or None when it cannot say (the default).

        The kernel paces a main thread that submits far more tasks than this
        (see ``Config(pace_submissions=...)``); None turns pacing off.
        """
        return None

    def __enter__(self) -> FlowlibExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


ParslExecutor = FlowlibExecutor


def reject_resource_specification(executor: FlowlibExecutor, resource_specification: dict[str, Any]) -> None:
    """Raise InvalidResourceSpecification if a task asks an executor without resource control for any."""
    if resource_specification:
        keys = set(resource_specification)
        raise InvalidResourceSpecification(
            keys,
            f"executor {executor.label!r} ({type(executor).__name__}) does not accept resource "
            f"specifications; got keys {sorted(keys)}",
        )
