"""A ``zmq.Poller`` look-alike for plain file descriptors, on ``select.poll``.

The executor's I/O thread and a worker pool on the interchange's machine wait
only on descriptors (Unix sockets, pipes, process sentinels). ``zmq.Poller``
handles those too, but each wait costs two ``poll`` system calls (libzmq makes
a non-blocking pass first) and a trip through pyzmq; this one makes one call.

It takes and reports ZeroMQ's event bits (``zmq.POLLIN`` 1, ``zmq.POLLOUT`` 2,
``zmq.POLLERR`` 4) so that code written for ``zmq.Poller`` works unchanged, and
like libzmq it reports a hang-up or an error as ``POLLERR``.
"""

from __future__ import annotations

import select

POLLIN = 1
POLLOUT = 2
POLLERR = 4
"""ZeroMQ's values (``zmq.POLLIN``, ``zmq.POLLOUT``, ``zmq.POLLERR``), without importing pyzmq."""

_IN, _OUT = select.POLLIN, select.POLLOUT
_OTHER = ~(select.POLLIN | select.POLLOUT)


def _to_select(flags: int) -> int:
    return (_IN if flags & POLLIN else 0) | (_OUT if flags & POLLOUT else 0)


def _from_select(events: int) -> int:
    return (POLLIN if events & _IN else 0) | (POLLOUT if events & _OUT else 0) | (POLLERR if events & _OTHER else 0)


class FdPoller:
    """Watch descriptors (ints) with ``register``/``modify``/``unregister``/``poll`` as ``zmq.Poller`` does."""

    def __init__(self) -> None:
        self._poll = select.poll()

    def register(self, fd: int, flags: int = POLLIN | POLLOUT) -> None:
        """Watch ``fd`` for ``flags`` (ZeroMQ's bits); registering again changes the flags."""
        self._poll.register(fd, _to_select(flags))

    def modify(self, fd: int, flags: int) -> None:
        """Change the events watched on a registered ``fd``."""
        self._poll.modify(fd, _to_select(flags))

    def unregister(self, fd: int) -> None:
        """Stop watching ``fd`` (KeyError if it is not watched)."""
        self._poll.unregister(fd)

    def poll(self, timeout: float | None = None) -> list[tuple[int, int]]:
        """Wait up to ``timeout`` milliseconds (None: forever); the ready ``(fd, events)`` pairs."""
        ready = self._poll.poll(timeout)
        if not ready:
            return []
        return [(fd, _from_select(events)) for fd, events in ready]
