"""Reverse SSH tunnels: remote processes reach local ports through the channel's connection.

::

    user's machine                                    remote side (login node, its sshd)
    interchange on 127.0.0.1:<local_port>             worker connects to 127.0.0.1:<remote_port>
          ^                                                      |
          |  one pump thread per forwarded connection            v
    SSHTunnel <── forwarded-tcpip channel ── SSH connection ── sshd listening on <remote_port>

This is ``ssh -R 127.0.0.1:<remote_port>:127.0.0.1:<local_port>``, done over an
:class:`~flowlib.channels.ssh.SSHChannel`'s existing connection: nothing on the user's
machine accepts inbound connections from the network. By default sshd listens on the
loopback interface of the host the channel logs in to, which suits workers started on
that host (or on a single-node cluster). For workers on compute nodes, sshd must listen on
an address they can reach: ``remote_bind_address`` plus ``GatewayPorts clientspecified``
in that sshd's configuration (see docs/ssh.rst).

Usage::

    tunnel = SSHTunnel(channel, local_ports=[55055, 55056])
    remote_ports = tunnel.start()          # e.g. [40123, 40124]: give these to the workers
    ...
    tunnel.close()

The tunnel survives a dropped connection: when the channel reconnects (on its next use, or
from the tunnel's watchdog every ``check_interval`` seconds), the same remote ports are
requested again. Connections that were open when it dropped are lost; clients reconnect.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from flowlib.channels.errors import ChannelClosedError, ChannelError
from flowlib.channels.ssh import SSHChannel

logger = logging.getLogger(__name__)

_CHUNK = 65536


@dataclasses.dataclass(frozen=True)
class TunnelStatistics:
    """A snapshot of a tunnel's traffic, returned by :meth:`SSHTunnel.statistics`."""

    remote_ports: dict[int, int]
    """Remote port -> the local port it leads to."""

    connections_total: int
    """Connections accepted since ``start()``."""

    connections_open: int
    """Connections being forwarded now."""

    local_connect_failures: int
    """Connections dropped because nothing accepted them on the local port."""

    bytes_to_local: int
    """Bytes carried from the remote side to the local ports."""

    bytes_to_remote: int
    """Bytes carried from the local ports to the remote side."""

    reconnections: int
    """SSH connections the channel made after its first one (each re-requests the forwards)."""


class SSHTunnel:
    """Remote port forwards over ``channel``: remote ``127.0.0.1:<remote port>`` -> local ports.

    :param channel: the SSH channel whose connection carries the traffic.
    :param local_ports: local ports to reach (one forward each); an int means one port.
    :param remote_ports: the remote port for each local port; 0 (or ``None`` for all)
        lets sshd pick a free one. :meth:`start` returns the ports in use.
    :param local_host: the local address the ports listen on.
    :param check_interval: seconds between the watchdog's checks that the connection is
        alive (it reconnects and re-forwards if not); default: the channel's
        ``keepalive``, or 30 s; 0 turns the watchdog off.
    :param local_connect_timeout: seconds allowed to connect to a local port.
    :param remote_bind_address: the address sshd listens on. The default, loopback, is all
        that sshd allows unless its ``GatewayPorts`` is ``clientspecified`` (then an address
        of the login node that compute nodes can reach works, for example its internal
        interface) or ``yes`` (sshd then listens on every interface whatever is asked).

    Construction does no I/O. Each forwarded connection gets one daemon thread; all of
    them stop in :meth:`close`.
    """

    def __init__(
        self,
        channel: SSHChannel,
        local_ports: Sequence[int] | int,
        remote_ports: Sequence[int] | None = None,
        local_host: str = "127.0.0.1",
        check_interval: float | None = None,
        local_connect_timeout: float = 5.0,
        remote_bind_address: str = "127.0.0.1",
    ) -> None:
        if not isinstance(channel, SSHChannel):
            raise TypeError(f"an SSH tunnel needs an SSHChannel, not {type(channel).__name__}")
        locals_ = [local_ports] if isinstance(local_ports, int) else list(local_ports)
        if not locals_:
            raise ValueError("local_ports is empty: give at least one port to forward")
        if len(set(locals_)) != len(locals_):
            raise ValueError(f"local_ports has duplicates: {locals_}")
        remotes = [0] * len(locals_) if remote_ports is None else list(remote_ports)
        if len(remotes) != len(locals_):
            raise ValueError(f"{len(remotes)} remote_ports for {len(locals_)} local_ports: give one each")
        for name, ports, low in (("local", locals_, 1), ("remote", remotes, 0)):
            for p in ports:
                if isinstance(p, bool) or not isinstance(p, int) or not low <= p < 65536:
                    raise ValueError(f"invalid {name} port {p!r}: expected an integer in {low}..65535")
        if check_interval is None:
            check_interval = channel.keepalive or 30.0
        if check_interval < 0:
            raise ValueError(f"check_interval must be >= 0 seconds, not {check_interval!r}")
        self.channel = channel
        self.local_ports = locals_
        self.local_host = local_host
        self.check_interval = check_interval
        self.local_connect_timeout = local_connect_timeout
        self.remote_bind_address = remote_bind_address
        self._requested_remote = remotes
        self._remote_to_local: dict[int, int] = {}

        self._lock = threading.Lock()  # guards the fields below
        self._closing = False
        self._pumps: dict[threading.Thread, tuple[Any, socket.socket | None]] = {}
        self._conn_seq = 0
        self._stats = {"total": 0, "failed": 0, "to_local": 0, "to_remote": 0}
        self._connections_at_start = 0
        # Written once by close(): every pump selects on the read end and leaves.
        self._stop_r, self._stop_w = os.pipe()
        self._stop_event = threading.Event()
        self._watchdog: threading.Thread | None = None

    # ----------------------------------------------------------------- lifetime

    def start(self) -> list[int]:
        """Ask sshd to listen on the remote ports; return them, in the order of ``local_ports``.

        Raises a :class:`~flowlib.channels.errors.ChannelError` if the channel cannot
        connect or sshd refuses a port (taken, or forwarding disabled); forwards set up
        before the failure are removed again.
        """
        if self._remote_to_local:
            return self.remote_ports
        if self._closing:
            raise ChannelClosedError("this tunnel is closed", self.channel.hostname)
        try:
            for local, remote in zip(self.local_ports, self._requested_remote, strict=True):
                handler = functools.partial(self._on_connection, local)
                port = self.channel.add_remote_forward(remote, handler, self.remote_bind_address)
                self._remote_to_local[port] = local
                logger.info(
                    "tunnel: %s %s:%d -> local %s:%d",
                    self.channel.hostname,
                    self.remote_bind_address,
                    port,
                    self.local_host,
                    local,
                )
        except BaseException:
            for port in self._remote_to_local:
                self.channel.remove_remote_forward(port)
            self._remote_to_local.clear()
            raise
        self._connections_at_start = self.channel.connections
        if self.check_interval > 0:
            self._watchdog = threading.Thread(target=self._watch, name="flowlib-tunnel-watchdog", daemon=True)
            self._watchdog.start()
        return self.remote_ports

    @property
    def remote_ports(self) -> list[int]:
        """The remote ports in use, in the order of ``local_ports`` (empty before ``start()``)."""
        by_local = {local: remote for remote, local in self._remote_to_local.items()}
        return [by_local[p] for p in self.local_ports if p in by_local]

    def remote_port(self, local_port: int) -> int:
        """The remote port that leads to ``local_port``."""
        for remote, local in self._remote_to_local.items():
            if local == local_port:
                return remote
        raise KeyError(f"local port {local_port} is not forwarded by this tunnel")

    def check(self) -> None:
        """Probe the connection (bounded by the channel's ``connect_timeout``); reconnect it if
        it died, even silently, and request the forwards again."""
        self.channel.ensure_forwards()

    def _watch(self) -> None:
        while not self._stop_event.wait(self.check_interval):
            try:
                self.check()
            except ChannelClosedError:
                return
            except ChannelError as e:
                logger.warning("tunnel over %s is down and could not be restored yet: %s", self.channel.hostname, e)

    def close(self, timeout: float = 10.0) -> None:
        """Stop forwarding, end every open forwarded connection and join the threads. Idempotent."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            pumps = dict(self._pumps)
        self._stop_event.set()
        for port in list(self._remote_to_local):
            self.channel.remove_remote_forward(port)
        os.write(self._stop_w, b"x")
        for chan, sock in pumps.values():
            # Wake a pump blocked in a send: its peer is going away.
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            chan.close()
        threads = list(pumps)
        if self._watchdog is not None:
            threads.append(self._watchdog)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in threads if t.is_alive()]
        if stuck:
            logger.warning("tunnel threads still running after close(): %s", stuck)
        else:
            os.close(self._stop_r)
            os.close(self._stop_w)

    def __enter__(self) -> SSHTunnel:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def statistics(self) -> TunnelStatistics:
        with self._lock:
            return TunnelStatistics(
                remote_ports=dict(self._remote_to_local),
                connections_total=self._stats["total"],
                connections_open=len(self._pumps),
                local_connect_failures=self._stats["failed"],
                bytes_to_local=self._stats["to_local"],
                bytes_to_remote=self._stats["to_remote"],
                reconnections=max(0, self.channel.connections - self._connections_at_start),
            )

    # ----------------------------------------------------------------- forwarding

    def _on_connection(self, local_port: int, chan: Any, origin: tuple[str, int]) -> None:
        """From paramiko's thread: hand the new channel to a pump thread of its own."""
        with self._lock:
            if self._closing:
                chan.close()
                return
            self._conn_seq += 1
            self._stats["total"] += 1
            thread = threading.Thread(
                target=self._pump,
                args=(chan, local_port, origin),
                name=f"flowlib-tunnel-{local_port}-{self._conn_seq}",
                daemon=True,
            )
            self._pumps[thread] = (chan, None)
        thread.start()

    def _pump(self, chan: Any, local_port: int, origin: tuple[str, int]) -> None:
        me = threading.current_thread()
        sock: socket.socket | None = None
        try:
            try:
                sock = socket.create_connection((self.local_host, local_port), timeout=self.local_connect_timeout)
            except OSError as e:
                with self._lock:
                    self._stats["failed"] += 1
                logger.warning(
                    "tunnel: cannot reach local %s:%d for a connection from %s:%d: %s",
                    self.local_host,
                    local_port,
                    origin[0],
                    origin[1],
                    e,
                )
                return
            sock.settimeout(None)
            with self._lock:
                if self._closing:
                    return
                self._pumps[me] = (chan, sock)
            self._relay(chan, sock)
        except Exception as e:  # a broken connection ends this pump, never the tunnel
            logger.debug("tunnel connection to local port %d ended: %s", local_port, e)
        finally:
            with self._lock:
                self._pumps.pop(me, None)
            if sock is not None:
                sock.close()
            chan.close()

    def _relay(self, chan: Any, sock: socket.socket) -> None:
        """Copy bytes both ways until both directions reached end-of-file (or close())."""
        chan_fd = chan.fileno()
        from_remote_open = from_local_open = True
        while from_remote_open or from_local_open:
            watch: list[Any] = [self._stop_r]
            if from_remote_open:
                watch.append(chan_fd)
            if from_local_open:
                watch.append(sock)
            ready, _, _ = select.select(watch, [], [])
            if self._stop_r in ready:
                return
            if chan_fd in ready:
                data = chan.recv(_CHUNK)
                if data:
                    sock.sendall(data)
                    self._count("to_local", len(data))
                else:
                    from_remote_open = False
                    try:
                        sock.shutdown(socket.SHUT_WR)
                    except OSError:
                        return
            if sock in ready:
                data = sock.recv(_CHUNK)
                if data:
                    chan.sendall(data)
                    self._count("to_remote", len(data))
                else:
                    from_local_open = False
                    chan.shutdown_write()
            if chan.closed and not chan.recv_ready():
                return  # the remote side is gone entirely: nothing left to deliver either way

    def _count(self, key: str, n: int) -> None:
        with self._lock:
            self._stats[key] += n


def open_tunnel(
    channel: SSHChannel, local_ports: Sequence[int] | int, remote_ports: Sequence[int] | None = None, **kwargs: Any
) -> SSHTunnel:
    """Create and start an :class:`SSHTunnel`; its remote ports are ``tunnel.remote_ports``."""
    tunnel = SSHTunnel(channel, local_ports, remote_ports, **kwargs)
    tunnel.start()
    return tunnel
