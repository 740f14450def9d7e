"""The interchange's Unix-socket side: the executor's link and the links of this machine's pools.

The interchange owns one :class:`LocalLinks` when it runs with a socket
directory. It listens on ``client.sock`` (one executor) and ``pools.sock``
(worker pools of a ``LocalProvider``), reads what arrives, and hands each
message to the interchange through callbacks; it knows nothing of the
protocol. A pool on a Unix link gets a synthetic identity (``unix-<n>``) so the
interchange treats it like a pool on its ZeroMQ ROUTER socket.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from flowlib.executors.high_throughput.fd_poller import POLLIN, POLLOUT
from flowlib.executors.high_throughput.links import UnixLink, UnixListener
from flowlib.executors.high_throughput.protocol import ProtocolError

logger = logging.getLogger("flowlib.interchange")

_POLLIN, _POLLOUT = POLLIN, POLLOUT


class LocalLinks:
    """Listeners and connected links in one owner-only directory, watched by the interchange's poller.

    ``poller`` is a :class:`~.fd_poller.FdPoller` (or anything with its ``register``/``modify``/``unregister``).
    """

    def __init__(
        self,
        directory: str,
        max_message_size: int,
        poller: Any,
        on_client: Callable[[list[Any]], None],
        on_pool: Callable[[bytes, list[Any]], None],
        on_client_gone: Callable[[str], None],
        on_pool_gone: Callable[[bytes, str], None],
    ) -> None:
        self.directory = directory
        self.poller = poller
        self.on_client, self.on_pool = on_client, on_pool
        self.on_client_gone, self.on_pool_gone = on_client_gone, on_pool_gone
        self.client_listener = UnixListener(os.path.join(directory, "client.sock"), max_message_size)
        self.pool_listener = UnixListener(os.path.join(directory, "pools.sock"), max_message_size)
        for listener in (self.client_listener, self.pool_listener):
            poller.register(listener.fd, _POLLIN)
        self.client: UnixLink | None = None
        self.pools: dict[int, tuple[bytes, UnixLink]] = {}
        """Connected pools by descriptor: (identity, link)."""
        self.by_identity: dict[bytes, UnixLink] = {}
        self._accepted = 0
        self._writing: set[int] = set()
        """Descriptors the poller also watches for writability (their links hold unsent bytes)."""

    @property
    def paths(self) -> dict[str, str]:
        """Where the executor and local pools connect."""
        return {"client_socket": self.client_listener.path, "pool_socket": self.pool_listener.path}

    # ----------------------------------------------------------------- reading

    def serve(self, events: dict[Any, int]) -> None:
        """Accept new connections and pass every complete message read to the callbacks."""
        on_client, on_pool, on_pool_gone = self.on_client, self.on_pool, self.on_pool_gone
        if events.get(self.client_listener.fd):
            for link in self.client_listener.accept("client link"):
                if self.client is not None:
                    logger.warning("refused a second client connection on %s", self.client_listener.path)
                    link.close()
                    continue
                self.client = link
                self.poller.register(link.fd, _POLLIN)
        if events.get(self.pool_listener.fd):
            for link in self.pool_listener.accept("pool link"):
                self._accepted += 1
                identity = b"unix-%d" % self._accepted
                self.pools[link.fd] = (identity, link)
                self.by_identity[identity] = link
                self.poller.register(link.fd, _POLLIN)
        client = self.client
        if client is not None and events.get(client.fd, 0) & _POLLIN:
            try:
                for message in client.receive():
                    on_client(message)
            except (EOFError, ProtocolError) as e:
                self._forget(client)
                self.client = None
                self.on_client_gone(str(e))
        for fd, (identity, link) in list(self.pools.items()):
            if events.get(fd, 0) & _POLLIN:
                try:
                    for message in link.receive():
                        on_pool(identity, message)
                except (EOFError, ProtocolError) as e:
                    if self.close_pool(identity):
                        on_pool_gone(identity, f"its connection closed ({e})")

    # ----------------------------------------------------------------- writing

    def send_to_client(self, frames: list[Any]) -> bool:
        """Send to the executor; False when it is not connected here (use the ZeroMQ socket)."""
        return self._send(self.client, frames)

    def send_to_pool(self, identity: bytes, frames: list[Any]) -> bool:
        """Send to a pool; False when that pool is not on a Unix link."""
        return self._send(self.by_identity.get(identity), frames)

    def _send(self, link: UnixLink | None, frames: list[Any]) -> bool:
        if link is None:
            return False
        try:
            link.send(frames)
        except EOFError:
            pass  # noticed when the link is read
        return True

    def flush(self, events: dict[Any, int]) -> None:
        """Write what the links hold back; poll for writability only while a link holds something."""
        links = list(self.pools.values())
        if self.client is not None:
            links.append((b"", self.client))
        for identity, link in links:
            fd = link.fd
            if link.wants_write and events.get(fd, 0) & _POLLOUT:
                try:
                    link.flush()
                except EOFError as e:
                    if identity and self.close_pool(identity):
                        self.on_pool_gone(identity, f"its connection closed ({e})")
                    continue
            if link.wants_write != (fd in self._writing):
                self._writing.symmetric_difference_update((fd,))
                self.poller.modify(fd, _POLLIN | (_POLLOUT if link.wants_write else 0))

    # ----------------------------------------------------------------- closing

    def close_pool(self, identity: bytes) -> bool:
        """Close a pool's link (it was lost, or its connection closed); False if it has none."""
        link = self.by_identity.pop(identity, None)
        if link is None:
            return False
        self.pools.pop(link.fd, None)
        self._forget(link)
        return True

    def _forget(self, link: UnixLink) -> None:
        self._writing.discard(link.fd)
        self.poller.unregister(link.fd)
        link.close()

    def close(self, shutdown: list[Any]) -> None:
        """Tell every pool to shut down, deliver what is queued, and remove the sockets and the directory."""
        for _, link in list(self.pools.values()):
            try:
                link.send(shutdown)
            except EOFError:
                pass
            link.close(linger=0.5)
        if self.client is not None:
            self.client.close(linger=2.0)
        self.client_listener.close()
        self.pool_listener.close()
        try:  # the executor removes it too; this covers an executor killed outright
            os.rmdir(self.directory)
        except OSError:
            pass
