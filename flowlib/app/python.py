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
    """

    kind = "python"


class JoinApp(AppBase[P, R]):
    """An app whose function launches other apps and returns their future(s).

    It runs on the kernel's internal executor; its future takes the inner result(s).
    """

    kind = "join"

    def __init__(
        self,
        func: Callable[P, Any],
        data_flow_kernel: DataFlowKernel | None = None,
        executors: str | Sequence[str] = (INTERNAL_EXECUTOR,),
        cache: bool = False,
        ignore_for_cache: Sequence[str] | None = None,
    ) -> None:
        super().__init__(
            func,
            data_flow_kernel=data_flow_kernel,
            executors=(INTERNAL_EXECUTOR,),
            cache=cache,
            ignore_for_cache=ignore_for_cache,
        )

    def executable(self, executor_label: str, working_dir: str | None) -> Callable[..., Any]:
        """The join function itself, run on the internal executor."""
        return self.executable_func


__all__ = ["JoinApp", "PythonApp", "INTERNAL_EXECUTOR"]
