"""``http:`` and ``https:`` URLs: downloads with :mod:`urllib.request` (stage in only).

Two plugins, one per place the download runs:

* :class:`HTTPSeparateTaskStaging` (in :data:`default_staging`) downloads in a task
  of its own on the app's executor; the app waits for that task like for any
  dependency, and sees the file at ``<working_dir>/flowlib_staging/<hash>/<name>``.
* :class:`HTTPInTaskStaging` downloads on the worker inside the app's own task,
  right before the app function runs.

Downloads honour the usual proxy environment variables, write a temporary file
and rename it (a failed download leaves nothing behind), and give up after
``timeout`` seconds without progress. Any failure, an HTTP error status
included, raises :class:`~flowlib.data_provider.staging.StagingError` naming the
URL. ``urllib`` is imported only when a download runs.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from typing import TYPE_CHECKING, Any

from flowlib.data_provider.files import File
from flowlib.data_provider.staging import (
    DEFAULT_TIMEOUT,
    Staging,
    StagingError,
    StagingWrapper,
    check_timeout,
    executor_working_dir,
    local_path_for,
    set_local_path,
    submit_staging_task,
    write_atomically,
)

if TYPE_CHECKING:
    from flowlib.app.futures import DataFuture
    from flowlib.data_provider.data_manager import DataManager

__all__ = ["DEFAULT_TIMEOUT", "HTTPInTaskStaging", "HTTPSeparateTaskStaging", "download_http"]

_SCHEMES = ("http", "https")


def download_http(url: str, local_path: str, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Download ``url`` to ``local_path``, atomically.

    Raises:
        StagingError: the server answered with an error status, could not be
            reached, stalled for ``timeout`` seconds, or the file could not be written.
    """
    import http.client
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            write_atomically(local_path, partial(shutil.copyfileobj, response))
    except urllib.error.HTTPError as exc:
        # HTTPError holds the open response; do not let it travel (it does not pickle).
        reason = f"the server answered HTTP {exc.code} {exc.reason}"
        exc.close()
        raise StagingError(url, reason) from None
    except urllib.error.URLError as exc:
        raise StagingError(url, f"could not reach the server: {exc.reason}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise StagingError(url, f"{type(exc).__name__}: {exc}") from None


def http_stage_in(url: str, local_path: str, timeout: float, parent: Any = None) -> None:
    """Body of the separate staging task (``parent`` only orders it after the producer)."""
    download_http(url, local_path, timeout)


def _in_task_step(url: str, local_path: str, timeout: float, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    download_http(url, local_path, timeout)
    set_local_path(url, local_path, args, kwargs)


class HTTPSeparateTaskStaging(Staging):
    """Stages ``http``/``https`` files in with a download task on the app's executor.

    Args:
        timeout: seconds without progress after which a download fails.
    """

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = check_timeout(timeout)

    def can_stage_in(self, file: File) -> bool:
        """True for ``http`` and ``https``."""
        return file.scheme in _SCHEMES

    def stage_in(self, dm: DataManager, executor: str, file: File, parent_fut: Future[Any] | None) -> DataFuture | None:
        """Submit the download task; sets ``file.local_path`` to where it will write."""
        local = local_path_for(file, executor_working_dir(dm, executor))
        file.local_path = local
        return submit_staging_task(dm, executor, http_stage_in, file, parent_fut, file.url, local, self.timeout)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(timeout={self.timeout})"


class HTTPInTaskStaging(Staging):
    """Stages ``http``/``https`` files in by downloading inside the app's task.

    Args:
        timeout: seconds without progress after which a download fails.
    """

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = check_timeout(timeout)

    def can_stage_in(self, file: File) -> bool:
        """True for ``http`` and ``https``."""
        return file.scheme in _SCHEMES

    def replace_task(
        self, dm: DataManager, executor: str, file: File, func: Callable[..., Any]
    ) -> Callable[..., Any] | None:
        """Wrap ``func`` to download the file, and set its ``local_path``, before it runs."""
        local = local_path_for(file, executor_working_dir(dm, executor))
        return StagingWrapper(func, before=partial(_in_task_step, file.url, local, self.timeout))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(timeout={self.timeout})"
