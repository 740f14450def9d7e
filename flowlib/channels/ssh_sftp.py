"""The SFTP half of :class:`~flowlib.channels.ssh.SSHChannel`: moving files and directories."""

from __future__ import annotations

import logging
import os
import posixpath
import stat
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from flowlib.channels.errors import (
    ChannelConnectError,
    ChannelError,
    ChannelTimeout,
    FileCopyError,
)
from flowlib.channels.ssh_util import Deadline, describe_os_error, import_paramiko

logger = logging.getLogger("flowlib.channels.ssh")

_T = TypeVar("_T")


class SFTPOperations:
    """push_file, pull_file, makedirs, isdir and abspath over the channel's SFTP session.

    Mixed into SSHChannel, which provides the connection it relies on.
    """

    hostname: str
    port: int
    io_timeout: float
    connect_timeout: float
    _sftp: Any
    _sftp_lock: threading.Lock
    _lock: threading.RLock
    _home: str | None
    _transport: Any

    def _connection(self) -> Any:  # provided by SSHChannel
        raise NotImplementedError

    def _forget(self, t: Any) -> None:  # provided by SSHChannel
        raise NotImplementedError

    def _open_session(self) -> tuple[Any, Any]:  # provided by SSHChannel
        raise NotImplementedError

    def _sftp_client(self) -> Any:
        paramiko = import_paramiko()
        with self._lock:
            self._connection()
            if self._sftp is not None and not self._sftp.get_channel().closed:
                return self._sftp
            _, chan = self._open_session()
            deadline = Deadline(self.connect_timeout, chan.close)
            try:
                chan.settimeout(self.io_timeout)
                with deadline:
                    chan.invoke_subsystem("sftp")
                sftp = paramiko.SFTPClient(chan)
                home = sftp.normalize(".")
            except (paramiko.SSHException, EOFError, OSError) as e:
                chan.close()
                if deadline.expired or isinstance(e, TimeoutError):
                    raise ChannelTimeout("starting SFTP", self.connect_timeout, self.hostname) from e
                raise ChannelError(
                    f"cannot start SFTP on {self.hostname}: {describe_os_error(e)} "
                    f"(is the sftp subsystem enabled in its sshd_config?)",
                    self.hostname,
                ) from e
            self._sftp, self._home = sftp, home
            return sftp

    def _sftp_call(self, what: str, op: Callable[[Any], _T]) -> _T:
        """Run ``op(sftp)``; retry once on a fresh connection if the connection broke.

        File errors (``OSError`` such as FileNotFoundError) reach the caller unchanged.
        """
        paramiko = import_paramiko()
        for attempt in (1, 2):
            with self._sftp_lock:
                sftp = self._sftp_client()
                try:
                    return op(sftp)
                except TimeoutError as e:  # socket.timeout: the server did not answer in io_timeout
                    self._drop_current()
                    raise ChannelTimeout(what, self.io_timeout, self.hostname) from e
                except (paramiko.SSHException, EOFError, OSError) as e:
                    broken = sftp.get_channel().closed or not sftp.get_channel().get_transport().is_active()
                    if isinstance(e, OSError) and not broken:
                        raise  # a file error: missing, not allowed, exists...
                    self._drop_current()
                    if attempt == 2:
                        raise ChannelConnectError(
                            self.hostname, self.port, f"connection lost during {what}: {describe_os_error(e)}"
                        ) from e
                    logger.info("%s on %s failed (%s); reconnecting once", what, self.hostname, e)
        raise AssertionError("unreachable")

    def _drop_current(self) -> None:
        t = self._transport
        if t is not None:
            self._forget(t)

    def _remote_path(self, path: str) -> str:
        """``path`` with ``~`` expanded and made absolute against the remote home directory."""
        home = self._home or "."
        if path == "~" or path.startswith("~/"):
            path = home + path[1:]
        return posixpath.normpath(posixpath.join(home, path))

    def push_file(self, source: str, dest_dir: str) -> str:
        """Copy local ``source`` into remote ``dest_dir`` (created if missing), keeping its mode.

        Returns the remote path. Raises FileCopyError naming both ends.
        """
        dest = posixpath.join(dest_dir, os.path.basename(source))
        try:
            mode = stat.S_IMODE(os.stat(source).st_mode)
        except OSError as e:
            raise FileCopyError(source, f"{self.hostname}:{dest}", f"cannot read the local file: {e}") from e

        def op(sftp: Any) -> str:
            remote_dir = self._remote_path(dest_dir)
            self._sftp_makedirs(sftp, remote_dir, 0o700, exist_ok=True)
            remote = posixpath.join(remote_dir, os.path.basename(source))
            sftp.put(source, remote, confirm=True)
            sftp.chmod(remote, mode)
            return remote

        try:
            self._sftp_call(f"push_file {source} -> {dest}", op)
        except OSError as e:
            raise FileCopyError(source, f"{self.hostname}:{dest}", str(e), self.hostname) from e
        return dest

    def pull_file(self, remote_source: str, local_dir: str) -> str:
        """Copy remote ``remote_source`` into local ``local_dir`` (created if missing), keeping its mode."""
        local = os.path.join(local_dir, posixpath.basename(remote_source))
        try:
            os.makedirs(local_dir, exist_ok=True)
        except OSError as e:
            raise FileCopyError(f"{self.hostname}:{remote_source}", local, str(e), self.hostname) from e

        def op(sftp: Any) -> None:
            remote = self._remote_path(remote_source)
            mode = stat.S_IMODE(sftp.stat(remote).st_mode or 0o600)
            sftp.get(remote, local)
            os.chmod(local, mode)

        try:
            self._sftp_call(f"pull_file {remote_source} -> {local}", op)
        except OSError as e:
            raise FileCopyError(f"{self.hostname}:{remote_source}", local, str(e), self.hostname) from e
        return local

    @staticmethod
    def _sftp_isdir(sftp: Any, path: str) -> bool:
        try:
            return stat.S_ISDIR(sftp.stat(path).st_mode or 0)
        except FileNotFoundError:
            return False

    def _sftp_makedirs(self, sftp: Any, path: str, mode: int, exist_ok: bool) -> None:
        try:
            st = sftp.stat(path)
        except FileNotFoundError:
            pass
        else:
            if stat.S_ISDIR(st.st_mode or 0) and exist_ok:
                return
            raise FileExistsError(17, f"exists on {self.hostname}", path)
        parent = posixpath.dirname(path)
        if parent and parent != path and not self._sftp_isdir(sftp, parent):
            self._sftp_makedirs(sftp, parent, mode, exist_ok=True)
        try:
            sftp.mkdir(path, mode)
        except OSError:
            if not (exist_ok and self._sftp_isdir(sftp, path)):  # created meanwhile by someone else?
                raise

    def makedirs(self, path: str, mode: int = 0o700, exist_ok: bool = False) -> None:
        """Create remote ``path`` and missing parents (each with ``mode``, less the server's umask).

        Raises ``FileExistsError`` like ``os.makedirs``; other refusals as ``OSError``.
        """
        self._sftp_call(
            f"makedirs {path}", lambda sftp: self._sftp_makedirs(sftp, self._remote_path(path), mode, exist_ok)
        )

    def isdir(self, path: str) -> bool:
        """True if remote ``path`` is a directory (False if missing or not accessible)."""

        def op(sftp: Any) -> bool:
            try:
                return self._sftp_isdir(sftp, self._remote_path(path))
            except PermissionError:
                return False

        return self._sftp_call(f"isdir {path}", op)

    def abspath(self, path: str) -> str:
        """``path`` made absolute on the remote side: relative paths start at the remote home."""
        return self._sftp_call(f"abspath {path}", lambda sftp: self._remote_path(path))

    # ----------------------------------------------------------------- remote port forwards
