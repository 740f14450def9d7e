"""A ``concurrent.futures.Executor`` backed by a DataFlowKernel.

For code written against the standard executor interface::

    from flowlib.concurrent import FlowlibPoolExecutor

    with FlowlibPoolExecutor(config) as pool:
        results = list(pool.map(work, range(100)))
"""

from __future__ import annotations

import threading
import warnings
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowlib.app.python import PythonApp
    from flowlib.config import Config
    from flowlib.dataflow.dflow import DataFlowKernel


class FlowlibPoolExecutor(Executor):
    """Runs plain callables as flowlib tasks.

    Give either a ``config`` or an existing ``dfk``. With a ``config`` the pool
    loads it as the current kernel (``flowlib.load``, so apps defined with
    ``@python_app`` can take the pool's futures and ``flowlib.dfk()`` is that
    kernel) and cleans it up on ``shutdown``; a ``dfk`` given is left running.
    ``executors`` limits the executor labels tasks may use.
    ``shutdown(cancel_futures=True)`` cancels the pool's tasks that have not
    started and, as Parsl's does, warns (``UserWarning``): here the warning says
    how many tasks were cancelled and how many had started and run on.
    """

    def __init__(
        self, config: Config | None = None, dfk: DataFlowKernel | None = None, executors: str | Sequence[str] = "all"
    ) -> None:
        if config is not None and dfk is not None:
            raise ValueError("FlowlibPoolExecutor: Specify only one of config or dfk")
        if config is None and dfk is None:
            raise ValueError("FlowlibPoolExecutor: Must specify one of config or dfk")
        self._owns_dfk = dfk is None
        if dfk is None:
            import flowlib

            dfk = flowlib.load(config)
        self.dfk: DataFlowKernel = dfk
        self._futures: weakref.WeakSet[Future[Any]] = weakref.WeakSet()
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
        fut = self.get_app(fn)(*args, **kwargs)
        self._futures.add(fut)
        return fut

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting tasks; clean up the kernel if this pool started it."""
        self._shutdown = True
        if cancel_futures:
            cancelled = running = 0
            for fut in list(self._futures):
                if fut.cancel():
                    cancelled += 1
                elif not fut.done():
                    running += 1  # cancel() is refused by a task that has started
            # Parsl warns that it cannot cancel; flowlib can, but only tasks not yet started
            warnings.warn(
                f"FlowlibPoolExecutor.shutdown(cancel_futures=True) cancelled {cancelled} task(s) that had not "
                f"started; {running} started task(s) are not interrupted",
                UserWarning,
                stacklevel=2,
            )
        if self._owns_dfk and not self.dfk.cleanup_called:
            if wait:
                self.dfk.wait_for_current_tasks()
            self.dfk.cleanup()


ParslPoolExecutor = FlowlibPoolExecutor

__all__ = ["FlowlibPoolExecutor", "ParslPoolExecutor"]
