"""The Unix-socket links (and the ZeroMQ link behind the same interface), over real sockets.

Every exchange is driven by ``select`` with a deadline: the sender flushes while
it wants to write and the socket is writable, the receiver reads while its
socket is readable. Nothing sleeps to synchronise.
"""

from __future__ import annotations

import os
import random
import select
import shutil
import socket
import stat
import struct
import tempfile
import threading
import time
from array import array
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import zmq

from flowlib.executors.high_throughput.links import (
    MAX_FRAMES,
    UnixLink,
    UnixListener,
    ZmqLink,
    connect,
    make_socket_dir,
    peer_uid,
)
from flowlib.executors.high_throughput.protocol import ProtocolError

pytestmark = pytest.mark.timeout(30)

READ_SIZE = 1 << 16  # what UnixLink reads at once; messages above it take the big-buffer path
NOBODY = 65534


# ----------------------------------------------------------------- helpers


def encode(frames: Sequence[bytes]) -> bytes:
    """The documented wire format, built independently of the module: count, lengths, frames."""
    return struct.pack("=I", len(frames)) + struct.pack(f"={len(frames)}Q", *map(len, frames)) + b"".join(frames)


def as_bytes(messages: list[list[Any]]) -> list[list[bytes]]:
    return [[bytes(frame) for frame in message] for message in messages]


def wait_readable(fd: Any, timeout: float = 10.0) -> None:
    readable, _, _ = select.select([fd], [], [], timeout)
    assert readable, f"nothing to read within {timeout} s"


def exchange(sender: UnixLink, receiver: UnixLink, count: int, timeout: float = 20.0) -> list[list[bytes]]:
    """Flush ``sender`` and read ``receiver`` until ``count`` messages came and nothing is queued."""
    got: list[list[bytes]] = []
    deadline = time.monotonic() + timeout
    while len(got) < count or sender.wants_write:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(
                f"{len(got)} of {count} messages within {timeout} s (wants_write={sender.wants_write})"
            )
        writers = [sender.fd] if sender.wants_write else []
        readable, writable, _ = select.select([receiver.fd], writers, [], remaining)
        if writable:
            sender.flush()
        if readable:
            got.extend(as_bytes(receiver.receive()))
    assert len(got) == count
    assert receiver.receive() == []  # nothing more than what was sent
    return got


def receive_until_eof(link: UnixLink, timeout: float = 10.0) -> list[list[bytes]]:
    """Every message before EOFError; fails if EOF does not come within ``timeout`` s."""
    got: list[list[bytes]] = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no EOF within {timeout} s"
        select.select([link.fd], [], [], remaining)
        try:
            got.extend(as_bytes(link.receive()))
        except EOFError:
            return got


def fill(link: UnixLink, size: int = 1 << 16) -> int:
    """Send numbered messages until the kernel refuses more; return how many were sent."""
    seq = 0
    while not link.wants_write:
        link.send([seq.to_bytes(8, "little"), b"f" * size])
        seq += 1
        assert seq < 100_000, "the socket never filled"
    return seq


def numbers(messages: list[list[bytes]]) -> list[int]:
    return [int.from_bytes(message[0], "little") for message in messages]


def zmq_receive(link: ZmqLink, count: int, timeout: float = 10.0) -> list[list[Any]]:
    got: list[list[Any]] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{len(got)} of {count} messages within {timeout} s"
        link.sock.poll(max(1, int(remaining * 1000)))
        got.extend(link.receive())
    assert len(got) == count
    return got


def receive_some(link: UnixLink) -> list[list[memoryview]]:
    """The first non-empty result of ``link.receive()``."""
    deadline = time.monotonic() + 5
    while True:
        assert time.monotonic() < deadline
        select.select([link.fd], [], [], 1)
        got = link.receive()
        if got:
            return got


def exchange_views(sender: UnixLink, receiver: UnixLink, count: int) -> list[list[memoryview]]:
    """Like :func:`exchange`, keeping the received frames as the link gave them."""
    got: list[list[memoryview]] = []
    deadline = time.monotonic() + 10
    while len(got) < count or sender.wants_write:
        assert time.monotonic() < deadline
        writers = [sender.fd] if sender.wants_write else []
        readable, writable, _ = select.select([receiver.fd], writers, [], 1)
        if writable:
            sender.flush()
        if readable:
            got.extend(receiver.receive())
    return got


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def pair() -> Iterator[tuple[UnixLink, UnixLink]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    left, right = UnixLink(a, name="left"), UnixLink(b, name="right")
    try:
        yield left, right
    finally:
        left.close()
        right.close()


@pytest.fixture
def raw_pair() -> Iterator[tuple[socket.socket, UnixLink]]:
    """A plain blocking socket writing to a UnixLink, for hand-made (or corrupt) streams."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    link = UnixLink(b, max_message_size=1000, name="reader")
    try:
        yield a, link
    finally:
        a.close()
        link.close()


@pytest.fixture
def listener(sock_dir: str) -> Iterator[UnixListener]:
    server = UnixListener(os.path.join(sock_dir, "test.sock"), max_message_size=12345)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def context() -> Iterator[zmq.Context[Any]]:
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        yield ctx
    finally:
        ctx.term()


@pytest.fixture
def dealers(context: zmq.Context[Any]) -> Iterator[tuple[ZmqLink, ZmqLink]]:
    a = context.socket(zmq.DEALER)
    b = context.socket(zmq.DEALER)
    for sock in (a, b):
        sock.setsockopt(zmq.LINGER, 0)
    port = a.bind_to_random_port("tcp://127.0.0.1")
    b.connect(f"tcp://127.0.0.1:{port}")
    left, right = ZmqLink(a), ZmqLink(b)
    try:
        yield left, right
    finally:
        left.close()
        right.close()


# ------------------------------------------------------- messages, framing


@pytest.mark.timeout(10)
def test_wire_format_is_count_then_lengths_then_frames() -> None:
    a, b = socket.socketpair()
    link = UnixLink(a)
    try:
        link.send([b"ab", b"", b"cde"])
        assert not link.wants_write
        link.flush()  # nothing queued: nothing to do
        expected = struct.pack("=I3Q", 3, 2, 0, 3) + b"abcde"
        assert expected == encode([b"ab", b"", b"cde"])
        b.settimeout(10)
        got = b""
        while len(got) < len(expected):
            got += b.recv(1024)
        assert got == expected
    finally:
        link.close()
        b.close()


@pytest.mark.timeout(10)
def test_round_trip_multipart_with_empty_frames(pair: tuple[UnixLink, UnixLink]) -> None:
    left, right = pair
    messages = [
        [b"one"],
        [b""],
        [b"", b""],
        [b"", b"middle", b""],
        [b"a", b"", b"b", b"", b"", b"c"],
        [b"x" * 1000, b"", b"y"],
    ]
    for message in messages:
        left.send(message)
    assert exchange(left, right, len(messages)) == messages
    for message in reversed(messages):  # and the other way
        right.send(message)
    assert exchange(right, left, len(messages)) == messages[::-1]


@pytest.mark.timeout(10)
def test_received_frames_are_memoryviews_and_bytes_are_counted(pair: tuple[UnixLink, UnixLink]) -> None:
    left, right = pair
    left.send([b"abc", b""])
    left.send([b"z" * 100])
    wait_readable(right.poll_target)
    assert right.poll_target == right.fd == right.sock.fileno()
    got: list[list[memoryview]] = []
    deadline = time.monotonic() + 10
    while len(got) < 2 and time.monotonic() < deadline:
        select.select([right.fd], [], [], 1)
        got.extend(right.receive())
    assert all(isinstance(frame, memoryview) for message in got for frame in message)
    assert as_bytes(got) == [[b"abc", b""], [b"z" * 100]]
    assert right.received_bytes == len(encode([b"abc", b""])) + len(encode([b"z" * 100]))


@pytest.mark.timeout(30)
def test_ten_thousand_small_messages_sent_before_any_read(pair: tuple[UnixLink, UnixLink]) -> None:
    left, right = pair
    sent = [[i.to_bytes(4, "little"), b"", b"p" * (i % 50)] for i in range(10_000)]
    for message in sent:  # no reads in between: what the kernel refuses is queued
        left.send(message)
    assert exchange(left, right, len(sent), timeout=25) == sent


@pytest.mark.timeout(30)
@pytest.mark.parametrize("size", [5 << 20, 20 << 20])
def test_big_frame_with_partial_writes(pair: tuple[UnixLink, UnixLink], size: int) -> None:
    left, right = pair
    payload = random.Random(size).randbytes(size)
    second = bytes(reversed(payload[: size // 2]))
    sent = [[b"head", b"", payload, b"tail"], [second], [b"small after"]]
    for message in sent:
        left.send(message)
    sndbuf = left.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    if size + size // 2 > sndbuf:
        assert left.wants_write  # the kernel took part of it; the rest waits for flush()
    got: list[list[Any]] = []
    deadline = time.monotonic() + 25
    while len(got) < len(sent) or left.wants_write:  # flush interleaved with reads
        assert time.monotonic() < deadline, f"{len(got)} messages, wants_write={left.wants_write}"
        writers = [left.fd] if left.wants_write else []
        readable, writable, _ = select.select([right.fd], writers, [], 1)
        if writable:
            left.flush()
        if readable:
            got.extend(right.receive())
    big = got[0][2]
    # received straight into a buffer of the message's own size, no copies on the way
    assert isinstance(big.obj, bytearray)
    assert len(big.obj) == len(encode([b"head", b"", payload, b"tail"]))
    assert as_bytes(got) == sent
    assert right.received_bytes == sum(len(encode(m)) for m in sent)


@pytest.mark.timeout(30)
def test_mixed_sizes_around_the_read_size_keep_framing(pair: tuple[UnixLink, UnixLink]) -> None:
    left, right = pair
    rng = random.Random(7)
    sizes = [0, 1, READ_SIZE - 13, READ_SIZE - 12, READ_SIZE - 11, READ_SIZE, READ_SIZE + 1, 3 * READ_SIZE]
    sizes += [rng.choice([rng.randrange(0, 100), rng.randrange(0, 4 * READ_SIZE)]) for _ in range(300)]
    sent = [[i.to_bytes(4, "little"), rng.randbytes(n)] for i, n in enumerate(sizes)]
    sent = [message[1:] if i % 3 == 0 else message for i, message in enumerate(sent)]
    for message in sent:
        left.send(message)
    assert exchange(left, right, len(sent), timeout=25) == sent


@pytest.mark.timeout(30)
def test_stream_arriving_in_arbitrary_pieces(raw_pair: tuple[socket.socket, UnixLink]) -> None:
    writer, reader = raw_pair
    reader.max_message_size = 1 << 20
    rng = random.Random(3)
    sent = [[rng.randbytes(rng.choice([0, 5, 200, 70_000, 150_000])) for _ in range(rng.randrange(1, 6))]]
    sent += [[rng.randbytes(rng.randrange(0, 3000)) for _ in range(rng.randrange(1, 40))] for _ in range(200)]
    sent += [[b"", b"\x00" * 200_000, b""], [b"last"]]
    stream = b"".join(encode(message) for message in sent)
    got: list[list[bytes]] = []
    pos = 0
    while pos < len(stream):
        piece = stream[pos : pos + rng.choice([1, 2, 3, 7, 11, 500, 30_000, 70_000])]
        writer.sendall(piece)
        pos += len(piece)
        wait_readable(reader.fd)
        got.extend(as_bytes(reader.receive()))
    assert got == sent
    assert reader.received_bytes == len(stream)


@pytest.mark.timeout(10)
def test_message_written_one_byte_at_a_time(raw_pair: tuple[socket.socket, UnixLink]) -> None:
    writer, reader = raw_pair
    message = [b"first", b"", b"third frame"]
    stream = encode(message)
    for index in range(len(stream)):
        writer.sendall(stream[index : index + 1])
        wait_readable(reader.fd)
        got = as_bytes(reader.receive())
        assert got == ([message] if index == len(stream) - 1 else [])


@pytest.mark.timeout(30)
def test_order_preserved_when_the_kernel_buffer_is_full(pair: tuple[UnixLink, UnixLink]) -> None:
    left, right = pair
    kinds: list[Any] = [bytes, bytearray, lambda data: memoryview(array("Q", data))]  # partial writes of each

    def payload(seq: int) -> bytes:
        return b"01234567" * (8192 if seq < filled else seq % 7000)

    filled = 1 << 62  # known once the socket is full
    seq = 0
    while not left.wants_write:
        left.send([seq.to_bytes(8, "little"), kinds[seq % 3](payload(seq))])
        seq += 1
        assert seq < 10_000, "the socket never filled"
    filled = seq
    for _ in range(300):  # queued behind the unsent part, in order
        left.send([seq.to_bytes(8, "little"), kinds[seq % 3](payload(seq))])
        seq += 1
    left.flush()  # the reader has not read: flush returns without blocking, keeping the rest
    assert left.wants_write
    got = exchange(left, right, seq, timeout=25)
    assert numbers(got) == list(range(seq))
    assert [message[1] for message in got] == [payload(n) for n in range(seq)]
    assert not left.wants_write


@pytest.mark.timeout(10)
def test_frame_types_arrive_identical(pair: tuple[UnixLink, UnixLink]) -> None:
    left, right = pair
    data = bytes(range(256)) * 4
    base = bytearray(data)
    frames: list[Any] = [
        data,
        bytearray(data),
        memoryview(data),
        memoryview(base)[10:500],  # a view with an offset into a larger buffer
        memoryview(array("d", [1.5, -2.25, 3e10])),  # items wider than a byte: nbytes, not len
        memoryview(array("Q", range(1000))).cast("B"),
        b"",
        bytearray(),
        memoryview(b""),
        zmq.Frame(data),
    ]
    expected = [bytes(memoryview(f).cast("B")) if isinstance(f, memoryview) else bytes(f) for f in frames]
    left.send(frames)  # all in one message
    for frame in frames:  # and each alone
        left.send([frame])
    got = exchange(left, right, 1 + len(frames))
    assert got[0] == expected
    assert got[1:] == [[e] for e in expected]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("count", [511, 512, 513, 2000, 5000])
def test_messages_of_many_frames_arrive_whole(pair: tuple[UnixLink, UnixLink], count: int) -> None:
    left, right = pair
    message = [i.to_bytes(4, "little") * (i % 5) for i in range(count)]  # every fifth frame is empty
    left.send([b"before"])
    left.send(message)
    left.send([b"after"])
    assert not left.wants_write  # written at once, in batches of buffers the kernel accepts
    assert exchange(left, right, 3) == [[b"before"], message, [b"after"]]


@pytest.mark.timeout(30)
def test_many_frames_queued_behind_a_full_buffer(pair: tuple[UnixLink, UnixLink]) -> None:
    left, right = pair
    filled = fill(left)
    message = [bytes([i % 256]) * (i % 300) for i in range(2000)]
    left.send(message)  # goes to the queue: the socket is full
    left.send([b"after"])
    got = exchange(left, right, filled + 2, timeout=25)
    assert numbers(got[:filled]) == list(range(filled))
    assert got[filled:] == [message, [b"after"]]


@pytest.mark.timeout(10)
def test_receive_budget_limits_one_call(pair: tuple[UnixLink, UnixLink]) -> None:
    left, right = pair
    sent = [[i.to_bytes(4, "little"), b"b" * 1024] for i in range(300)]  # about 5 reads' worth
    for message in sent:
        left.send(message)
    assert not left.wants_write
    wait_readable(right.fd)
    first = as_bytes(right.receive(budget=1))  # one read at most
    assert 0 < len(first) < len(sent)
    assert right.received_bytes <= READ_SIZE
    rest = exchange(left, right, len(sent) - len(first))
    assert first + rest == sent


# ---------------------------------------------------------------------- EOF


@pytest.mark.timeout(10)
def test_messages_before_eof_come_first(pair: tuple[UnixLink, UnixLink]) -> None:
    left, right = pair
    sent = [[b"one"], [b"", b"two"], [b"three", b""]]
    for message in sent:
        left.send(message)
    left.close()
    wait_readable(right.fd)
    assert as_bytes(right.receive()) == sent  # the messages are handed over first
    # A short read ends a call (the socket was empty), so EOF is met by the next one, which the
    # poller calls at once: the socket stays readable at EOF.
    wait_readable(right.fd)
    with pytest.raises(EOFError):
        right.receive()
    assert right.closed
    with pytest.raises(EOFError):  # and it stays at EOF
        right.receive()


@pytest.mark.timeout(20)
def test_many_messages_before_eof(pair: tuple[UnixLink, UnixLink]) -> None:
    left, right = pair
    sent = [[i.to_bytes(4, "little"), b"m" * 5000] for i in range(3000)]  # more than the kernel holds
    for message in sent:
        left.send(message)
    assert left.wants_write
    got: list[list[bytes]] = []
    deadline = time.monotonic() + 15
    while left.wants_write:  # read some while the rest is written
        assert time.monotonic() < deadline
        readable, writable, _ = select.select([right.fd], [left.fd], [], 1)
        if writable:
            left.flush()
        if readable:
            got.extend(as_bytes(right.receive()))
    left.close()  # all of it is in the kernel or read
    got.extend(receive_until_eof(right))
    assert got == sent
    with pytest.raises(EOFError):
        right.receive()


@pytest.mark.timeout(10)
def test_eof_after_a_reset_delivers_the_messages_first(pair: tuple[UnixLink, UnixLink]) -> None:
    left, right = pair
    right.send([b"never read by left"])  # closing with unread input makes the peer see a reset
    for i in range(5):
        left.send([bytes([i])])
    left.close()
    wait_readable(right.fd)
    assert as_bytes(right.receive()) == [[bytes([i])] for i in range(5)]
    with pytest.raises(EOFError):
        right.receive()


@pytest.mark.timeout(10)
@pytest.mark.parametrize("unread", [False, True])
def test_send_after_the_peer_closed_raises_eof(pair: tuple[UnixLink, UnixLink], unread: bool) -> None:
    left, right = pair
    if unread:
        right.send([b"left never reads this"])
    left.close()
    with pytest.raises(EOFError):
        right.send([b"to nobody"])  # a Unix socket knows at once that its peer has gone
    assert right.closed
    with pytest.raises(EOFError):
        right.send([b"again"])


@pytest.mark.timeout(10)
def test_flush_after_the_peer_closed_raises_eof(pair: tuple[UnixLink, UnixLink]) -> None:
    left, right = pair
    fill(right)
    right.send([b"queued"])  # only queued: no error yet
    assert right.wants_write
    left.close()
    with pytest.raises(EOFError):
        right.flush()
    assert right.closed
    assert not right.wants_write  # the queue is dropped
    with pytest.raises(EOFError):
        right.send([b"more"])


@pytest.mark.timeout(10)
@pytest.mark.parametrize("cut", ["in the count", "in the lengths", "in a small frame", "in a big frame"])
def test_eof_in_the_middle_of_a_message(raw_pair: tuple[socket.socket, UnixLink], cut: str) -> None:
    writer, reader = raw_pair
    reader.max_message_size = 1 << 22
    complete = encode([b"whole"])
    if cut == "in a big frame":
        partial = encode([b"x" * (1 << 21)])[: 1 << 20]
        writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    else:
        partial = encode([b"abc", b"defgh"])[: {"in the count": 2, "in the lengths": 9, "in a small frame": 22}[cut]]
    writer.setblocking(False)
    sent = writer.send(complete + partial)
    assert sent == len(complete + partial)
    writer.close()
    assert receive_until_eof(reader) == [[b"whole"]]  # the partial message is not handed over
    with pytest.raises(EOFError):
        reader.receive()


@pytest.mark.timeout(10)
def test_closed_link_refuses_send_and_receive(pair: tuple[UnixLink, UnixLink]) -> None:
    left, right = pair
    left.close()
    left.close()  # twice is harmless
    assert left.closed
    with pytest.raises(EOFError):
        left.send([b"x"])
    with pytest.raises(EOFError):
        left.receive()
    assert receive_until_eof(right) == []
    with pytest.raises(EOFError):
        right.receive()


# ------------------------------------------------------------ corrupt input


@pytest.mark.timeout(10)
@pytest.mark.parametrize("count", [0, MAX_FRAMES + 1, 0xFFFFFFFF])
def test_impossible_frame_count_is_a_protocol_error(raw_pair: tuple[socket.socket, UnixLink], count: int) -> None:
    writer, reader = raw_pair
    writer.sendall(struct.pack("=I", count))  # checked as soon as the count is in
    wait_readable(reader.fd)
    with pytest.raises(ProtocolError):
        reader.receive()


@pytest.mark.timeout(10)
def test_garbage_after_a_good_message_is_a_protocol_error(raw_pair: tuple[socket.socket, UnixLink]) -> None:
    writer, reader = raw_pair
    writer.sendall(encode([b"fine"]) + struct.pack("=I", 0))  # a good message, then garbage
    wait_readable(reader.fd)
    with pytest.raises(ProtocolError):
        reader.receive()


@pytest.mark.timeout(10)
def test_the_largest_frame_count_is_accepted(raw_pair: tuple[socket.socket, UnixLink]) -> None:
    writer, reader = raw_pair
    reader.max_message_size = 1 << 30
    writer.sendall(struct.pack("=I", MAX_FRAMES) + b"\x00" * 100)  # lengths still to come
    wait_readable(reader.fd)
    assert reader.receive() == []


@pytest.mark.timeout(10)
def test_message_above_max_size_is_a_protocol_error(raw_pair: tuple[socket.socket, UnixLink]) -> None:
    writer, reader = raw_pair  # max_message_size=1000
    writer.sendall(struct.pack("=IQ", 1, 1000 - 12 + 1))  # the header alone says too much
    wait_readable(reader.fd)
    with pytest.raises(ProtocolError):
        reader.receive()


@pytest.mark.timeout(10)
def test_message_of_exactly_max_size_is_accepted(raw_pair: tuple[socket.socket, UnixLink]) -> None:
    writer, reader = raw_pair  # max_message_size=1000, counting count and lengths
    message = [b"a" * 500, b"b" * (1000 - 4 - 16 - 500)]
    assert len(encode(message)) == 1000
    writer.sendall(encode(message))
    wait_readable(reader.fd)
    assert as_bytes(reader.receive()) == [message]


@pytest.mark.timeout(10)
def test_lengths_summing_above_max_size_are_a_protocol_error(raw_pair: tuple[socket.socket, UnixLink]) -> None:
    writer, reader = raw_pair
    writer.sendall(struct.pack("=I3Q", 3, 400, 400, 400))  # each is fine, the total is not
    wait_readable(reader.fd)
    with pytest.raises(ProtocolError):
        reader.receive()


@pytest.mark.timeout(10)
def test_huge_length_is_a_protocol_error_not_an_allocation() -> None:
    a, b = socket.socketpair()
    reader = UnixLink(b)  # the default limit, 1 GiB
    try:
        a.sendall(struct.pack("=IQ", 1, 1 << 62))
        wait_readable(reader.fd)
        with pytest.raises(ProtocolError):
            reader.receive()
    finally:
        a.close()
        reader.close()


@pytest.mark.timeout(10)
def test_an_empty_message_is_refused_and_does_not_corrupt_the_stream(pair: tuple[UnixLink, UnixLink]) -> None:
    left, right = pair
    with pytest.raises(ValueError, match="not 0"):
        left.send([])
    left.send([b"after"])
    assert exchange(left, right, 1)[-1] == [b"after"]


@pytest.mark.timeout(10)
def test_a_buffer_of_wide_items_does_not_corrupt_the_stream(pair: tuple[UnixLink, UnixLink]) -> None:
    left, right = pair
    numbers_frame = array("I", [1, 2, 3])  # len() is 3, the buffer holds 12 bytes
    left.send([numbers_frame])
    left.send([b"after"])
    assert exchange(left, right, 2) == [[numbers_frame.tobytes()], [b"after"]]


# ---------------------------------------------------- listener, directories


@pytest.mark.timeout(10)
def test_socket_dir_is_owner_only_and_short(sock_dir: str) -> None:
    info = os.stat(sock_dir)
    assert stat.S_ISDIR(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o700
    assert info.st_uid == os.getuid()
    assert len(sock_dir) < 100 - len("/client.sock")
    assert os.path.basename(sock_dir).startswith("flowlib-")


@pytest.mark.timeout(10)
def test_socket_dir_with_a_long_tmpdir(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    long_dir = tmp_path / ("t" * 100)
    long_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(long_dir))
    assert len(tempfile.gettempdir()) > 100
    path = make_socket_dir()
    try:
        assert len(path) < 100
        assert not path.startswith(str(long_dir))
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
        server = UnixListener(os.path.join(path, "interchange-client.sock"))  # and a socket in it can be bound
        server.close()
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("length", [40, 70, 71])
def test_socket_dir_uses_tmpdir_while_short_enough(monkeypatch: pytest.MonkeyPatch, length: int) -> None:
    base = tempfile.mkdtemp(dir="/tmp", prefix="fl-")
    padded = base + "/" + "p" * (length - len(base) - 1)
    os.mkdir(padded)
    assert len(padded) == length
    monkeypatch.setattr(tempfile, "tempdir", padded)
    path = make_socket_dir()
    try:
        assert (os.path.dirname(path) == padded) == (length <= 70)
        sock_path = os.path.join(path, "client.sock")
        assert len(sock_path) < 100
        server = UnixListener(sock_path)
        server.close()
    finally:
        shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.timeout(10)
def test_listener_socket_is_owner_only_and_close_removes_it(sock_dir: str) -> None:
    path = os.path.join(sock_dir, "s.sock")
    server = UnixListener(path)
    try:
        info = os.stat(path)
        assert stat.S_ISSOCK(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o600
        assert server.refused == 0
    finally:
        server.close()
    assert not os.path.exists(path)
    with pytest.raises(OSError):
        connect(path)
    server.close()  # twice is harmless


@pytest.mark.timeout(10)
def test_listener_accepts_a_same_user_peer(listener: UnixListener) -> None:
    assert listener.accept() == []  # nothing waits
    client = connect(listener.path, max_message_size=999, name="client")
    try:
        assert client.max_message_size == 999
        assert client.name == "client"
        wait_readable(listener.fd)
        links = listener.accept("server side")
        assert len(links) == 1
        server = links[0]
        try:
            assert isinstance(server, UnixLink)
            assert server.name == "server side"
            assert server.max_message_size == 12345
            assert listener.refused == 0
            assert peer_uid(server.sock) == os.getuid()
            assert peer_uid(client.sock) == os.getuid()
            client.send([b"hello", b""])
            assert exchange(client, server, 1) == [[b"hello", b""]]
            server.send([b"", b"hi"])
            assert exchange(server, client, 1) == [[b"", b"hi"]]
            assert listener.accept() == []
        finally:
            server.close()
    finally:
        client.close()


@pytest.mark.timeout(10)
def test_listener_accepts_every_waiting_connection(listener: UnixListener) -> None:
    clients = [connect(listener.path, name=f"client {i}") for i in range(5)]
    servers: list[UnixLink] = []
    try:
        deadline = time.monotonic() + 5
        while len(servers) < len(clients):
            assert time.monotonic() < deadline, f"accepted {len(servers)} of {len(clients)}"
            select.select([listener.fd], [], [], 1)
            servers.extend(listener.accept())
        for i, client in enumerate(clients):
            client.send([str(i).encode()])
        got = sorted(bytes(m[0]) for s in servers for m in receive_some(s))
        assert got == [str(i).encode() for i in range(5)]
    finally:
        for link in clients + servers:
            link.close()


@pytest.mark.timeout(10)
def test_listener_on_a_taken_path_raises(listener: UnixListener) -> None:
    with pytest.raises(OSError):
        UnixListener(listener.path)
    assert os.path.exists(listener.path)  # the first listener's file is untouched
    client = connect(listener.path)
    try:
        wait_readable(listener.fd)
        links = listener.accept()
        assert len(links) == 1
        links[0].close()
    finally:
        client.close()


@pytest.mark.timeout(10)
def test_connect_where_nothing_listens_raises(sock_dir: str) -> None:
    with pytest.raises(OSError):
        connect(os.path.join(sock_dir, "missing.sock"))
    plain = os.path.join(sock_dir, "not-a-socket")
    with open(plain, "w"):
        pass
    with pytest.raises(OSError):
        connect(plain)


@pytest.mark.timeout(10)
def test_peer_uid_of_a_socketpair() -> None:
    a, b = socket.socketpair()
    try:
        assert peer_uid(a) == os.getuid()
        assert peer_uid(b) == os.getuid()
    finally:
        a.close()
        b.close()


@pytest.mark.timeout(20)
@pytest.mark.skipif(os.getuid() != 0, reason="needs root to connect as another user")
def test_listener_refuses_another_user() -> None:
    shared = tempfile.mkdtemp(dir="/tmp", prefix="flowlib-shared-")
    os.chmod(shared, 0o755)  # so that nobody can reach the socket; make_socket_dir() would not allow it
    path = os.path.join(shared, "s.sock")
    server = UnixListener(path)
    os.chmod(path, 0o666)
    pid = 0
    try:
        pid = os.fork()
        if pid == 0:  # the child: connect as nobody, wait for the listener to close the connection
            code = 1
            try:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
                client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                client.settimeout(10)
                client.connect(path)
                code = 0 if client.recv(1) == b"" else 2
            except BaseException:
                code = 3
            finally:
                os._exit(code)
        deadline = time.monotonic() + 10
        accepted: list[UnixLink] = []
        while server.refused == 0:
            assert time.monotonic() < deadline, "the other user's connection never came"
            select.select([server.fd], [], [], 1)
            accepted.extend(server.accept())
        assert accepted == []
        assert server.refused == 1
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.waitstatus_to_exitcode(status) == 0  # the child saw its connection closed
        client = connect(path)  # this user is still welcome
        try:
            wait_readable(server.fd)
            links = server.accept()
            assert len(links) == 1
            links[0].close()
            assert server.refused == 1
        finally:
            client.close()
    finally:
        if pid:
            try:
                os.kill(pid, 9)
            finally:
                os.waitpid(pid, 0)
        server.close()
        shutil.rmtree(shared, ignore_errors=True)


# -------------------------------------------------------------------- close


@pytest.mark.timeout(30)
def test_close_with_linger_delivers_queued_output() -> None:
    a, b = socket.socketpair()
    writer, reader = UnixLink(a, name="writer"), UnixLink(b, name="reader")
    received: list[int] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for message in receive_until_eof(reader, timeout=20):
                received.append(int.from_bytes(message[0], "little"))
                assert message[1] in (b"f" * (1 << 16), b"q" * (1 << 16))
        except BaseException as e:
            errors.append(e)

    try:
        count = fill(writer)
        for _ in range(100):
            writer.send([count.to_bytes(8, "little"), b"q" * (1 << 16)])
            count += 1
        assert writer.wants_write
        thread = threading.Thread(target=read, name="test-links-reader")
        thread.start()
        writer.close(linger=20)  # returns once all is written
        assert writer.closed
        assert not writer.wants_write
        thread.join(25)
        assert not thread.is_alive()
        assert errors == []
        assert received == list(range(count))
    finally:
        writer.close()
        reader.close()


@pytest.mark.timeout(10)
def test_close_without_linger_drops_queued_output(pair: tuple[UnixLink, UnixLink]) -> None:
    left, right = pair
    count = fill(left)
    left.send([count.to_bytes(8, "little"), b"dropped"])
    left.close()
    assert left.closed
    assert not left.wants_write
    got = receive_until_eof(right)
    assert numbers(got) == list(range(len(got)))  # what the kernel had, in order
    assert len(got) < count  # the last of fill()'s messages was only partly written


@pytest.mark.timeout(10)
def test_close_with_linger_returns_when_the_peer_has_gone(pair: tuple[UnixLink, UnixLink]) -> None:
    left, right = pair
    fill(left)
    right.close()
    started = time.monotonic()
    left.close(linger=5)  # the flush meets EOF: no error, no waiting out the linger
    assert time.monotonic() - started < 4
    assert left.closed


# -------------------------------------------------------------------- zmq


@pytest.mark.timeout(10)
def test_zmq_link_round_trip(dealers: tuple[ZmqLink, ZmqLink]) -> None:
    left, right = dealers
    assert right.receive() == []  # nothing waits
    assert left.wants_write is False
    assert left.closed is False
    assert left.poll_target is left.sock
    sent = [[b"one"], [b"", b"two", b""], [b"x" * 100_000, memoryview(b"view"), bytearray(b"ba")]]
    for message in sent:
        left.send(message)
        left.flush()  # a no-op
    assert zmq_receive(right, 3) == as_bytes(sent)
    right.send([b"back", b""])
    assert zmq_receive(left, 1) == [[b"back", b""]]
    assert right.receive() == []
    assert left.receive() == []


@pytest.mark.timeout(10)
def test_zmq_link_without_copy_gives_frames(context: zmq.Context[Any]) -> None:
    a, b = context.socket(zmq.DEALER), context.socket(zmq.DEALER)
    a.bind("inproc://links-nocopy")
    b.connect("inproc://links-nocopy")
    left, right = ZmqLink(a), ZmqLink(b, copy=False)
    try:
        left.send([b"a", b"", b"c"])
        got = zmq_receive(right, 1)
        assert all(isinstance(frame, zmq.Frame) for frame in got[0])
        assert as_bytes(got) == [[b"a", b"", b"c"]]
    finally:
        left.close()
        right.close()


@pytest.mark.timeout(10)
def test_zmq_link_receives_at_most_max_messages(context: zmq.Context[Any]) -> None:
    a, b = context.socket(zmq.DEALER), context.socket(zmq.DEALER)
    a.bind("inproc://links-max")
    b.connect("inproc://links-max")
    left, right = ZmqLink(a), ZmqLink(b, max_messages=2)
    try:
        for i in range(5):
            left.send([bytes([i])])  # inproc: all five wait at the other end once sent
        got: list[list[bytes]] = []
        batches: list[int] = []
        deadline = time.monotonic() + 5
        while len(got) < 5:
            assert time.monotonic() < deadline
            right.sock.poll(1000)
            batch = right.receive()
            batches.append(len(batch))
            got.extend(batch)
        assert got == [[bytes([i])] for i in range(5)]
        assert [n for n in batches if n] == [2, 2, 1]
    finally:
        left.close(linger=0.5)
        right.close()
    assert left.sock.closed and right.sock.closed


@pytest.mark.timeout(20)
def test_forwarding_between_unix_and_zmq_links(
    pair: tuple[UnixLink, UnixLink], dealers: tuple[ZmqLink, ZmqLink]
) -> None:
    unix_left, unix_right = pair
    zmq_left, zmq_right = dealers
    sent = [[b"task", b"", os.urandom(300_000)], [b"small", b"x"]]
    for message in sent:
        unix_left.send(message)
    for message in exchange_views(unix_left, unix_right, len(sent)):
        zmq_left.send(message)  # received memoryviews go on without a copy
    zmq_right_nocopy = ZmqLink(zmq_right.sock, copy=False)
    frames = zmq_receive(zmq_right_nocopy, len(sent))
    for message in frames:
        unix_right.send(message)  # zmq.Frame objects back onto a Unix link
    assert exchange(unix_right, unix_left, len(sent)) == sent
