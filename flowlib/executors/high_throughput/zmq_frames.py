"""Multipart send and receive on ZeroMQ sockets without pyzmq's per-frame Python layer.

pyzmq's ``send_multipart`` type-checks every frame, then calls the Python-level
``Socket.send`` for each one with ``zmq.SNDMORE | flags``, an ``enum.Flag``
operation; ``recv_multipart`` asks for ``RCVMORE`` through the same layers. A
TASKS or RESULTS message has a frame per task, so that layer costs more than
ZeroMQ itself (about 1.5 µs against 0.25 µs a frame on the interchange's path).
These helpers call the compiled socket methods directly with plain integer
flags. Frames are anything with the buffer interface, as for pyzmq.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import zmq
from zmq.backend import Socket as _CompiledSocket

_send = _CompiledSocket.send
_recv = _CompiledSocket.recv
_get = _CompiledSocket.get
_SNDMORE = int(zmq.SNDMORE)
_RCVMORE = int(zmq.RCVMORE)
NOBLOCK = int(zmq.NOBLOCK)


def send_frames(sock: Any, frames: Sequence[Any], flags: int = 0, copy: bool = True) -> None:
    """Send ``frames`` (at least one) as one multipart message, like ``sock.send_multipart``."""
    more = flags | _SNDMORE
    send = _send
    for frame in frames[:-1]:
        send(sock, frame, more, copy)
    send(sock, frames[-1], flags, copy)


def recv_frames(sock: Any, flags: int = 0, copy: bool = True) -> list[Any]:
    """Receive one multipart message, like ``sock.recv_multipart`` (``zmq.Again`` with NOBLOCK and none waiting)."""
    recv = _recv
    parts = [recv(sock, flags, copy)]
    while _get(sock, _RCVMORE):
        parts.append(recv(sock, flags, copy))
    return parts


_EVENTS = int(zmq.EVENTS)
_FD = int(zmq.FD)
_POLLIN = int(zmq.POLLIN)


def readable(sock: Any) -> bool:
    """Whether ``sock`` has a message waiting (cheaper than a recv that raises Again)."""
    return bool(int(_get(sock, _EVENTS)) & _POLLIN)


class ZmqWatch:
    """Lets a plain ``poll()`` (:class:`~.fd_poller.FdPoller`) wait on ZeroMQ sockets too.

    A ZeroMQ socket's ``FD`` option is a descriptor that becomes readable when
    the socket's state may have changed, not when a message waits: the truth is
    ``EVENTS``, and reading ``EVENTS`` (or sending, or receiving) is what
    consumes the signal. So a message can be waiting while the descriptor is
    quiet, when it arrived during a send. The rule kept here: after a pass that
    sent on any watched socket (``touched``), ``EVENTS`` is asked before the
    next wait, and a socket with a message waiting makes that wait a poll of 0
    ms; a socket whose descriptor fired is always asked.
    """

    def __init__(self, poller: Any) -> None:
        self.poller = poller
        self.by_fd: dict[int, Any] = {}
        self.touched = False
        """Set by the owner after sending on a watched socket (in the pass being run)."""
        self._waiting: list[Any] = []

    def add(self, sock: Any) -> None:
        """Watch ``sock`` for incoming messages."""
        fd = int(_get(sock, _FD))
        self.by_fd[fd] = sock
        self.poller.register(fd, _POLLIN)

    def timeout(self, wait_ms: int) -> int:
        """How long the next poll may wait: ``wait_ms``, or 0 if a message waits on a socket touched since."""
        self._waiting = []
        if self.touched:
            self.touched = False
            self._waiting = [sock for sock in self.by_fd.values() if int(_get(sock, _EVENTS)) & _POLLIN]
            if self._waiting:
                return 0
        return wait_ms

    def ready(self, events: dict[Any, int]) -> list[Any]:
        """The watched sockets to read after a poll that returned ``events`` (empty list: none)."""
        if not self.by_fd:
            return []
        ready = self._waiting
        for fd, sock in self.by_fd.items():
            if fd in events and sock not in ready:
                ready.append(sock)
        return ready
