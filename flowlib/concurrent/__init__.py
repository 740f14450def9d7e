"""A ``concurrent.futures.Executor`` backed by a DataFlowKernel.

For code written against the standard executor interface::

    from flowlib.concurrent import FlowlibPoolExecutor

    with FlowlibPoolExecutor(config) as pool:
        results = list(pool.map(work, range(100)))
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowlib.app.python import PythonApp
    from flowlib.config import Config
    from flowlib.dataflow.dflow import DataFlowKernel


class FlowlibPoolExecutor(Executor):
    """Runs plain callables as flowlib tasks.

    Give either a ``config`` (the pool starts its own kernel and cleans it up on
    ``shutdown``) or an existing ``dfk`` (left running on shutdown). ``executors``
    limits the executor labels tasks may use.
    """

    def __init__(
        self, config: Config | None = None, dfk: DataFlowKernel | None = None, executors: str | Sequence[str] = "all"
    ) -> None:
        from flowlib.dataflow.dflow import DataFlowKernel

        if (config is None) == (dfk is None):
            raise ValueError("FlowlibPoolExecutor needs exactly one of config= or dfk=")
        self._owns_dfk = dfk is None
        self.dfk: DataFlowKernel = dfk if dfk is not None else DataFlowKernel(config)
        self.executors = executors
        self._apps: dict[Callable[..., Any], PythonApp[Any, Any]] = {}
        self._lock = threading.Lock()
        self._shutdown = False

    @property
    def app_count(self) -> int:
        """How many distinct callables have been wrapped as apps."""
        return len(self._apps)

    def get_app(self, fn: Callable[..., Any]) -> PythonApp[Any, Any]:
        """The app that runs ``fn`` (made once per callable)."""
        from flowlib.app.python import PythonApp

        with self._lock:
            app = self._apps.get(fn)
            if app is None:
                app = PythonApp(fn, data_flow_kernel=self.dfk, executors=self.executors)
                self._apps[fn] = app
            return app

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(*args, **kwargs)`` as a task; futures among the arguments are waited for."""
        if self._shutdown:
            raise RuntimeError("cannot submit to a FlowlibPoolExecutor that has been shut down")
        return self.get_app(fn)(*args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting tasks; clean up the kernel if this pool started it."""
        self._shutdown = True
        if self._owns_dfk and not self.dfk.cleanup_called:
            if wait:
                self.dfk.wait_for_current_tasks()
            self.dfk.cleanup()


ParslPoolExecutor = FlowlibPoolExecutor

__all__ = ["FlowlibPoolExecutor", "ParslPoolExecutor"]
