"""Multipart messages over an owner-only Unix stream socket: the links that stay on this machine.

The executor and its interchange always run on the same machine, and so do the
worker pools of a ``LocalProvider``. Between them a plain Unix socket replaces
ZeroMQ over TCP with CurveZMQ: the kernel carries the bytes (no other user can
read them), the socket file lives in an owner-only directory, and every peer's
user id is checked with ``SO_PEERCRED`` before a byte is read. What it saves,
per message and per direction: ZeroMQ's I/O-thread hand-offs and the
encryption, which dominate the round trip of a short task.

Wire format, native byte order (both ends are on one machine)::

    uint32 frame count | uint64 length of each frame | the frames, back to back

Sending never blocks: what the kernel does not take is kept, in order, and
written by :meth:`UnixLink.flush` when the socket is writable again
(:attr:`UnixLink.wants_write`). Receiving returns every complete message that
has arrived; frames are zero-copy views of the received data, and a message
larger than one read is received straight into a buffer of its own size.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import struct
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from flowlib.executors.high_throughput.protocol import ProtocolError

logger = logging.getLogger(__name__)

_COUNT = struct.Struct("=I")
_LENGTH_SIZE = 8
_READ_SIZE = 1 << 16
_MAX_BUFFERS_PER_SEND = 512  # below IOV_MAX (1024 on Linux)
_SOCKET_BUFFER = 4 << 20
_PREALLOCATE = 64 << 20  # a larger message's buffer grows as its bytes arrive
MAX_FRAMES = 1 << 20
"""Frames in one message at most; a count above it marks a corrupt stream."""
_PATH_LIMIT = 100  # sun_path holds 108 bytes on Linux, 104 on macOS


def _lengths(count: int) -> struct.Struct:
    return struct.Struct(f"={count}Q")


def _nbytes(frame: Any) -> int:
    if isinstance(frame, bytes):
        return len(frame)
    return frame.nbytes if isinstance(frame, memoryview) else memoryview(frame).nbytes


def peer_uid(sock: socket.socket) -> int:
    """The user id of the process at the other end of a connected Unix socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", raw)
    return uid


def make_socket_dir() -> str:
    """A new owner-only directory for socket files, with a path short enough for ``sun_path``."""
    base = tempfile.gettempdir()
    if len(base) > _PATH_LIMIT - 30:
        base = "/tmp"  # noqa: S108 - a long $TMPDIR would overflow sun_path; the directory is 0700
    return tempfile.mkdtemp(prefix="flowlib-", dir=base)  # mkdtemp makes it 0700


class UnixLink:
    """One end of a connected Unix stream socket, speaking framed multipart messages."""

    def __init__(self, sock: socket.socket, max_message_size: int = 1 << 30, name: str = "link") -> None:
        sock.setblocking(False)
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, _SOCKET_BUFFER)
            except OSError:  # the kernel caps it; what it gives is fine
                pass
        self.sock = sock
        self.fd = sock.fileno()
        self.name = name
        self.max_message_size = max_message_size
        self._out: deque[Any] = deque()
        self._pending = b""
        self._big: bytearray | None = None
        self._big_filled = 0
        self._big_total = 0
        self.received_bytes = 0
        self.closed = False

    # ------------------------------------------------------------------ send

    @property
    def wants_write(self) -> bool:
        """True while bytes wait for the socket to become writable (call :meth:`flush` then)."""
        return bool(self._out)

    def send(self, frames: Sequence[Any]) -> None:
        """Queue one multipart message and write as much of it as the kernel takes now."""
        if self.closed:
            raise EOFError(f"{self.name} is closed")
        count = len(frames)
        if not 0 < count <= MAX_FRAMES:
            raise ValueError(f"{self.name}: a message has 1 to {MAX_FRAMES} frames, not {count}")
        head = _COUNT.pack(count) + _lengths(count).pack(*[_nbytes(f) for f in frames])
        out = self._out
        if out:
            out.append(head)
            out.extend(frames)
            return
        buffers = [head, *frames]
        if len(buffers) > _MAX_BUFFERS_PER_SEND:
            out.extend(buffers)
            self.flush()
            return
        try:
            sent = self.sock.sendmsg(buffers)
        except BlockingIOError:
            sent = 0
        except (BrokenPipeError, ConnectionResetError) as e:
            self.closed = True
            raise EOFError(f"{self.name}: the peer has gone ({e})") from None
        self._keep_unsent(buffers, sent)

    def flush(self) -> None:
        """Write queued bytes until the kernel refuses more; EOFError if the peer has gone."""
        out = self._out
        while out:
            buffers = [out[i] for i in range(min(len(out), _MAX_BUFFERS_PER_SEND))]
            try:
                sent = self.sock.sendmsg(buffers)
            except BlockingIOError:
                return
            except (BrokenPipeError, ConnectionResetError) as e:
                self.closed = True
                out.clear()
                raise EOFError(f"{self.name}: the peer has gone ({e})") from None
            for _ in range(len(buffers)):
                size = _nbytes(out[0])
                if sent >= size:
                    sent -= size
                    out.popleft()
                    continue
                out[0] = memoryview(out[0]).cast("B")[sent:]
                return

    def _keep_unsent(self, buffers: list[Any], sent: int) -> None:
        for index, buffer in enumerate(buffers):
            size = _nbytes(buffer)
            if sent >= size:
                sent -= size
                continue
            self._out.append(memoryview(buffer).cast("B")[sent:] if sent else buffer)
            self._out.extend(buffers[index + 1 :])
            return

    # --------------------------------------------------------------- receive

    @property
    def poll_target(self) -> int:
        """What to register with a poller: the socket's descriptor."""
        return self.fd

    def receive(self, budget: int = 8 << 20) -> list[list[memoryview]]:
        """Every message completed by reading until the socket is empty or ``budget`` bytes came.

        EOFError when the peer has closed (after the messages before it were
        returned by earlier calls); ProtocolError when the stream cannot be a
        sequence of messages (framing is lost: close the link).
        """
        if self.closed:
            raise EOFError(f"{self.name}: the peer closed the connection")
        messages: list[list[memoryview]] = []
        read = 0
        while read < budget:
            before = self.received_bytes
            plain = self._big is None  # a read of at most _READ_SIZE bytes, not into a large message's buffer
            try:
                got = self._read_once()
            except EOFError:
                if messages:  # hand these over first; the next call raises
                    return messages
                raise
            got_bytes = self.received_bytes - before
            if not got_bytes:
                break
            read += got_bytes
            messages.extend(got)
            if plain and got_bytes < _READ_SIZE:
                break  # a short read emptied the socket: skip the read that would only say EAGAIN
        return messages

    def _read_once(self) -> list[list[memoryview]]:
        if self._big is not None:
            return self._receive_big()
        try:
            chunk = self.sock.recv(_READ_SIZE)
        except BlockingIOError:
            return []
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.closed = True
            raise EOFError(f"{self.name}: the peer closed the connection")
        self.received_bytes += len(chunk)
        data = self._pending + chunk if self._pending else chunk
        return self._parse(data)

    def _receive_big(self) -> list[list[memoryview]]:
        big = self._big
        assert big is not None
        try:
            got = self.sock.recv_into(memoryview(big)[self._big_filled :])
        except BlockingIOError:
            return []
        except ConnectionResetError:
            got = 0
        if not got:
            self.closed = True
            raise EOFError(f"{self.name}: the peer closed the connection in the middle of a message")
        self.received_bytes += got
        self._big_filled += got
        if self._big_filled < len(big):
            return []
        if len(big) < self._big_total:  # grown only as the bytes arrive, never to what a header claims
            big[len(big) :] = bytes(min(self._big_total - len(big), len(big)))
            return []
        self._big = None
        return self._parse(big)  # the buffer holds exactly one message

    def _parse(self, data: Any) -> list[list[memoryview]]:
        view = memoryview(data)
        size = len(view)
        messages: list[list[memoryview]] = []
        pos = 0
        while size - pos >= 4:
            (count,) = _COUNT.unpack_from(view, pos)
            if count == 0 or count > MAX_FRAMES:
                raise ProtocolError(f"{self.name}: a message of {count} frames (corrupt stream?)")
            head = 4 + _LENGTH_SIZE * count
            if size - pos < head:
                break
            lengths = _lengths(count).unpack_from(view, pos + 4)
            total = head + sum(lengths)
            if total > self.max_message_size:
                raise ProtocolError(f"{self.name}: a message of {total} bytes, more than {self.max_message_size}")
            if size - pos < total:
                if total > _READ_SIZE:  # receive the rest straight into a buffer of its own
                    big = bytearray(min(total, _PREALLOCATE))
                    self._big_total = total
                    have = size - pos
                    big[:have] = view[pos:]
                    self._big, self._big_filled = big, have
                    pos = size
                break
            start = pos + head
            frames = []
            for length in lengths:
                frames.append(view[start : start + length])
                start += length
            messages.append(frames)
            pos = start
        self._pending = bytes(view[pos:]) if pos < size else b""
        return messages

    # ----------------------------------------------------------------- close

    def close(self, linger: float = 0.0) -> None:
        """Close the socket; with ``linger`` > 0, first try that many seconds to write what is queued."""
        if linger > 0 and self._out and not self.closed:
            deadline = time.monotonic() + linger
            try:
                while self._out and time.monotonic() < deadline:
                    select.select([], [self.fd], [], max(0.0, deadline - time.monotonic()))
                    self.flush()
            except (EOFError, OSError):
                pass
        self.closed = True
        self._out.clear()
        try:
            self.sock.close()
        except OSError:
            pass


def connect(path: str, max_message_size: int = 1 << 30, name: str = "link") -> UnixLink:
    """Connect to the Unix socket at ``path``; OSError if nothing listens there."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return UnixLink(sock, max_message_size, name)


class UnixListener:
    """A listening Unix socket that accepts only peers running as this user."""

    def __init__(self, path: str, max_message_size: int = 1 << 30) -> None:
        self.path = path
        self.max_message_size = max_message_size
        self.refused = 0
        """Connections closed because their peer ran as another user."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            os.chmod(path, 0o600)
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()

    def accept(self, name: str = "link") -> list[UnixLink]:
        """Every connection waiting now, from this user's processes only."""
        links: list[UnixLink] = []
        me = os.getuid()
        while True:
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return links
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    logger.error("cannot accept a connection on %s: %s", self.path, e)
                    return links
                raise
            uid = peer_uid(conn)
            if uid != me:
                self.refused += 1
                logger.warning("refused a connection on %s from user id %d (only %d may connect)", self.path, uid, me)
                conn.close()
                continue
            links.append(UnixLink(conn, self.max_message_size, name))

    def close(self) -> None:
        """Stop listening and remove the socket file."""
        try:
            self.sock.close()
        finally:
            try:
                os.unlink(self.path)
            except OSError:
                pass


class ZmqLink:
    """A connected ZeroMQ DEALER socket behind the same interface as :class:`UnixLink`."""

    wants_write = False
    closed = False

    def __init__(self, sock: Any, copy: bool = True, max_messages: int = 1000) -> None:
        self.sock = sock
        self.poll_target = sock
        self.copy = copy
        self.max_messages = max_messages

    def send(self, frames: Sequence[Any]) -> None:
        """Send one multipart message (ZeroMQ queues it)."""
        from flowlib.executors.high_throughput.zmq_frames import send_frames

        send_frames(self.sock, frames, copy=False)

    def flush(self) -> None:
        """Nothing to do: ZeroMQ writes in its own thread."""

    def receive(self) -> list[list[Any]]:
        """The messages waiting now (at most ``max_messages``)."""
        import zmq

        from flowlib.executors.high_throughput.zmq_frames import NOBLOCK, recv_frames

        sock, copy = self.sock, self.copy
        messages: list[list[Any]] = []
        events, pollin = zmq.EVENTS, zmq.POLLIN
        while len(messages) < self.max_messages and sock.getsockopt(events) & pollin:
            messages.append(recv_frames(sock, NOBLOCK, copy))
        return messages

    def close(self, linger: float = 0.0) -> None:
        """Close the socket, waiting up to ``linger`` seconds for queued messages."""
        self.sock.close(linger=int(linger * 1000))
