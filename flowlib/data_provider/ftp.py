"""``ftp:`` URLs: downloads with :mod:`ftplib` (stage in only).

``ftp://[user[:password]@]host[:port]/dir/name`` logs in (anonymously when no
user is given), changes to ``/dir`` and retrieves ``name`` in binary mode.
As for HTTP there are two plugins: :class:`FTPSeparateTaskStaging` (a download
task of its own on the app's executor; in :data:`default_staging`) and
:class:`FTPInTaskStaging` (the download runs inside the app's task). Downloads
write a temporary file and rename it; failures raise
:class:`~flowlib.data_provider.staging.StagingError` naming the URL.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from typing import IO, TYPE_CHECKING, Any

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

__all__ = ["FTPInTaskStaging", "FTPSeparateTaskStaging", "download_ftp"]


def download_ftp(url: str, local_path: str, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Download the ``ftp:`` URL ``url`` to ``local_path``, atomically.

    Raises:
        StagingError: the URL has no host, or the server refused, could not be
            reached or stalled for ``timeout`` seconds.
    """
    import ftplib
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    try:
        host, port = parts.hostname, parts.port or 21
    except ValueError as exc:
        raise StagingError(url, f"bad port: {exc}") from None
    if not host:
        raise StagingError(url, "an ftp: URL needs a host (ftp://host/path)")
    user = unquote(parts.username) if parts.username else "anonymous"
    password = unquote(parts.password) if parts.password is not None else ""
    directory, name = posixpath.split(unquote(parts.path))
    if not name:
        raise StagingError(url, "the URL names a directory, not a file")

    def retrieve(ftp: ftplib.FTP, out: IO[bytes]) -> None:
        ftp.retrbinary(f"RETR {name}", out.write)

    try:
        with ftplib.FTP(timeout=timeout) as ftp:
            ftp.connect(host, port)
            ftp.login(user, password)
            if directory:
                ftp.cwd(directory)
            write_atomically(local_path, partial(retrieve, ftp))
    except ftplib.all_errors as exc:
        raise StagingError(url, f"{type(exc).__name__}: {exc}") from None


def ftp_stage_in(url: str, local_path: str, timeout: float, parent: Any = None) -> None:
    """Body of the separate staging task (``parent`` only orders it after the producer)."""
    download_ftp(url, local_path, timeout)


def _in_task_step(url: str, local_path: str, timeout: float, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    download_ftp(url, local_path, timeout)
    set_local_path(url, local_path, args, kwargs)


class FTPSeparateTaskStaging(Staging):
    """Stages ``ftp`` files in with a download task on the app's executor.

    Args:
        timeout: seconds without progress after which a download fails.
    """

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = check_timeout(timeout)

    def can_stage_in(self, file: File) -> bool:
        """True for the ``ftp`` scheme."""
        return file.scheme == "ftp"

    def stage_in(self, dm: DataManager, executor: str, file: File, parent_fut: Future[Any] | None) -> DataFuture | None:
        """Submit the download task; sets ``file.local_path`` to where it will write."""
        local = local_path_for(file, executor_working_dir(dm, executor))
        file.local_path = local
        return submit_staging_task(dm, executor, ftp_stage_in, file, parent_fut, file.url, local, self.timeout)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(timeout={self.timeout})"


class FTPInTaskStaging(Staging):
    """Stages ``ftp`` files in by downloading inside the app's task.

    Args:
        timeout: seconds without progress after which a download fails.
    """

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = check_timeout(timeout)

    def can_stage_in(self, file: File) -> bool:
        """True for the ``ftp`` scheme."""
        return file.scheme == "ftp"

    def replace_task(
        self, dm: DataManager, executor: str, file: File, func: Callable[..., Any]
    ) -> Callable[..., Any] | None:
        """Wrap ``func`` to download the file, and set its ``local_path``, before it runs."""
        local = local_path_for(file, executor_working_dir(dm, executor))
        return StagingWrapper(func, before=partial(_in_task_step, file.url, local, self.timeout))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(timeout={self.timeout})"
