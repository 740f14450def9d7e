"""Results of this machine's pools straight to the executor, accounting at the interchange (direct_results.py)."""

from __future__ import annotations

import os
import signal
import socket
import stat
import time
from collections.abc import Iterator
from typing import Any

import pytest

from flowlib import python_app
from flowlib.executors.errors import BadStateException
from flowlib.executors.high_throughput import protocol as p
from flowlib.executors.high_throughput.direct_results import SOCKET_NAME, ResultListener, ResultSender, connect_sender
from flowlib.executors.high_throughput.errors import ManagerLost, WorkerLost
from flowlib.executors.high_throughput.fd_poller import FdPoller
from flowlib.executors.high_throughput.links import UnixLink
from flowlib.serialize.errors import DeserializationError

from .conftest import wait_for
from .test_local_links import LocalHtex, harness_in

# ----------------------------------------------------------------------------- units


def _serve_until(listener: ResultListener, poller: FdPoller, count: int, timeout: float = 10.0) -> list[list[Any]]:
    messages: list[list[Any]] = []
    deadline = time.monotonic() + timeout
    while len(messages) < count:
        assert time.monotonic() < deadline, f"{len(messages)} of {count} messages arrived"
        messages += listener.serve(dict(poller.poll(100)), poller)
    return messages


def test_a_pool_result_reaches_the_listener_and_is_released_once_it_has_left(sock_dir: str) -> None:
    listener = ResultListener(sock_dir)
    poller = FdPoller()
    listener.register(poller)
    try:
        assert os.path.basename(listener.path) == SOCKET_NAME
        assert stat.S_IMODE(os.stat(listener.path).st_mode) == 0o600
        sender = connect_sender(listener.path, "pool-7")
        assert sender is not None
        assert sender.release(time.monotonic()) is None  # nothing sent yet
        sender.send(p.ResultBatch([3, 4], b"\x00\x01", [b"three", b"four"], b""))
        released = sender.release(time.monotonic())
        assert released is not None and p.body_ids(released) == [3, 4]
        assert not sender.holding and sender.release(time.monotonic()) is None  # released once only
        (message,) = _serve_until(listener, poller, 1)
        batch = p.ResultBatch.decode(message)
        assert (batch.ids, batch.statuses, [bytes(x) for x in batch.payloads]) == (
            [3, 4],
            b"\x00\x01",
            [b"three", b"four"],
        )
        assert batch.pools == [["pool-7", 2]]  # what the interchange would have added
        sender.link.close()
        deadline = time.monotonic() + 10
        while listener.links:  # the closed link is dropped
            assert time.monotonic() < deadline
            assert listener.serve(dict(poller.poll(100)), poller) == []
    finally:
        listener.close()
    assert not os.path.exists(listener.path)


def test_results_still_queued_in_the_pool_are_not_released() -> None:
    """RELEASED waits until the result's bytes have left: the interchange must not forget a task still held here."""
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sender = ResultSender(UnixLink(ours), "pool")
    peer = UnixLink(theirs)
    try:
        big = os.urandom(16 << 20)  # more than both socket buffers hold
        sender.send(p.ResultBatch([1], b"\x00", [big], b""))
        assert sender.wants_write
        assert sender.release(time.monotonic()) is None and sender.holding
        received: list[list[Any]] = []
        deadline = time.monotonic() + 20
        while sender.wants_write or not received:
            assert time.monotonic() < deadline
            sender.flush()
            received += peer.receive()
        released = sender.release(time.monotonic())
        assert released is not None and p.body_ids(released) == [1]
        (message,) = received
        assert bytes(p.ResultBatch.decode(message).payloads[0]) == big
    finally:
        sender.link.close()
        peer.close()


def test_a_broken_link_hands_back_what_it_had_not_released() -> None:
    ours, theirs = socket.socketpair()
    sender = ResultSender(UnixLink(ours), "pool")
    sender.send(p.ResultBatch([1], b"\x00", [b"one"], b""))
    assert sender.release(time.monotonic()) is not None  # left: released
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sender.send(p.ResultBatch([2], b"\x00", [os.urandom(8 << 20)], b""))  # queued, not released
    theirs.close()
    with pytest.raises(EOFError):
        for _ in range(100):
            sender.flush()
            sender.receive()
            time.sleep(0.01)
    (again,) = sender.broken()
    assert again.ids == [2] and again.pools == []  # through the interchange, which adds the pool itself
    assert not sender.holding and sender.link.closed


def test_released_waits_within_the_interchanges_slack_and_no_longer() -> None:
    ours, theirs = socket.socketpair()
    sender = ResultSender(UnixLink(ours), "pool", slack=3, delay=0.05)
    try:
        sender.send(p.ResultBatch([1], b"\x00", [b"one"], b""))
        start = time.monotonic()
        assert sender.release(start) is None  # within the delay and the slack: held back
        due = sender.due_in(start)
        assert due is not None and 0 < due <= 0.05
        released = sender.release(start + 0.06)  # past the delay
        assert released is not None and p.body_ids(released) == [1]
        assert sender.due_in(start) is None
        sender.send(p.ResultBatch([2, 3], b"\x00\x00", [b"two", b"three"], b""))
        assert sender.release(time.monotonic()) is None
        sender.send(p.ResultBatch([4], b"\x00", [b"four"], b""))  # 3 waiting: the slack is used up
        released = sender.release(time.monotonic())
        assert released is not None and p.body_ids(released) == [2, 3, 4]
        sender.send(p.ResultBatch([5], b"\x00", [b"five"], b""))
        released = sender.release(time.monotonic(), force=True)  # draining, failures to send, a signal
        assert released is not None and p.body_ids(released) == [5]
    finally:
        sender.link.close()
        theirs.close()


def test_a_pool_that_cannot_connect_keeps_the_interchange_path(sock_dir: str) -> None:
    assert connect_sender(os.path.join(sock_dir, "nobody-listens.sock"), "pool") is None


# ----------------------------------------------------------------------------- with a real executor


@pytest.fixture
def local_htex(tmp_path: Any) -> Iterator[LocalHtex]:
    yield from harness_in(tmp_path)


@python_app
def square(x: int) -> int:
    return x * x


@python_app
def nap_then(x: int, seconds: float) -> int:
    import time

    time.sleep(seconds)
    return x + 1


@python_app
def die_now() -> None:
    import os

    os._exit(3)


@python_app
def returns_unreadable() -> Any:
    class Unreadable:
        def __reduce__(self) -> tuple[Any, ...]:
            return (int, ("not a number",))

    return Unreadable()


def _sizes(local_htex: LocalHtex) -> dict[str, int]:
    assert local_htex.executor is not None
    return dict(local_htex.executor._client.command("sizes"))


@pytest.mark.timeout(60)
def test_results_come_straight_from_the_pool_and_the_interchange_still_accounts(local_htex: LocalHtex) -> None:
    executor = local_htex.start()
    assert [f.result(timeout=30) for f in [square(i) for i in range(50)]] == [i * i for i in range(50)]
    results = executor._client._results
    assert results is not None and len(results.links) == 1  # the pool connected to results.sock
    assert os.path.dirname(results.path) == executor.unix_dir
    # every task was released at the interchange, though no result went through it
    wait_for(lambda: _sizes(local_htex)["held_by_pools"] == 0, 10, f"tasks still held: {_sizes(local_htex)}")
    assert executor._client._answered_tasks == executor._client._sent_tasks


@pytest.mark.timeout(60)
def test_a_worker_dying_mid_task_fails_it_and_the_direct_path_goes_on(local_htex: LocalHtex) -> None:
    local_htex.start(workers=1)
    assert square(3).result(timeout=30) == 9
    with pytest.raises(WorkerLost, match="died with exit code 3"):
        die_now().result(timeout=30)
    assert [square(i).result(timeout=30) for i in range(5)] == [0, 1, 4, 9, 16]
    wait_for(lambda: _sizes(local_htex)["held_by_pools"] == 0, 10, "the lost task is still held")


@pytest.mark.timeout(60)
def test_a_result_that_cannot_be_deserialized_fails_only_its_task(local_htex: LocalHtex) -> None:
    local_htex.start()
    future = returns_unreadable()
    with pytest.raises(DeserializationError, match=f"the task's result of task {future.tid}"):
        future.result(timeout=30)
    assert square(4).result(timeout=30) == 16


@pytest.mark.timeout(90)
def test_a_pool_killed_among_quick_results_leaves_no_task_unanswered(local_htex: LocalHtex) -> None:
    """SIGKILL while results stream out directly: each task gets its result or an error, none hangs."""
    local_htex.start(heartbeat_period=30, heartbeat_threshold=120)
    assert square(2).result(timeout=30) == 4
    (pool,) = local_htex.record()
    futures = [nap_then(i, 0.002) for i in range(400)]
    wait_for(lambda: sum(f.done() for f in futures) >= 20, 30, "no result arrived")
    os.kill(pool.pid, signal.SIGKILL)
    outcomes = {"ok": 0, "lost": 0}
    for index, future in enumerate(futures):
        try:
            assert future.result(timeout=30) == index + 1
            outcomes["ok"] += 1
        except (ManagerLost, BadStateException):  # the pool's tasks; then the executor has no block left
            outcomes["lost"] += 1
    assert outcomes["ok"] >= 20 and outcomes["lost"] >= 1, outcomes


@pytest.mark.timeout(90)
def test_shutdown_while_a_chain_runs_finishes_every_future(local_htex: LocalHtex) -> None:
    local_htex.start()
    links = [nap_then(0, 0.05)]
    for _ in range(199):
        links.append(nap_then(links[-1], 0.05))
    wait_for(lambda: links[5].done(), 30, "the chain did not start")
    assert local_htex.cleanup() < 30
    assert all(f.done() for f in links)
    assert links[5].result() == 6
    assert links[-1].exception() is not None  # not run: failed (cancelled by the shutdown), not left pending


@pytest.mark.timeout(60)
def test_a_pool_whose_result_link_closes_sends_its_results_through_the_interchange(local_htex: LocalHtex) -> None:
    executor = local_htex.start()
    assert square(5).result(timeout=30) == 25
    results = executor._client._results
    assert results is not None
    (link,) = results.links.values()
    link.sock.shutdown(socket.SHUT_RDWR)  # as if the executor had closed it: the pool sees EOF
    wait_for(lambda: not results.links, 10, "the executor kept the closed link")
    assert [f.result(timeout=30) for f in [square(i) for i in range(30)]] == [i * i for i in range(30)]
    assert not results.links  # the pool did not come back: its results now travel through the interchange
    wait_for(lambda: _sizes(local_htex)["held_by_pools"] == 0, 10, "tasks still held")
    logs = []
    for path in local_htex.manager_logs():
        with open(path) as f:
            logs.append(f.read())
    assert "the result link to the executor broke" in "".join(logs)


# ----------------------------------------------------------------------------- an idle executor's tasks


def _noop(x: Any = None) -> Any:
    return x


@pytest.mark.timeout(60)
def test_an_idle_executors_task_goes_straight_to_the_pool_and_is_accounted(local_htex: LocalHtex) -> None:
    executor = local_htex.start()
    assert square(1).result(timeout=30) == 1
    client = executor._client
    wait_for(lambda: client._results.pick() is not None, 10, "the pool never said who it is")
    before = client.pool_sends
    for i in range(20):
        assert executor.submit(_noop, {}, i).result(timeout=30) == i
    # each waited alone, so goes straight to the pool; one may still find the I/O thread finishing the
    # previous result (not yet idle) and take the interchange, which is also correct
    assert client.pool_sends - before >= 15, client.pool_sends - before
    with pytest.raises(TypeError, match="positional argument"):  # a failing task fails as usual on this path
        executor.submit(_noop, {}, 1, 2, 3).result(timeout=30)
    wait_for(lambda: _sizes(local_htex)["held_by_pools"] == 0, 10, f"tasks still held: {_sizes(local_htex)}")
    futures = [square(i) for i in range(50)]  # a burst: queued and batched through the interchange
    assert [f.result(timeout=30) for f in futures] == [i * i for i in range(50)]
    assert client.pool_sends - before < 30


@pytest.mark.timeout(60)
def test_a_pool_killed_while_it_runs_a_task_sent_to_it_directly_fails_the_task(local_htex: LocalHtex) -> None:
    executor = local_htex.start(workers=1, heartbeat_period=30, heartbeat_threshold=120)
    assert square(2).result(timeout=30) == 4
    client = executor._client
    wait_for(lambda: client._results.pick() is not None, 10, "the pool never said who it is")
    before = client.pool_sends
    future = nap_then(0, 60)
    assert client.pool_sends == before + 1  # went straight to the pool
    wait_for(lambda: _sizes(local_htex)["held_by_pools"] == 1, 10, "the interchange was not told")
    (pool,) = local_htex.record()
    os.kill(pool.pid, signal.SIGKILL)
    with pytest.raises(ManagerLost, match="was lost"):
        future.result(timeout=15)


@pytest.mark.timeout(60)
def test_a_direct_notice_for_a_pool_that_is_gone_fails_its_tasks(local_htex: LocalHtex) -> None:
    from flowlib.executors.high_throughput.executor import HTEXFuture

    executor = local_htex.start()
    assert square(3).result(timeout=30) == 9
    client = executor._client
    tid = 10**9
    future = HTEXFuture(executor, tid)
    executor._futures[tid] = future
    client._control.append(p.encode_direct([tid], "no-such-pool"))
    client._wake()
    with pytest.raises(ManagerLost, match="no-such-pool was lost before it could take the task"):
        future.result(timeout=15)
