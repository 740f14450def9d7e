"""The SSH channel: run commands and move files on a login node, over one paramiko connection.

::

    user's machine                                     login node (sshd)
    SSHChannel ── one SSH connection (paramiko Transport) ──> sshd
      execute_wait  ── a session per command ─────────────>  $SHELL -c '<command>'
      push/pull, makedirs, isdir, abspath ── SFTP session ─>  sftp subsystem
      SSHTunnel (tunnel.py) <── forwarded-tcpip channels ──  127.0.0.1:<remote port>

The constructor does no I/O. The first operation connects: TCP (``connect_timeout``), SSH
handshake, host-key check against known_hosts (unknown hosts are refused unless
``known_hosts_policy`` says otherwise; a CHANGED key is always refused), then
authentication (GSSAPI if asked, key files, ssh-agent keys, default keys in ``~/.ssh``,
password). Every later operation first checks that the connection is alive and reconnects
if not; an operation that fails because the connection broke before it started is retried
once on a fresh connection. A command is never re-run once it may have started: a
connection lost while a command runs is reported, not retried (think ``sbatch``).

paramiko is imported on first use (the ``ssh`` extra: ``pip install 'flowlib[ssh]'``).
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable, Sequence
from types import ModuleType, TracebackType
from typing import Any, TypeVar

from flowlib.channels.base import Channel
from flowlib.channels.errors import (
    ChannelClosedError,
    ChannelConnectError,
    ChannelError,
    ChannelTimeout,
)
from flowlib.channels.ssh_auth import Login
from flowlib.channels.ssh_hostkeys import HostKeyVerifier
from flowlib.channels.ssh_sftp import SFTPOperations
from flowlib.channels.ssh_util import Deadline, describe_os_error, import_paramiko
from flowlib.extras import require
from flowlib.utils import RepresentationMixin

logger = logging.getLogger(__name__)

# The first line a command prints on stderr: the remote shell's pid, which is also its
# process group (sshd runs each session's shell with setsid), so a walltime kill can take
# the whole tree down. Stripped from what execute_wait returns.
_PGID_MARK = b"FLOWLIB-SSH-PGID "
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

ForwardHandler = Callable[[Any, tuple[str, int]], None]
"""Called from paramiko's thread with ``(channel, (origin_host, origin_port))`` for each
connection made to a remote forwarded port; it must not block."""

_T = TypeVar("_T")


class SSHChannel(SFTPOperations, Channel, RepresentationMixin):
    """Run commands and move files on a remote host over SSH (paramiko).

    :param hostname: the host to log in to (a login node).
    :param username: the remote user; default: the local user name.
    :param password: the password, used for password authentication and to decrypt an
        encrypted key file. Never shown in ``repr``.
    :param script_dir: where providers write submit scripts on the remote side.
    :param envs: environment variables set for every command.
    :param gssapi_auth: try GSSAPI (Kerberos) authentication and key exchange first.
    :param skip_auth: do not authenticate with keys, agent or password; only the "none"
        method is tried (subclasses authenticate in their own way).
    :param port: the SSH port.
    :param key_filename: a private key file, or a list of them. When given, the default
        keys in ``~/.ssh`` are not tried (ssh-agent keys still are).
    :param host_keys_filename: a known_hosts file read in addition to ``~/.ssh/known_hosts``;
        with ``known_hosts_policy='auto-add'`` new host keys are appended to it.
    :param known_hosts_policy: what to do with a host that no known_hosts file lists:
        ``'reject'`` (default), ``'warn'`` or ``'auto-add'``; see
        :data:`~flowlib.channels.ssh_hostkeys.KNOWN_HOSTS_POLICIES`.
    :param connect_timeout: seconds allowed for the TCP connection, the SSH handshake, each
        authentication step and opening each session.
    :param keepalive: seconds between keepalive packets (0: none); keeps idle connections
        through NAT and firewalls.
    :param io_timeout: seconds an SFTP operation may wait for an answer from the server.
    """

    def __init__(
        self,
        hostname: str,
        username: str | None = None,
        password: str | None = None,
        script_dir: str | None = None,
        envs: dict[str, str] | None = None,
        gssapi_auth: bool = False,
        skip_auth: bool = False,
        port: int = 22,
        key_filename: str | Sequence[str] | None = None,
        host_keys_filename: str | None = None,
        known_hosts_policy: str = "reject",
        connect_timeout: float = 10,
        keepalive: float = 30,
        io_timeout: float = 60,
    ) -> None:
        require(type(self).__name__, "ssh", ["paramiko"], ["paramiko"])
        if not isinstance(hostname, str) or not hostname:
            raise ValueError(f"hostname must be a non-empty string, not {hostname!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"port must be an integer in 1..65535, not {port!r}")
        for name, value in (("connect_timeout", connect_timeout), ("io_timeout", io_timeout)):
            if not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        if not keepalive >= 0:
            raise ValueError(f"keepalive must be >= 0 seconds, not {keepalive!r}")
        for key in envs or {}:
            if not _ENV_NAME.match(key):
                raise ValueError(f"invalid environment variable name in envs: {key!r}")
        self.hostname = hostname
        self.username = username
        self._password = password
        self.script_dir = script_dir
        self.envs: dict[str, str] = dict(envs or {})
        self.gssapi_auth = gssapi_auth
        self.skip_auth = skip_auth
        self.port = port
        self.key_filename = key_filename
        self.host_keys_filename = host_keys_filename
        self.known_hosts_policy = known_hosts_policy
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self.io_timeout = io_timeout
        self.auth_timeout: float = connect_timeout
        """Seconds each authentication step may take (longer for a human at a prompt)."""

        self.connections = 0
        """How many SSH connections this channel has made (1 + the reconnections)."""

        self._lock = threading.RLock()  # guards the fields below; held while connecting
        self._transport: Any = None
        self._sftp: Any = None
        self._sftp_lock = threading.Lock()  # one SFTP request/response exchange at a time
        # paramiko matches a global request's answer to whoever waits: one at a time.
        self._global_request_lock = threading.Lock()
        self._home: str | None = None
        self._host_keys = HostKeyVerifier(hostname, port, known_hosts_policy, host_keys_filename)
        self._forwards: dict[int, tuple[str, ForwardHandler]] = {}  # remote port -> (bind address, handler)
        self._forwarded_on: set[int] = set()  # ports the current connection forwards
        self._closed = False
        # OpenSSH allows 10 sessions per connection by default (MaxSessions); SFTP takes one.
        self._command_slots = threading.BoundedSemaphore(self.max_sessions)

    max_sessions: int = 8
    """Commands run at once over the connection; more wait for a free slot."""

    # ----------------------------------------------------------------- connecting

    @property
    def is_connected(self) -> bool:
        """True if the channel holds a live, authenticated connection (no I/O)."""
        t = self._transport
        return t is not None and t.is_active() and t.is_authenticated()

    def _user(self) -> str:
        return self.username or getpass.getuser()

    def _connection(self) -> Any:
        """The live transport, connecting (again) if there is none or it died."""
        with self._lock:
            if self._closed:
                raise ChannelClosedError(f"the SSH channel to {self.hostname}:{self.port} is closed", self.hostname)
            t = self._transport
            if t is not None and t.is_active() and t.is_authenticated():
                return t
            if t is not None:
                logger.info("SSH connection to %s:%d was lost; reconnecting", self.hostname, self.port)
                self._forget(t)
            t = self._connect()
            self._transport = t
            self.connections += 1
            self._restore_forwards(t)
            return t

    def _forget(self, t: Any) -> None:
        """Drop ``t`` (if it is still the current connection) and close it."""
        with self._lock:
            if self._transport is t:
                self._transport = None
                self._sftp = None
                self._home = None
                self._forwarded_on = set()
        t.close()

    def _connect(self) -> Any:
        paramiko = import_paramiko()
        addr = f"{self.hostname}:{self.port}"
        logger.debug("connecting to %s", addr)
        try:
            sock = socket.create_connection((self.hostname, self.port), timeout=self.connect_timeout)
        except OSError as e:
            raise ChannelConnectError(self.hostname, self.port, describe_os_error(e)) from e
        try:
            if self.gssapi_auth:
                t = paramiko.Transport(sock, gss_kex=True, gss_deleg_creds=True)
            else:
                t = paramiko.Transport(sock)
        except Exception as e:
            sock.close()
            raise ChannelConnectError(self.hostname, self.port, f"cannot set up SSH: {e}") from e
        try:
            t.banner_timeout = self.connect_timeout
            t.handshake_timeout = self.connect_timeout
            t.auth_timeout = self.auth_timeout
            t.channel_timeout = self.connect_timeout
            known = self._host_keys.load(paramiko)
            self._host_keys.prefer_known_key_types(t, known)
            try:
                t.start_client(timeout=self.connect_timeout)
            except (paramiko.SSHException, EOFError, OSError) as e:
                raise ChannelConnectError(
                    self.hostname, self.port, f"SSH handshake failed: {describe_os_error(e)}"
                ) from e
            if not t.is_active() or not t.initial_kex_done:
                # start_client() returns quietly when its timeout passes mid-handshake
                raise ChannelConnectError(
                    self.hostname, self.port, f"no SSH handshake within {self.connect_timeout:g} s (is this an sshd?)"
                )
            self._host_keys.check(paramiko, t, known)
            if self.keepalive:
                t.set_keepalive(int(max(1, self.keepalive)))
            self._authenticate(paramiko, t, self._user())
        except BaseException:
            t.close()
            raise
        logger.info("connected to %s@%s", self._user(), addr)
        return t

    # ----------------------------------------------------------------- authentication

    def _authenticate(self, paramiko: ModuleType, t: Any, username: str) -> None:
        """Try the configured methods in turn until the server accepts; else AuthenticationError."""
        login = Login(paramiko, t, username, self.hostname, self.port)
        if self.skip_auth:
            login.try_none()
        else:
            if self.gssapi_auth:
                login.try_gssapi()
            if not login.done:
                login.try_key_files(self._key_files(), self._password, explicit=True)
            if not login.done:
                login.try_agent()
            if not login.done and self.key_filename is None:
                login.try_default_key_files(self._password)
            if not login.done and self._password is not None:
                login.try_password(self._password)
        if not login.done:
            raise login.failure()

    def _key_files(self) -> list[str]:
        if self.key_filename is None:
            return []
        files = [self.key_filename] if isinstance(self.key_filename, str) else list(self.key_filename)
        return [os.path.expanduser(f) for f in files]

    # ----------------------------------------------------------------- commands

    def _command_script(self, cmd: str, envs: dict[str, str] | None) -> str:
        merged = dict(self.envs)
        merged.update(envs or {})
        lines = [f"printf '{_PGID_MARK.decode()}%s\\n' $$ >&2"]
        for key, value in merged.items():
            if not _ENV_NAME.match(key):
                raise ValueError(f"invalid environment variable name: {key!r}")
            lines.append(f"export {key}={shlex.quote(str(value))}")
        lines.append(cmd)
        return "\n".join(lines)

    def _open_session(self) -> tuple[Any, Any]:
        """``(transport, session)``; a failure to open is retried once on a fresh connection."""
        paramiko = import_paramiko()
        for attempt in (1, 2):
            t = self._connection()
            try:
                return t, t.open_session(timeout=self.connect_timeout)
            except paramiko.ChannelException as e:
                if t.is_active():  # a live server said no: a limit, not a broken connection
                    raise ChannelError(
                        f"{self.hostname} refused a new SSH session: {e} (too many at once for its "
                        f"MaxSessions setting?)",
                        self.hostname,
                    ) from e
                self._forget(t)
                if attempt == 2:
                    raise ChannelConnectError(
                        self.hostname, self.port, f"cannot open an SSH session: {describe_os_error(e)}"
                    ) from e
            except (paramiko.SSHException, EOFError, OSError) as e:
                self._forget(t)
                if attempt == 2:
                    raise ChannelConnectError(
                        self.hostname, self.port, f"cannot open an SSH session: {describe_os_error(e)}"
                    ) from e
                logger.info("opening an SSH session on %s failed (%s); reconnecting once", self.hostname, e)
        raise AssertionError("unreachable")

    def execute_wait(
        self, cmd: str, walltime: float | None = None, envs: dict[str, str] | None = None
    ) -> tuple[int, str, str]:
        """Run ``cmd`` with the remote login shell (a POSIX shell); return ``(exit_code, stdout, stderr)``.

        ``envs`` (added to the channel's ``envs``) are exported first. Past ``walltime``
        seconds the command's process group is killed and ChannelTimeout raised.
        """
        script = self._command_script(cmd, envs)
        with self._command_slots:
            return self._execute(cmd, script, walltime)

    def _execute(self, cmd: str, script: str, walltime: float | None) -> tuple[int, str, str]:
        paramiko = import_paramiko()
        t, chan = self._open_session()
        try:
            with Deadline(self.connect_timeout, chan.close) as deadline:
                try:
                    chan.exec_command(script)
                except (paramiko.SSHException, EOFError, OSError) as e:
                    if deadline.expired:
                        raise ChannelTimeout(f"starting {cmd!r}", self.connect_timeout, self.hostname) from e
                    if not t.is_active():
                        self._forget(t)
                    raise ChannelError(
                        f"cannot start {cmd!r} on {self.hostname}: {describe_os_error(e)} (it may or may not have run)",
                        self.hostname,
                    ) from e
            return self._collect(t, chan, cmd, walltime)
        finally:
            chan.close()

    def _collect(self, t: Any, chan: Any, cmd: str, walltime: float | None) -> tuple[int, str, str]:
        deadline = None if walltime is None else time.monotonic() + walltime
        out = bytearray()
        err = bytearray()
        pgid: int | None = None
        fd = chan.fileno()
        probe_every = self.keepalive or 30.0
        last_heard = time.monotonic()
        while True:
            # Look at the end of the command before reading: paramiko's thread queues the last
            # output before it sets EOF and the status, so reading after looking gets all of it.
            got_status = chan.status_event.is_set() and chan.exit_status != -1
            finished = chan.closed or (got_status and chan.eof_received)
            if chan.recv_ready() or chan.recv_stderr_ready():
                last_heard = time.monotonic()
            while chan.recv_ready():
                out += chan.recv(65536)
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
            if pgid is None and err.startswith(_PGID_MARK) and b"\n" in err:
                line, _, rest = bytes(err).partition(b"\n")
                pgid = int(line[len(_PGID_MARK) :].strip() or b"0") or None
                err = bytearray(rest)
            if finished:
                if not got_status and not t.is_active():
                    self._forget(t)
                    raise ChannelError(
                        f"the connection to {self.hostname}:{self.port} was lost while {cmd!r} ran "
                        f"(it may or may not have finished); output so far: {_decode(out)!r}",
                        self.hostname,
                    )
                break  # closed without a status: the remote shell died of a signal; exit code -1
            wait = 1.0
            if deadline is not None:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    assert walltime is not None
                    chan.close()  # frees its session for the kill below
                    self._kill_remote(pgid)
                    raise ChannelTimeout(cmd, walltime, self.hostname, _decode(out), _decode(_strip_mark(err)))
                wait = min(wait, 1.0)
            if time.monotonic() - last_heard >= probe_every:
                # A quiet command, or a connection that died without a word (no FIN, no RST):
                # a round trip tells them apart; a dead one is closed and reported above.
                self._probe(t)
                last_heard = time.monotonic()
                continue
            if chan.eof_received:
                chan.status_event.wait(wait)  # the output is complete; the exit status follows
            else:
                select.select([fd], [], [], wait)
        return chan.exit_status, _decode(out), _decode(_strip_mark(err))

    def _probe(self, t: Any) -> bool:
        """One bounded round trip on ``t``; a connection that does not answer in time is closed."""
        with self._global_request_lock, Deadline(self.connect_timeout, t.close) as deadline:
            try:
                t.global_request("keepalive@openssh.com", wait=True)  # any answer, even "failure", will do
            except (import_paramiko().SSHException, EOFError, OSError):
                pass
        if deadline.expired or not t.is_active():
            logger.warning("the connection to %s:%d stopped answering; closing it", self.hostname, self.port)
            return False
        return True

    def _kill_remote(self, pgid: int | None) -> None:
        """Best effort: SIGKILL the remote process group of a command that ran out of time."""
        if pgid is None or pgid <= 1:
            logger.warning("cannot kill a timed-out command on %s: its process group is unknown", self.hostname)
            return
        try:
            t, chan = self._open_session()
            try:
                with Deadline(self.connect_timeout, chan.close):
                    chan.exec_command(f"kill -KILL -- -{pgid} 2>/dev/null; true")
                    chan.status_event.wait(self.connect_timeout)
            finally:
                chan.close()
        except Exception as e:  # the timeout is what the caller must hear about
            logger.warning("could not kill process group %d on %s: %s", pgid, self.hostname, e)

    # ----------------------------------------------------------------- files (SFTP)

    def add_remote_forward(self, remote_port: int, handler: ForwardHandler, bind_address: str = "127.0.0.1") -> int:
        """Ask sshd to listen on remote ``bind_address:remote_port`` (port 0: any free port) for us.

        Each connection made there arrives as a paramiko channel passed to ``handler``
        (from paramiko's thread; it must not block). Returns the remote port. The forward
        is requested again after a reconnection. Used by :mod:`flowlib.channels.tunnel`.
        sshd binds only its loopback interface unless its ``GatewayPorts`` setting is
        ``clientspecified`` (then ``bind_address`` is honoured) or ``yes`` (all interfaces).
        """
        with self._lock:
            t = self._connection()
            port = self._request_forward(t, bind_address, remote_port)
            self._forwards[port] = (bind_address, handler)
            self._forwarded_on.add(port)
            return port

    def remove_remote_forward(self, remote_port: int) -> None:
        """Stop forwarding ``remote_port``; connections still open are left to their handler."""
        with self._lock:
            entry = self._forwards.pop(remote_port, None)
            self._forwarded_on.discard(remote_port)
            t = self._transport
        if entry is not None and t is not None and t.is_active():
            try:  # no reply awaited: a lost answer must not hang us
                t.global_request("cancel-tcpip-forward", (entry[0], remote_port), wait=False)
            except Exception as e:
                logger.debug("cancelling the forward of remote port %d failed: %s", remote_port, e)

    def ensure_forwards(self) -> None:
        """Check the connection with a round trip, reconnect if it is dead, and re-request
        any forward the current connection lacks."""
        self._probe(self._connection())  # a connection that does not answer is closed here
        with self._lock:
            t = self._connection()
            self._restore_forwards(t)

    def _restore_forwards(self, t: Any) -> None:
        for port, (address, _) in list(self._forwards.items()):
            if port in self._forwarded_on:
                continue
            try:
                self._request_forward(t, address, port)
            except ChannelError as e:
                logger.error("cannot forward remote port %d on %s again: %s", port, self.hostname, e)
            else:
                self._forwarded_on.add(port)
                logger.info("forwarding remote port %d on %s again", port, self.hostname)

    def _request_forward(self, t: Any, address: str, remote_port: int) -> int:
        paramiko = import_paramiko()
        with self._global_request_lock, Deadline(self.connect_timeout, t.close) as deadline:
            try:
                port: int = t.request_port_forward(address, remote_port, handler=self._dispatch_forward)
            except (paramiko.SSHException, EOFError, OSError) as e:
                if deadline.expired:
                    raise ChannelTimeout(
                        f"forwarding remote port {remote_port}", self.connect_timeout, self.hostname
                    ) from e
                raise ChannelError(
                    f"{self.hostname} refused to listen on {address}:{remote_port} for a tunnel: {e} "
                    f"(is the port taken, or AllowTcpForwarding off in its sshd_config?)",
                    self.hostname,
                ) from e
        return port

    def _dispatch_forward(self, chan: Any, origin: tuple[str, int], server: tuple[str, int]) -> None:
        entry = self._forwards.get(server[1])
        if entry is None:
            chan.close()
            return
        entry[1](chan, origin)

    # ----------------------------------------------------------------- lifetime

    def close(self) -> None:
        """Close the connection; the channel cannot be used afterwards. Idempotent."""
        with self._lock:
            self._closed = True
            t, self._transport = self._transport, None
            sftp, self._sftp = self._sftp, None
            self._forwards.clear()
            self._forwarded_on = set()
        if sftp is not None:
            try:
                sftp.close()
            except Exception:
                logger.debug("closing SFTP failed", exc_info=True)
        if t is not None:
            t.close()

    def __enter__(self) -> SSHChannel:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _decode(data: bytes | bytearray) -> str:
    return bytes(data).decode("utf-8", errors="replace")


def _strip_mark(err: bytearray) -> bytearray:
    if err.startswith(_PGID_MARK):
        _, _, rest = bytes(err).partition(b"\n")
        return bytearray(rest)
    return err
