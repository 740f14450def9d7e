"""``RSyncStaging``: files copied with the ``rsync`` command, inside the task.

For executors whose workers do not share a filesystem with the submitting host.
The worker runs ``rsync`` itself, so it must be able to reach the source without
a password prompt (for example an SSH key set up in ``worker_init``).

Which URLs, and where the copy comes from:

* ``file`` URLs (plain paths): from ``<hostname>:<path>``, i.e. the submit host
  over SSH. List this plugin before ``NoOpFileStaging`` in ``storage_access``.
* ``rsync://host[:port]/module/path`` URLs: the URL itself (the rsync daemon
  protocol, which ``rsync`` understands natively).
* ``rsync:/path`` (no host): from ``<hostname>:<path>``.

With ``hostname=""`` the source is the plain path (a local copy).

Stage in copies to ``<working_dir>/flowlib_staging/<hash>/<name>`` before the app
runs; stage out lets the app write there and copies the file back after it
returns. rsync writes to a temporary name and renames, so no half file is ever
visible; a failure raises :class:`~flowlib.data_provider.staging.StagingError`
with rsync's own message.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from flowlib.data_provider.files import File
from flowlib.data_provider.staging import (
    Staging,
    StagingError,
    StagingWrapper,
    executor_working_dir,
    local_path_for,
    prepare_output_step,
    set_local_path,
)

if TYPE_CHECKING:
    from flowlib.data_provider.data_manager import DataManager

__all__ = ["RSyncStaging", "run_rsync"]

_SCHEMES = ("file", "rsync")


def run_rsync(url: str, source: str, dest: str, timeout: int) -> None:
    """Run ``rsync --timeout=<timeout> <source> <dest>``.

    Raises:
        StagingError: rsync is not installed, or exited with a non-zero status.
    """
    cmd = ["rsync", f"--timeout={timeout}", source, dest]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise StagingError(url, "the rsync command is not installed (not on PATH)") from None
    if proc.returncode != 0:
        detail = proc.stderr.strip()[-2000:] or "(no output)"
        raise StagingError(url, f"{' '.join(cmd)} exited with status {proc.returncode}: {detail}")


def _rsync_in_step(
    url: str,
    source: str,
    local_path: str,
    timeout: int,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    # An absolute local path can never be mistaken for host:path by rsync.
    target = os.path.abspath(local_path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    run_rsync(url, source, target, timeout)
    set_local_path(url, local_path, args, kwargs)


def _rsync_out_step(
    url: str,
    local_path: str,
    dest: str,
    timeout: int,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    source = os.path.abspath(local_path)
    if not os.path.isfile(source):
        raise StagingError(url, f"the app did not create its output file {local_path!r}")
    run_rsync(url, source, dest, timeout)


class RSyncStaging(Staging):
    """Stages ``file`` and ``rsync`` URLs in and out by running ``rsync`` on the worker.

    Args:
        hostname: the host to copy from and to, as rsync takes it
            (``host`` or ``user@host``); ``""`` for local copies.
        timeout: seconds of I/O inactivity after which rsync gives up.

    Raises:
        TypeError: ``hostname`` is not a str or ``timeout`` not an int.
        ValueError: ``timeout`` is not positive.
    """

    def __init__(self, hostname: str, timeout: int = 60) -> None:
        if not isinstance(hostname, str):
            raise TypeError(f"hostname must be a str, not {type(hostname).__name__}")
        if isinstance(timeout, bool) or not isinstance(timeout, int):
            raise TypeError(f"timeout must be an int number of seconds, not {type(timeout).__name__}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.hostname = hostname
        self.timeout = timeout

    def can_stage_in(self, file: File) -> bool:
        """True for the ``file`` and ``rsync`` schemes."""
        return file.scheme in _SCHEMES

    def can_stage_out(self, file: File) -> bool:
        """True for the ``file`` and ``rsync`` schemes."""
        return file.scheme in _SCHEMES

    def remote_spec(self, file: File) -> str:
        """The rsync argument naming the remote side of ``file``."""
        if file.scheme == "rsync" and file.netloc:
            return file.url
        # Relative paths are relative to the submitting process, which is the remote side.
        path = os.path.abspath(file.path)
        return f"{self.hostname}:{path}" if self.hostname else path

    def replace_task(
        self, dm: DataManager, executor: str, file: File, func: Callable[..., Any]
    ) -> Callable[..., Any] | None:
        """Wrap ``func`` to copy the file in, and set its ``local_path``, before it runs."""
        local = local_path_for(file, executor_working_dir(dm, executor))
        step = partial(_rsync_in_step, file.url, self.remote_spec(file), local, self.timeout)
        return StagingWrapper(func, before=step)

    def replace_task_stage_out(
        self, dm: DataManager, executor: str, file: File, func: Callable[..., Any]
    ) -> Callable[..., Any] | None:
        """Wrap ``func`` to copy the file it writes back after it returns.

        Sets ``file.local_path`` to the local path the app must write.
        """
        local = local_path_for(file, executor_working_dir(dm, executor))
        file.local_path = local
        return StagingWrapper(
            func,
            before=partial(prepare_output_step, file.url, local),
            after=partial(_rsync_out_step, file.url, local, self.remote_spec(file), self.timeout),
        )

    def __repr__(self) -> str:
        return f"RSyncStaging(hostname={self.hostname!r}, timeout={self.timeout})"
