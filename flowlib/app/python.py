"""Python apps and join apps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from flowlib.app.app import AppBase, P, R

if TYPE_CHECKING:
    from flowlib.dataflow.dflow import DataFlowKernel

INTERNAL_EXECUTOR = "_flowlib_internal"
"""The label of the kernel's own thread pool for join apps."""


class PythonApp(AppBase[P, R]):
    """An app whose tasks call a Python function; the future holds its return value.

    Constructible directly, as frameworks do: ``PythonApp(func, executors=["htex"])``.

    With ``join=True`` it is a join app (what ``@join_app`` makes, as in Parsl): the
    function runs on the kernel's internal executor, launches other apps and returns
    their future or a list of futures, and the app's future takes their result(s).
    ``executors`` is then ignored. ``app.join`` tells which kind an app is.
    """

    def __init__(
        self,
        func: Callable[P, Any],
        data_flow_kernel: DataFlowKernel | None = None,
        executors: str | Sequence[str] = "all",
        cache: bool = False,
        ignore_for_cache: Sequence[str] | None = None,
        join: bool = False,
    ) -> None:
        if not isinstance(join, bool):
            raise TypeError(f"PythonApp argument 'join' must be a bool, got {type(join).__name__}")
        super().__init__(
            func,
            data_flow_kernel=data_flow_kernel,
            executors=(INTERNAL_EXECUTOR,) if join else executors,
            cache=cache,
            ignore_for_cache=ignore_for_cache,
        )
        self.join = join
        self.kind = "join" if join else "python"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.__name__}{' join=True' if self.join else ''}>"


class JoinApp(PythonApp[P, R]):
    """A :class:`PythonApp` with ``join=True``; kept for code written against earlier flowlib.

    ``@join_app`` returns a plain ``PythonApp(func, join=True)``, as Parsl does.
    """

    def __init__(
        self,
        func: Callable[P, Any],
        data_flow_kernel: DataFlowKernel | None = None,
        executors: str | Sequence[str] = (INTERNAL_EXECUTOR,),
        cache: bool = False,
        ignore_for_cache: Sequence[str] | None = None,
    ) -> None:
        super().__init__(
            func, data_flow_kernel=data_flow_kernel, cache=cache, ignore_for_cache=ignore_for_cache, join=True
        )


__all__ = ["JoinApp", "PythonApp", "INTERNAL_EXECUTOR"]
