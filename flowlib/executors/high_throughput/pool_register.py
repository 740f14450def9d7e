"""Registering a worker pool with its interchange, trying several addresses at once.

::

    worker pool                                    interchange (ROUTER)
    -----------                                    --------------------
    DEALER per candidate address --- REGISTER --->  (the addresses that reach it)
    keep the first DEALER        <-- REGISTERED --  or REJECT(reason)
    close the others

Each candidate DEALER carries a ZeroMQ socket monitor while the probe runs, so
that when nothing answers, the error says what happened on each address:
connection refused, a failed CurveZMQ handshake (mismatched keys), a
connection that got no answer, or no connection at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import zmq

from flowlib.addresses import resolve_all, tcp_url, zmq_ipv6
from flowlib.executors.high_throughput import protocol
from flowlib.executors.high_throughput.links import UnixLink, connect
from flowlib.executors.high_throughput.protocol import Kind, ProtocolError, Registration

logger = logging.getLogger("flowlib.executors.high_throughput.worker_pool")

_DIAGNOSES: dict[int, tuple[int, str]] = {
    # monitor event: (how far the connection got, what that tells the user)
    zmq.EVENT_CONNECT_RETRIED: (1, "connection refused (nothing listening on that port?)"),
    zmq.EVENT_CONNECTED: (2, "connected, but the ZeroMQ handshake did not finish"),
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: (3, "the CurveZMQ handshake failed (mismatched keys?)"),
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: (3, "the ZeroMQ handshake failed (encryption on one side only?)"),
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: (3, "the interchange refused our CurveZMQ key"),
    zmq.EVENT_HANDSHAKE_SUCCEEDED: (3, "connected, but no answer to REGISTER (is an interchange listening there?)"),
}
_NO_CONNECTION = (0, "no connection was made (unreachable host, or a firewall dropping packets)")


class RegistrationRejected(Exception):
    """The interchange answered REJECT; ``reason`` is its explanation."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"the interchange at {url} refused this pool: {reason}")
        self.url = url
        self.reason = reason


class RegistrationTimeout(Exception):
    """No candidate address answered within the probe timeout; the message says what was seen."""


class RegistrationInterrupted(Exception):
    """A signal asked the pool to stop while it was registering."""


def interchange_url(address: str, port: int) -> str:
    """``tcp://address:port``, with IPv6 literals bracketed."""
    return tcp_url(address, port)


def candidate_urls(addresses: Sequence[str], port: int) -> list[str]:
    """The URLs a pool probes for ``addresses`` (see :func:`candidates`)."""
    return [url for _, url in candidates(addresses, port)]


def registered_options(body: Sequence[Any]) -> dict[str, Any]:
    """The REGISTERED answer's JSON object (empty when absent or malformed: every key is optional)."""
    if len(body) != 1:
        return {}
    try:
        return dict(protocol.unpack_json(body[0]))
    except ProtocolError as e:
        logger.warning("ignored a malformed REGISTERED body: %s", e)
        return {}


def candidates(addresses: Sequence[str], port: int) -> list[tuple[str, str]]:
    """``(host, url)`` to probe: each address in the given order, a host name as every address it resolves to.

    A name that resolves to IPv4 and IPv6 addresses is tried on all of them at once
    (ZeroMQ itself would only try the first); a name that does not resolve is kept as
    it is, so that the timeout message names it.
    """
    found: dict[str, str] = {}  # url -> host, in order
    for address in addresses:
        try:
            resolved = resolve_all(address)
        except (OSError, UnicodeError):
            logger.warning("interchange address %r does not resolve; trying it as it is", address)
            resolved = [address]
        for host in resolved or [address]:
            found.setdefault(tcp_url(host, port), host)
    return [(host, url) for url, host in found.items()]


@dataclass
class _Candidate:
    url: str
    socket: Any
    monitor: Any
    diagnosis: tuple[int, str] = _NO_CONNECTION
    """How far the connection got, and what that means; the furthest stage wins."""

    def observe(self, event: int) -> None:
        """Update what we know about this address from one monitor event."""
        seen = _DIAGNOSES.get(event)
        if seen is not None and seen[0] >= self.diagnosis[0]:
            self.diagnosis = seen

    def close(self) -> None:
        self.socket.disable_monitor()
        self.monitor.close(linger=0)
        self.socket.close(linger=0)


def _make_socket(context: zmq.Context[Any], identity: bytes, keys: Any, host: str) -> Any:
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.IDENTITY, identity)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.IPV6, zmq_ipv6(host))  # on for IPv6 literals and names; IPv4 sockets stay plain
    socket.setsockopt(zmq.SNDHWM, 0)
    socket.setsockopt(zmq.RCVHWM, 0)
    socket.setsockopt(zmq.RECONNECT_IVL, 100)
    socket.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
    if keys is not None:
        from flowlib.executors.high_throughput.security import apply_client

        apply_client(socket, keys)
    return socket


def _monitor_event(monitor: Any) -> int:
    """The event number of one socket-monitor message (first frame: uint16 event, uint32 value)."""
    frames = monitor.recv_multipart()
    return int.from_bytes(frames[0][:2], "little")


class RegistrationProbe:
    """Sends REGISTER to every candidate address at once and waits for the first answer.

    ``send()`` returns at once, so the pool can start its workers while the
    answer travels; ``wait()`` then returns ``(socket, url, registered_body)``
    for the address that answered REGISTERED, or raises RegistrationRejected,
    RegistrationTimeout or RegistrationInterrupted. ``registered_body`` is the
    frames after the REGISTERED header (possibly none).
    """

    def __init__(
        self, context: zmq.Context[Any], addresses: Sequence[str], port: int, keys: Any, registration: Registration
    ) -> None:
        self.context = context
        self.hosts = {url: host for host, url in candidates(addresses, port)}
        self.urls = list(self.hosts)
        self.keys = keys
        self.registration = registration
        self.candidates: dict[Any, _Candidate] = {}
        self.monitors: dict[Any, _Candidate] = {}
        self.poller = zmq.Poller()
        self.sent_at = 0.0

    def send(self) -> None:
        """Connect to every candidate and send REGISTER on each."""
        identity = self.registration.pool_id.encode("ascii")
        message = self.registration.encode()
        for url in self.urls:
            socket = _make_socket(self.context, identity, self.keys, self.hosts[url])
            monitor = socket.get_monitor_socket()
            candidate = _Candidate(url, socket, monitor)
            self.candidates[socket] = self.monitors[monitor] = candidate
            self.poller.register(socket, zmq.POLLIN)
            self.poller.register(monitor, zmq.POLLIN)
            socket.connect(url)
            socket.send_multipart(message)
        self.sent_at = time.monotonic()
        logger.info("registering with %s", ", ".join(self.urls))

    def wait(self, timeout: float, should_stop: Callable[[], bool]) -> tuple[Any, str, list[Any]]:
        """Wait up to ``timeout`` s after :meth:`send` for the first answer; close the other sockets."""
        deadline = self.sent_at + timeout
        winner: _Candidate | None = None
        body: list[Any] = []
        try:
            while winner is None:
                if should_stop():
                    raise RegistrationInterrupted()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RegistrationTimeout(self._timeout_message(timeout))
                for sock, _ in self.poller.poll(int(min(remaining, 0.1) * 1000) + 1):
                    if sock in self.monitors:
                        self.monitors[sock].observe(_monitor_event(sock))
                        continue
                    answer = self._answer(self.candidates[sock])
                    if answer is not None:
                        winner, body = self.candidates[sock], answer
                        break
        finally:
            for candidate in self.candidates.values():
                if candidate is winner:
                    candidate.socket.disable_monitor()
                    candidate.monitor.close(linger=0)
                else:
                    candidate.close()
        logger.info("registered with the interchange at %s", winner.url)
        return winner.socket, winner.url, body

    def _answer(self, candidate: _Candidate) -> list[Any] | None:
        """Read one message from a candidate: the REGISTERED body, None to keep waiting; raise on REJECT."""
        frames = candidate.socket.recv_multipart()
        try:
            _, kind = protocol.parse_header(frames[0])
        except ProtocolError as e:
            logger.warning("malformed answer from %s dropped: %s", candidate.url, e)
            return None
        if kind == Kind.REJECT:
            reason = bytes(frames[1]).decode("utf-8", "replace") if len(frames) > 1 else "no reason given"
            raise RegistrationRejected(candidate.url, reason)
        if kind == Kind.REGISTERED:
            return list(frames[1:])
        logger.warning("unexpected %s from %s before registration; dropped", kind.name, candidate.url)
        return None

    def _timeout_message(self, timeout: float) -> str:
        seen = "; ".join(f"{c.url}: {c.diagnosis[1]}" for c in self.candidates.values())
        return (
            f"could not register with the interchange at {', '.join(self.urls)} within {timeout:g} s "
            f"(wrong address, a firewall, mismatched keys, or the interchange is down); seen: {seen}"
        )


def register_over_unix(
    path: str, registration: Registration, timeout: float, should_stop: Callable[[], bool]
) -> tuple[UnixLink, list[list[Any]], list[Any]] | None:
    """Register through the interchange's Unix socket, for a pool on the interchange's machine.

    Returns the link once REGISTERED arrives, with the messages that arrived
    right behind it in the same read (tasks, often) and the frames after the
    REGISTERED header (its body, possibly none); None when nothing listens
    at ``path`` (the pool is on another node: the caller falls back to TCP).
    Raises RegistrationRejected, RegistrationTimeout or RegistrationInterrupted
    like :class:`RegistrationProbe`.
    """
    import select

    try:
        link = connect(path, name="link to the interchange")
    except OSError as e:
        logger.info("no interchange on the Unix socket %s (%s); trying its addresses", path, e)
        return None
    url = f"unix://{path}"
    try:
        link.send(registration.encode())
        deadline = time.monotonic() + timeout
        while True:
            if should_stop():
                raise RegistrationInterrupted()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RegistrationTimeout(f"no answer to REGISTER on {url} within {timeout:g} s")
            wanted = [link.fd] if link.wants_write else []
            readable, writable, _ = select.select([link.fd], wanted, [], min(remaining, 0.1))
            if writable:
                link.flush()
            if not readable:
                continue
            messages = link.receive()
            for index, frames in enumerate(messages):
                try:
                    _, kind = protocol.parse_header(frames[0])
                except ProtocolError as e:
                    logger.warning("malformed answer from %s dropped: %s", url, e)
                    continue
                if kind == Kind.REJECT:
                    reason = bytes(frames[1]).decode("utf-8", "replace") if len(frames) > 1 else "no reason given"
                    raise RegistrationRejected(url, reason)
                if kind == Kind.REGISTERED:
                    logger.info("registered with the interchange at %s", url)
                    return link, messages[index + 1 :], list(frames[1:])
                logger.warning("unexpected %s from %s before registration; dropped", kind.name, url)
    except EOFError as e:
        link.close()
        raise RegistrationTimeout(f"the interchange closed {url} before answering REGISTER ({e})") from None
    except BaseException:
        link.close()
        raise
