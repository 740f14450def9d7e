"""The channel contract: run commands and move files where a provider's scheduler lives."""

from __future__ import annotations

import abc


class Channel(metaclass=abc.ABCMeta):
    """Runs commands and moves files on the machine where a scheduler is reachable.

    :class:`~flowlib.channels.local.LocalChannel` is this machine;
    :class:`~flowlib.channels.ssh.SSHChannel` is a login node reached over SSH.
    """

    script_dir: str | None = None
    """Where providers put submit scripts on the channel's side."""

    @abc.abstractmethod
    def execute_wait(
        self, cmd: str, walltime: float | None = None, envs: dict[str, str] | None = None
    ) -> tuple[int, str, str]:
        """Run ``cmd`` in a shell; return ``(exit_code, stdout, stderr)``.

        Raises a channel error (naming the command) if it runs past ``walltime``
        seconds or the channel is broken.
        """

    @abc.abstractmethod
    def push_file(self, source: str, dest_dir: str) -> str:
        """Copy local file ``source`` into ``dest_dir`` on the channel's side; return its path there."""

    @abc.abstractmethod
    def pull_file(self, remote_source: str, local_dir: str) -> str:
        """Copy ``remote_source`` from the channel's side into local ``local_dir``; return the local path."""

    @abc.abstractmethod
    def makedirs(self, path: str, mode: int = 0o700, exist_ok: bool = False) -> None:
        """Create ``path`` (and parents) on the channel's side."""

    @abc.abstractmethod
    def isdir(self, path: str) -> bool:
        """True if ``path`` is a directory on the channel's side."""

    @abc.abstractmethod
    def abspath(self, path: str) -> str:
        """``path`` made absolute on the channel's side."""

    def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Release connections; the channel may not be used afterwards."""
