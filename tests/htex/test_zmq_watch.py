"""ZmqWatch: ZeroMQ sockets waited on by a plain poll() (the interchange's loop)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from flowlib.executors.high_throughput.fd_poller import FdPoller
from flowlib.executors.high_throughput.zmq_frames import ZmqWatch, recv_frames, send_frames


@pytest.fixture
def pair() -> Iterator[tuple[Any, Any]]:
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    dealer = context.socket(zmq.DEALER)
    for sock in (router, dealer):
        sock.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer.setsockopt(zmq.IDENTITY, b"peer")
    dealer.connect(f"tcp://127.0.0.1:{port}")
    try:
        yield router, dealer
    finally:
        router.close()
        dealer.close()
        context.term()


def _wait_ready(watch: ZmqWatch, poller: FdPoller, timeout: float = 10.0) -> list[Any]:
    """Poll as the interchange does until a watched socket is ready to read."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = dict(poller.poll(watch.timeout(100)))
        ready = watch.ready(events)
        if ready and any(sock.get(zmq.EVENTS) & zmq.POLLIN for sock in ready):
            return ready
    raise AssertionError("no watched socket became readable")


def test_a_message_wakes_the_poll_and_a_drained_socket_lets_it_sleep(pair: tuple[Any, Any]) -> None:
    router, dealer = pair
    poller = FdPoller()
    watch = ZmqWatch(poller)
    watch.add(router)
    dealer.send(b"hello")
    assert _wait_ready(watch, poller) == [router]
    assert recv_frames(router) == [b"peer", b"hello"]
    assert not router.get(zmq.EVENTS) & zmq.POLLIN  # drained: reading EVENTS consumed the signal
    started = time.monotonic()
    events = dict(poller.poll(watch.timeout(50)))
    assert watch.ready(events) == [] or not router.get(zmq.EVENTS) & zmq.POLLIN
    assert time.monotonic() - started >= 0.04  # nothing waits, so the poll waited


def test_a_message_that_arrived_during_a_send_is_not_missed(pair: tuple[Any, Any]) -> None:
    """Sending may consume the descriptor's signal for a message that arrived meanwhile: ``touched`` covers it."""
    router, dealer = pair
    poller = FdPoller()
    watch = ZmqWatch(poller)
    watch.add(router)
    dealer.send(b"first")
    assert _wait_ready(watch, poller) == [router]
    recv_frames(router)
    dealer.send(b"second")
    deadline = time.monotonic() + 10
    while not router.poll(0):  # the message is at the router; zmq's poll consumed the descriptor's signal
        assert time.monotonic() < deadline
    send_frames(router, [b"peer", b"reply"])
    watch.touched = True
    assert watch.timeout(10_000) == 0  # no 10 s wait: a message is waiting
    assert watch.ready({}) == [router]
    assert recv_frames(router) == [b"peer", b"second"]
    assert dealer.recv() == b"reply"
    assert watch.timeout(10) == 10  # not touched since: the descriptor alone decides


def test_without_sockets_nothing_is_ever_ready() -> None:
    watch = ZmqWatch(FdPoller())
    watch.touched = True
    assert watch.timeout(25) == 25
    assert watch.ready({3: 1}) == []
