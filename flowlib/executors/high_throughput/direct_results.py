"""Results of this machine's pools go straight to the executor; the interchange keeps the accounting.

::

    executor (client.py)                 interchange                  worker pool (Unix link)
    I/O thread <--------------- RESULTS (results.sock) ------------------ ResultSender
    idle submit ------------------- TASKS (same link) ----------------------> (pool)
        |                                     ^                               |
        +-- SUBMIT, DIRECT --> client.sock    +------ RELEASED (ids) ---------+
                                              pools.sock

Over the interchange, a result costs two process hops back (pool to
interchange, interchange to executor), each a wake-up and a pass of a loop.
A pool that registered over the interchange's Unix socket learns from its
REGISTERED answer where the executor listens (``result_socket``), connects
there, and sends its RESULTS to the executor itself. Then it tells the
interchange, in a RELEASED message of task ids, which tasks are answered, so
that the interchange's table of what each pool holds stays exact (capacity,
drain, and the ManagerLost failures of a lost pool).

Order is what keeps fault tolerance: RELEASED for a task goes out only once
its result has entirely left the pool (the kernel holds it for the executor,
and a Unix socket's queued bytes survive the sender's death). So a pool that
dies in between makes the interchange fail a task that was already answered,
which the executor ignores, and never the other way round. If the result link
breaks, the results not yet released are sent again through the interchange
(duplicates are ignored too), and the pool goes on without the direct link.
Only pools on the interchange's machine (Unix links, owner-only directory,
peer user checked) take this path; pools on other nodes never do.

The same link carries an idle executor's task the other way: a small plain
task submitted while every earlier one has been answered (a latency probe,
the next link of a chain) goes to a pool straight from the executor, as
TASKS. The interchange is told first, in a DIRECT message naming the pool (the
pool's first message on the link says its id), and accounts the task as that
pool's, exactly as if it had dispatched it: a lost pool fails it as
ManagerLost, a cancel reaches it, a drain waits for it. Because the notice
leaves before the task, the interchange reads it before the task's RELEASED
can arrive, and a pool already gone makes it fail the task at once.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from typing import Any

from flowlib.executors.high_throughput import protocol as p
from flowlib.executors.high_throughput.fd_poller import POLLIN, POLLOUT
from flowlib.executors.high_throughput.links import UnixLink, UnixListener, connect
from flowlib.executors.high_throughput.protocol import ProtocolError

logger = logging.getLogger(__name__)

SOCKET_NAME = "results.sock"
"""The executor's listening socket, in the executor's owner-only socket directory."""
RELEASE_DELAY = 0.002
"""Seconds a pool may hold RELEASED back, when the interchange gave it slack (see :class:`ResultSender`)."""


class ResultListener:
    """The executor's end: accepts result links from local pools and reads what they send."""

    def __init__(self, directory: str, max_message_size: int = 1 << 30) -> None:
        self.listener = UnixListener(os.path.join(directory, SOCKET_NAME), max_message_size)
        self.path = self.listener.path
        self.links: dict[int, UnixLink] = {}
        """Connected pools' links by descriptor."""
        self.pool_ids: dict[int, str] = {}
        """The pool id each link's pool gave (its first message), by descriptor."""
        self._writing: set[int] = set()

    def register(self, poller: Any) -> None:
        """Watch the listening socket with ``poller`` (an :class:`~.fd_poller.FdPoller`)."""
        poller.register(self.listener.fd, POLLIN)

    def serve(self, events: dict[int, int], poller: Any) -> list[list[Any]]:
        """Accept new pools and return the RESULTS read from the links that ``events`` shows readable."""
        messages: list[list[Any]] = []
        if events.get(self.listener.fd):
            for link in self.listener.accept("result link"):
                self.links[link.fd] = link
                poller.register(link.fd, POLLIN)
        for fd, link in list(self.links.items()):
            ready = events.get(fd)
            if not ready:
                continue
            try:
                if ready & POLLOUT and link.wants_write:
                    link.flush()
                for frames in link.receive():
                    if fd not in self.pool_ids:  # the pool's first message says who it is
                        self.pool_ids[fd] = str(p.unpack_json(frames[1], dict)["pool_id"])
                    else:
                        messages.append(frames)
            except (EOFError, ProtocolError, IndexError, KeyError, TypeError) as e:
                if not isinstance(e, EOFError):
                    logger.warning("closed a pool's result link: %s", e)
                del self.links[fd]
                self.pool_ids.pop(fd, None)
                self._writing.discard(fd)
                poller.unregister(fd)
                link.close()
        return messages

    def pick(self) -> tuple[UnixLink, str] | None:
        """A link (and its pool id) to send an idle executor's task on, or None."""
        for fd, link in self.links.items():
            pool_id = self.pool_ids.get(fd)
            if pool_id is not None and not link.wants_write and not link.closed:
                return link, pool_id
        return None

    def watch_writes(self, poller: Any) -> None:
        """Poll for writability exactly the links that hold unsent bytes (call under the send lock)."""
        for fd, link in self.links.items():
            if link.wants_write != (fd in self._writing):
                self._writing.symmetric_difference_update((fd,))
                poller.modify(fd, POLLIN | (POLLOUT if link.wants_write else 0))

    def close(self) -> None:
        """Close every link and the listening socket (removing its file)."""
        for link in self.links.values():
            link.close()
        self.links.clear()
        self.listener.close()


class ResultSender:
    """A pool's end: RESULTS to the executor, then RELEASED to the interchange once they have left.

    RELEASED may wait a little (``delay`` seconds, while fewer than ``slack``
    tasks wait for it): the interchange is then woken once for several
    results, and not in the very moment the executor needs the CPU to take a
    result and submit the next task. ``slack`` comes from the interchange: the
    tasks it may still place on this pool beyond its workers (adaptive
    prefetch), so a pool held back this way never looks full to it. With
    ``slack`` 0 every RELEASED goes out at once.
    """

    def __init__(self, link: UnixLink, pool_id: str, slack: int = 0, delay: float = RELEASE_DELAY) -> None:
        self.link = link
        self.pool_id = pool_id
        self.slack = slack
        self.delay = delay
        self._unreleased: deque[p.ResultBatch] = deque()
        """Batches sent (or queued in the link) whose tasks the interchange has not been told about."""
        self._count = 0
        """Tasks in those batches."""
        self._since = 0.0
        """When the oldest of them was sent (monotonic seconds)."""
        self.sent = 0
        """Tasks answered through this link."""

    @property
    def fd(self) -> int:
        return self.link.fd

    @property
    def wants_write(self) -> bool:
        """True while result bytes wait for the socket to become writable."""
        return self.link.wants_write

    def send(self, batch: p.ResultBatch) -> None:
        """Send one batch to the executor (EOFError if the link is gone: call :meth:`broken`)."""
        batch.pools = [[self.pool_id, len(batch.ids)]]
        if not self._unreleased:
            self._since = time.monotonic()
        self._unreleased.append(batch)
        self._count += len(batch.ids)
        self.link.send(batch.encode())
        self.sent += len(batch.ids)

    def flush(self) -> None:
        """Write what the link holds back (EOFError if the link is gone)."""
        self.link.flush()

    def release(self, now: float, force: bool = False) -> list[Any] | None:
        """The RELEASED message for every batch that has left, if one is due (``force``: if any may go)."""
        if not self._unreleased or self.link.wants_write:
            return None
        if not force and self._count < self.slack and now - self._since < self.delay:
            return None
        ids: list[int] = []
        for batch in self._unreleased:
            ids.extend(batch.ids)
        self._unreleased.clear()
        self._count = 0
        return p.encode_ids(p.Kind.RELEASED, ids)

    def due_in(self, now: float) -> float | None:
        """Seconds until a held-back RELEASED is due (None: none is held back, or it waits for the socket)."""
        if not self._unreleased or self.link.wants_write:
            return None
        return max(0.0, self._since + self.delay - now)

    @property
    def holding(self) -> bool:
        """True while some tasks' results went out here and the interchange has not been told."""
        return bool(self._unreleased)

    def broken(self) -> list[p.ResultBatch]:
        """Close the link; return the batches to send again through the interchange."""
        self.link.close()
        batches = list(self._unreleased)
        self._unreleased.clear()
        self._count = 0
        for batch in batches:
            batch.pools = []  # the interchange adds the pool itself
        return batches

    def receive(self) -> list[list[Any]]:
        """What the executor sent: TASKS of an idle executor (EOFError once it has closed the link)."""
        return self.link.receive()


def connect_sender(path: str, pool_id: str, slack: int = 0) -> ResultSender | None:
    """Connect a pool to the executor's result socket; None (results go through the interchange) if it cannot."""
    try:
        link = connect(path, name="result link")
    except OSError as e:
        logger.warning("cannot connect to the executor's result socket %s (%s); results go through the interchange",
                       path, e)  # fmt: skip
        return None
    try:
        link.send(p.encode_json(p.Kind.EVENT, {"pool_id": pool_id}))  # who we are, for the executor's DIRECT
    except EOFError:
        link.close()
        return None
    return ResultSender(link, pool_id, slack)
