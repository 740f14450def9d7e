"""The loaded kernel: what ``flowlib.load()``, ``flowlib.dfk()`` and ``flowlib.clear()`` act on.

The only global state in flowlib; also importable as
``flowlib.dataflow.dflow.DataFlowKernelLoader`` (Parsl's path).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from flowlib.errors import ConfigurationError, NoDataFlowKernelError

if TYPE_CHECKING:
    from flowlib.config import Config
    from flowlib.dataflow.dflow import DataFlowKernel


class DataFlowKernelLoader:
    """Holds the loaded kernel: ``flowlib.load()``, ``flowlib.dfk()``, ``flowlib.clear()``."""

    _dfk: DataFlowKernel | None = None
    _lock = threading.Lock()

    @classmethod
    def load(cls, config: Config | None = None) -> DataFlowKernel:
        """Start a kernel for ``config`` (default: a local thread pool) and make it current.

        As in Parsl, loading while a kernel is loaded raises ConfigurationError
        ("Config has already been loaded"); the message says how to recover. A
        load that fails (an executor that does not start, a Config whose executors
        an earlier kernel shut down and cannot start again) leaves nothing loaded
        and nothing running, so the next ``load()`` works.
        """
        with cls._lock:
            if cls._dfk is not None:
                raise ConfigurationError(
                    f"Config has already been loaded: the DataFlowKernel of {cls._dfk.run_dir} is still loaded. "
                    "To load another, first shut it down with flowlib.dfk().cleanup() (or forget it without "
                    "shutting it down with flowlib.clear()); in a notebook, `with flowlib.load(config):` in one "
                    "cell cleans up even when the cell fails"
                )
            from flowlib.dataflow.dflow import DataFlowKernel

            cls._dfk = DataFlowKernel(config)
            return cls._dfk

    @classmethod
    def dfk(cls) -> DataFlowKernel:
        """The loaded kernel; NoDataFlowKernelError if there is none."""
        dfk = cls._dfk
        if dfk is None:
            raise NoDataFlowKernelError("Must first load config")
        return dfk

    @classmethod
    def clear(cls) -> None:
        """Forget the loaded kernel (without cleaning it up)."""
        with cls._lock:
            cls._dfk = None

    @classmethod
    def wait_for_current_tasks(cls) -> None:
        """Wait for every task of the loaded kernel."""
        cls.dfk().wait_for_current_tasks()
