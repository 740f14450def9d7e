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
        """Start a kernel for ``config`` (default: a local thread pool) and make it current."""
        with cls._lock:
            if cls._dfk is not None:
                raise ConfigurationError(
                    f"a DataFlowKernel is already loaded ({cls._dfk.run_dir}); call flowlib.clear() or "
                    "dfk.cleanup() first, or use `with flowlib.load(config):`"
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
