"""flowlib: dataflow parallel programming in Python, from a laptop to a supercomputer.

Decorate functions with :func:`python_app`, :func:`bash_app` or :func:`join_app`;
calling one returns a future at once; passing futures into other calls builds a
graph that the DataFlowKernel runs as inputs become ready::

    import flowlib
    from flowlib import python_app

    @python_app
    def double(x):
        return 2 * x

    with flowlib.load():
        assert double(double(3)).result() == 12

Heavy parts are imported on first use, so ``import flowlib`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flowlib.app.special import AUTO_LOGNAME
from flowlib.version import VERSION

__version__ = VERSION

_LAZY = {
    "python_app": "flowlib.app.app",
    "bash_app": "flowlib.app.app",
    "join_app": "flowlib.app.app",
    "Config": "flowlib.config",
    "File": "flowlib.data_provider.files",
    "ThreadPoolExecutor": "flowlib.executors.threads",
    "HighThroughputExecutor": "flowlib.executors",
    "DataFlowKernel": "flowlib.dataflow.dflow",
    "DataFlowKernelLoader": "flowlib.dataflow.dflow",
    "set_stream_logger": "flowlib.log_utils",
    "set_file_logger": "flowlib.log_utils",
    "progress": "flowlib.monitoring.progress",
}

__all__ = [
    "AUTO_LOGNAME",
    "Config",
    "DataFlowKernel",
    "DataFlowKernelLoader",
    "File",
    "HighThroughputExecutor",
    "ThreadPoolExecutor",
    "bash_app",
    "clear",
    "dfk",
    "join_app",
    "load",
    "progress",
    "python_app",
    "set_file_logger",
    "set_stream_logger",
    "wait_for_current_tasks",
]


if TYPE_CHECKING:
    from flowlib.app.app import bash_app, join_app, python_app
    from flowlib.config import Config
    from flowlib.data_provider.files import File
    from flowlib.dataflow.dflow import DataFlowKernel, DataFlowKernelLoader
    from flowlib.executors.threads import ThreadPoolExecutor
    from flowlib.log_utils import set_file_logger, set_stream_logger
    from flowlib.monitoring.progress import progress


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'flowlib' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = getattr(module, name)
    globals()[name] = value
    return value


def load(config: Config | None = None) -> DataFlowKernel:
    """Start a DataFlowKernel for ``config`` (default: a local thread pool) and make it current.

    Returns the kernel, which works as a context manager. Loading while another
    kernel is loaded raises ConfigurationError.
    """
    from flowlib.dataflow.dflow import DataFlowKernelLoader

    return DataFlowKernelLoader.load(config)


def dfk() -> DataFlowKernel:
    """The loaded DataFlowKernel; NoDataFlowKernelError when none is loaded."""
    from flowlib.dataflow.dflow import DataFlowKernelLoader

    return DataFlowKernelLoader.dfk()


def clear() -> None:
    """Forget the loaded kernel without cleaning it up, so another can be loaded."""
    from flowlib.dataflow.dflow import DataFlowKernelLoader

    DataFlowKernelLoader.clear()


def wait_for_current_tasks() -> None:
    """Wait until every task of the loaded kernel has finished."""
    from flowlib.dataflow.dflow import DataFlowKernelLoader

    DataFlowKernelLoader.wait_for_current_tasks()
