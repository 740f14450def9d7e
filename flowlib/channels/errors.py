"""Exceptions raised by channels.

::

    FlowlibError
     └── ChannelError                 base: something went wrong on a channel
          ├── ChannelConnectError     the host could not be reached (TCP / SSH handshake)
          ├── HostKeyError            the host's key is unknown or has CHANGED
          ├── AuthenticationError     the host refused every way we tried to log in
          ├── ChannelTimeout          a command or a network operation ran out of time
          ├── ChannelClosedError      the channel was used after ``close()``
          └── FileCopyError           ``push_file`` / ``pull_file`` could not copy a file

Every one pickles (its ``args`` are its constructor's arguments). Each message names the
host (``user@host:port`` where it helps) and what was tried, so a log line alone says what
to fix. The names Parsl used for the same failures are kept as
aliases (``BadHostKeyException``, ``AuthException``, ``SSHException``,
``FileCopyException``) so that ``except`` clauses in moved scripts still match.
"""

from __future__ import annotations

from collections.abc import Sequence

from flowlib.errors import FlowlibError


class ChannelError(FlowlibError):
    """Base class of channel failures. ``hostname`` is the channel's host (``None`` for local)."""

    def __init__(self, message: str, hostname: str | None = None) -> None:
        self.message = message
        self.hostname = hostname
        super().__init__(message)
        self.args = (message, hostname)

    def __str__(self) -> str:
        return self.message


class ChannelConnectError(ChannelError):
    """Raised by an SSH channel when it cannot reach ``host:port``.

    An outside cause: the host is down or unreachable, nothing listens on the port, a
    firewall drops the packets, or the SSH handshake failed. ``reason`` carries the
    operating-system or protocol error.
    """

    def __init__(self, hostname: str, port: int, reason: str) -> None:
        self.port = port
        self.reason = reason
        super().__init__(f"cannot connect to {hostname}:{port}: {reason}", hostname)
        self.args = (hostname, port, reason)


class HostKeyError(ChannelError):
    """Raised by an SSH channel when the server's host key cannot be trusted.

    ``reason`` is ``"unknown"`` (no known_hosts entry and the policy is ``'reject'``) or
    ``"changed"`` (a known_hosts entry exists with another key: possibly a
    man-in-the-middle; no policy accepts this). ``fingerprint`` is the key the server
    presented, in OpenSSH's ``SHA256:...`` form; ``expected_fingerprint`` the known one.
    """

    def __init__(
        self,
        hostname: str,
        port: int,
        key_type: str,
        fingerprint: str,
        reason: str,
        known_hosts_files: Sequence[str] = (),
        expected_fingerprint: str | None = None,
    ) -> None:
        self.port = port
        self.key_type = key_type
        self.fingerprint = fingerprint
        self.reason = reason
        self.known_hosts_files = list(known_hosts_files)
        self.expected_fingerprint = expected_fingerprint
        where = ", ".join(self.known_hosts_files) or "no known_hosts file"
        if reason == "changed":
            message = (
                f"host key for {hostname}:{port} has CHANGED: the server presented {key_type} {fingerprint}, "
                f"but {where} records {expected_fingerprint}. Someone may be intercepting the connection, or "
                f"the host was reinstalled; check with the host's administrator, then remove the old line "
                f"(ssh-keygen -R '[{hostname}]:{port}' or ssh-keygen -R {hostname})"
            )
        else:
            message = (
                f"host key for {hostname}:{port} is unknown ({key_type} {fingerprint}; looked in {where}). "
                f"Verify the fingerprint, then add the host to known_hosts (for example by logging in once with "
                f"ssh), or pass known_hosts_policy='auto-add'"
            )
        super().__init__(message, hostname)
        self.args = (hostname, port, key_type, fingerprint, reason, self.known_hosts_files, expected_fingerprint)


class AuthenticationError(ChannelError):
    """Raised by an SSH channel when the server refused every authentication method tried.

    ``methods_tried`` lists what flowlib offered (for example ``"publickey (key file
    ~/.ssh/id_ed25519)"``, ``"publickey (agent, 2 keys)"``, ``"password"``);
    ``allowed`` what the server said it accepts, when it said so.
    """

    def __init__(
        self,
        username: str,
        hostname: str,
        port: int,
        methods_tried: Sequence[str],
        allowed: Sequence[str] = (),
        detail: str = "",
    ) -> None:
        self.username = username
        self.port = port
        self.methods_tried = list(methods_tried)
        self.allowed = list(allowed)
        self.detail = detail
        tried = ", ".join(self.methods_tried) or "nothing (no key file, no agent key, no password)"
        message = f"authentication failed for {username}@{hostname}:{port}; tried: {tried}"
        if self.allowed:
            message += f"; the server accepts: {', '.join(self.allowed)}"
        if detail:
            message += f"; {detail}"
        super().__init__(message, hostname)
        self.args = (username, hostname, port, self.methods_tried, self.allowed, detail)


class ChannelTimeout(ChannelError):
    """Raised when a command runs past its ``walltime`` or a network operation gets no answer.

    For a command, the process group was killed; ``stdout``/``stderr`` hold what it had
    printed. ``command`` is the command or the operation, ``timeout`` the limit in seconds.
    """

    def __init__(
        self, command: str, timeout: float, hostname: str | None = None, stdout: str = "", stderr: str = ""
    ) -> None:
        self.command = command
        self.timeout = timeout
        self.stdout = stdout
        self.stderr = stderr
        where = f" on {hostname}" if hostname else ""
        super().__init__(f"{command!r}{where} did not finish within {timeout:g} s", hostname)
        self.args = (command, timeout, hostname, stdout, stderr)


class ChannelClosedError(ChannelError):
    """Raised when a channel is used after its ``close()`` (your fault, not an outside cause)."""


class FileCopyError(ChannelError):
    """Raised by ``push_file`` / ``pull_file``: names source, destination and the cause."""

    def __init__(self, source: str, destination: str, reason: str, hostname: str | None = None) -> None:
        self.source = source
        self.destination = destination
        self.reason = reason
        where = f" ({hostname})" if hostname else ""
        super().__init__(f"cannot copy {source} to {destination}{where}: {reason}", hostname)
        self.args = (source, destination, reason, hostname)


# The names Parsl's channels used, for `except` clauses in moved scripts.
BadHostKeyException = HostKeyError
AuthException = AuthenticationError
SSHException = ChannelConnectError
FileCopyException = FileCopyError

__all__ = [
    "AuthException",
    "AuthenticationError",
    "BadHostKeyException",
    "ChannelClosedError",
    "ChannelConnectError",
    "ChannelError",
    "ChannelTimeout",
    "FileCopyError",
    "FileCopyException",
    "HostKeyError",
    "SSHException",
]
