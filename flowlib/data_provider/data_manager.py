"""The DataManager: picks a staging plugin for each file a task reads or writes.

The kernel owns one ``DataManager``. When a task is submitted the kernel calls

* :meth:`DataManager.optionally_stage_in` on each argument (positional, keyword
  and each element of ``inputs=``); it returns the argument to use (maybe a new
  ``DataFuture`` to wait for) and the function to run (maybe a staging wrapper);
* for each ``File`` in ``outputs=``: :meth:`DataManager.stage_out` and
  :meth:`DataManager.replace_task_stage_out`.

The plugins come from the executor's ``storage_access`` list, or
:data:`default_staging` when that is ``None``. The first plugin that claims a file
handles it; a file that no plugin claims is a ``ValueError``.

The kernel must make these calls before it serializes the task: plugins set
``File.local_path`` on the submit side where the app needs it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from flowlib.app.futures import DataFuture
from flowlib.data_provider.file_noop import NoOpFileStaging
from flowlib.data_provider.files import File, task_copy
from flowlib.data_provider.ftp import FTPSeparateTaskStaging
from flowlib.data_provider.http import HTTPSeparateTaskStaging
from flowlib.data_provider.staging import Staging
from flowlib.data_provider.zip import ZipFileStaging

logger = logging.getLogger(__name__)

__all__ = ["DataManager", "Staging", "default_staging"]

#: Plugins used by an executor whose ``storage_access`` is ``None``.
#: Shared, stateless instances; assign a new list to change the default.
default_staging: list[Staging] = [
    NoOpFileStaging(),
    ZipFileStaging(),
    HTTPSeparateTaskStaging(),
    FTPSeparateTaskStaging(),
]


class DataManager:
    """Routes each file of a task to the first staging plugin that claims it.

    Args:
        dfk: the kernel; only ``dfk.executors`` (label -> executor) is read here,
            and separate-task plugins submit their transfer apps to it.
    """

    def __init__(self, dfk: Any) -> None:
        self.dfk = dfk

    def staging_for(self, executor: str) -> list[Staging]:
        """The plugins of the executor labelled ``executor``, in order.

        Raises:
            ValueError: no executor has that label.
        """
        try:
            ex = self.dfk.executors[executor]
        except KeyError:
            raise ValueError(f"No executor labelled {executor!r} (known: {sorted(self.dfk.executors)})") from None
        storage = getattr(ex, "storage_access", None)
        return list(storage) if storage is not None else default_staging

    def _stager_in(self, file: File, executor: str) -> Staging:
        for plugin in self.staging_for(executor):
            if plugin.can_stage_in(file):
                return plugin
        raise ValueError(
            f"No staging plugin of executor {executor!r} can stage in {file.url!r} "
            f"(scheme {file.scheme!r}); add one to the executor's storage_access"
        )

    def _stager_out(self, file: File, executor: str) -> Staging:
        for plugin in self.staging_for(executor):
            if plugin.can_stage_out(file):
                return plugin
        raise ValueError(
            f"No staging plugin of executor {executor!r} can stage out {file.url!r} "
            f"(scheme {file.scheme!r}); add one to the executor's storage_access"
        )

    def optionally_stage_in(
        self, input: Any, func: Callable[..., Any], executor: str
    ) -> tuple[Any, Callable[..., Any]]:
        """Stage one task argument in, if it is a ``File`` or a ``DataFuture``.

        Returns ``(argument, func)``: the argument to pass (a new ``DataFuture``
        when a plugin started a separate transfer, else the task's own copy of the
        ``File``, see :func:`~flowlib.data_provider.files.task_copy`) and
        the function to run (a wrapper when a plugin stages inside the task).
        Anything other than a ``File`` or ``DataFuture`` comes back unchanged.

        Raises:
            ValueError: no plugin of ``executor`` can stage the file in.
        """
        # The task gets its own copy of the File: staging sets local_path on it, never on the caller's.
        if isinstance(input, DataFuture):
            file = task_copy(input.file_obj)
            parent: DataFuture | None = input
            input = DataFuture(input, file, tid=input.tid)
        elif isinstance(input, File):
            file, parent = task_copy(input), None
            input = file
        else:
            return input, func
        plugin = self._stager_in(file, executor)
        logger.debug("Staging in %s for executor %s with %r", file.url, executor, plugin)
        new_input = plugin.stage_in(self, executor, file, parent)
        new_func = plugin.replace_task(self, executor, file, func)
        return (new_input if new_input is not None else input), (new_func or func)

    def stage_in(self, file: File, input: Any, executor: str) -> Any:
        """Start a separate stage-in of ``file``; return what replaces ``input``.

        ``input`` is the ``File`` itself or the ``DataFuture`` that carries it.
        """
        parent = input if isinstance(input, DataFuture) else None
        new_input = self._stager_in(file, executor).stage_in(self, executor, file, parent)
        return new_input if new_input is not None else input

    def replace_task(self, file: File, func: Callable[..., Any], executor: str) -> Callable[..., Any]:
        """Return ``func``, wrapped for in-task stage-in of ``file`` if its plugin does that."""
        new_func = self._stager_in(file, executor).replace_task(self, executor, file, func)
        return new_func or func

    def replace_task_stage_out(self, file: File, func: Callable[..., Any], executor: str) -> Callable[..., Any]:
        """Return ``func``, wrapped for in-task stage-out of ``file`` if its plugin does that.

        Raises:
            ValueError: no plugin of ``executor`` can stage the file out.
        """
        plugin = self._stager_out(file, executor)
        new_func = plugin.replace_task_stage_out(self, executor, file, func)
        return new_func or func

    def stage_out(self, file: File, executor: str, app_fu: Future[Any]) -> Future[Any] | None:
        """Start a separate stage-out of ``file`` after ``app_fu``; return its future or ``None``.

        Raises:
            ValueError: no plugin of ``executor`` can stage the file out.
        """
        plugin = self._stager_out(file, executor)
        logger.debug("Staging out %s for executor %s with %r", file.url, executor, plugin)
        return plugin.stage_out(self, executor, file, app_fu)
