"""Large payloads through the sockets: the client's in-flight window, byte-capped prefetch, dispatch.

(With the shared-memory arena, the default for local pools, they travel another way: test_arena.py.)

* the client sends at most ``MAX_INFLIGHT_BYTES`` (plus one payload) of large
  payloads (``>= LARGE_PAYLOAD``) that are not answered yet; the rest waits in its
  outbox, where ``cancel()`` drops a task before it is ever sent;
* the interchange stops adaptive prefetch to a pool that holds ``PREFETCH_BYTES``
  of payloads (``ManagerRecord.held_bytes``), and splits what it gives a pool into
  messages of about ``DISPATCH_BYTES`` (``split_by_size``).

The executor tests run a real interchange and one LocalProvider pool of two
workers; tasks that must stay queued are held back by a gate file the test
writes. Every wait polls with a deadline.
"""

from __future__ import annotations

import collections
import hashlib
import os
import random
import threading
import time
import types
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from flowlib import python_app
from flowlib.executors.high_throughput import client as client_module
from flowlib.executors.high_throughput import protocol as p
from flowlib.executors.high_throughput.client import LARGE_PAYLOAD, MAX_INFLIGHT_BYTES
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.executors.high_throughput.interchange import DISPATCH_BYTES, Interchange
from flowlib.executors.high_throughput.managers import (
    PREFETCH_BYTES,
    SHORT_TASK_SECONDS,
    ManagerRecord,
    ManagerTable,
)
from flowlib.executors.high_throughput.task_queue import QueuedTask, TaskQueue, split_by_size

from . import pool_tasks
from .conftest import make_registration, wait_for
from .test_local_links import LocalHtex, until

pytestmark = pytest.mark.timeout(30)

MiB = 1 << 20
GATE_LIMIT = 90.0
"""Seconds a gated task waits for its gate at most (then it fails, so a broken test does not hang a worker)."""


# ------------------------------------------------------------------------ task functions
# Module level, so that workers import them by name (tests/ is on their PYTHONPATH).


def fingerprint(data: Any) -> tuple[int, str, int, int]:
    """What a task reports about its payload: length, SHA-256, first and last byte."""
    return len(data), hashlib.sha256(data).hexdigest(), data[0], data[-1]


@python_app
def fingerprint_app(index: int, data: bytes) -> tuple[int, tuple[int, str, int, int]]:
    return index, fingerprint(data)


def gated_fingerprint(index: int, data: bytes, gate: str, markers: str) -> tuple[int, tuple[int, str, int, int]]:
    """Record that task ``index`` ran (a file named after it), wait for ``gate``, then fingerprint ``data``."""
    with open(os.path.join(markers, str(index)), "w"):
        pass
    deadline = time.monotonic() + GATE_LIMIT
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate} never opened")
        time.sleep(0.005)
    return index, fingerprint(data)


# ----------------------------------------------------------------------------- harness


def payload(index: int, size: int = MiB) -> bytes:
    """Distinct, reproducible contents for task ``index``."""
    return random.Random(index).randbytes(size)


class InflightSampler:
    """Samples the client's ``_inflight_bytes`` on a thread until stopped; keeps the largest value seen."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.largest = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inflight-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.largest = max(self.largest, self.client._inflight_bytes)
            self.samples += 1
            self._stop.wait(0.0005)

    def __enter__(self) -> InflightSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def started(harness: LocalHtex) -> tuple[HighThroughputExecutor, Any]:
    """Start the kernel; return the executor and its interchange client.

    Without the shared-memory arena: these tests are about large payloads that travel through the sockets.
    """
    executor = harness.start(workers=2, shared_memory=False)
    return executor, executor._client


def outbox_ids(client: Any) -> list[int]:
    """Task ids waiting in the client's outbox (a snapshot; retried if the I/O thread changes it meanwhile)."""
    for _ in range(100):
        try:
            return [tid for tid, _, _ in list(client._outbox_large)]
        except RuntimeError:  # deque mutated during iteration
            continue
    raise AssertionError("the outbox never held still")


def outstanding(client: Any) -> int:
    """Tasks the interchange holds: queued, plus given to pools."""
    return int(client.command("outstanding"))


def markers_in(directory: Path) -> set[int]:
    return {int(name) for name in os.listdir(directory)}


def window_is_idle(client: Any) -> bool:
    return client._inflight_bytes == 0 and not client._large and not client._outbox and not client._outbox_large


# ------------------------------------------------------------------- the in-flight window


@pytest.mark.timeout(120)
def test_80_one_mib_tasks_complete_and_the_window_empties(htex: LocalHtex) -> None:
    executor, client = started(htex)
    payloads = [payload(index) for index in range(80)]
    assert len(payloads[0]) >= LARGE_PAYLOAD
    with InflightSampler(client) as sampler:
        futures = [fingerprint_app(index, data) for index, data in enumerate(payloads)]
        for index, future in enumerate(futures):
            got_index, got = future.result(timeout=90)
            assert got_index == index
            assert got == fingerprint(payloads[index]), f"task {index} saw other bytes"
    largest_payload = MiB + 4096  # the argument plus the message's framing, generously
    assert sampler.largest <= MAX_INFLIGHT_BYTES + largest_payload, sampler.largest
    wait_for(lambda: window_is_idle(client), 10, "the in-flight window did not empty")
    assert client._inflight_bytes == 0
    assert client._large == {}
    assert not client._cancelled_unsent
    assert executor.outstanding == 0


@pytest.mark.timeout(150)
def test_window_holds_large_tasks_in_the_outbox_and_cancel_drops_them_there(htex: LocalHtex, tmp_path: Path) -> None:
    executor, client = started(htex)
    gate, markers = tmp_path / "gate", tmp_path / "markers"
    markers.mkdir()
    count = 60
    payloads = [payload(index) for index in range(count)]
    with InflightSampler(client) as sampler:
        futures: list[Future[Any]] = []
        for index, data in enumerate(payloads):
            futures.append(executor.submit(gated_fingerprint, {}, index, data, str(gate), str(markers)))
        tids = [future._tid for future in futures]  # type: ignore[attr-defined]
        index_of = {tid: index for index, tid in enumerate(tids)}

        # the window fills up, and then the client stops sending: the rest waits in its outbox
        def window_full() -> bool:
            held = len(client._large) + len(client._outbox_large)
            return client._inflight_bytes >= MAX_INFLIGHT_BYTES and held == count

        until(
            window_full,
            30,
            lambda: (
                f"in flight {client._inflight_bytes}, {len(client._large)} sent, {len(client._outbox_large)} waiting"
            ),
        )
        sent = sorted(client._large)
        waiting = outbox_ids(client)
        assert sent == tids[: len(sent)], "large tasks are sent in submission order"
        assert waiting == tids[len(sent) :]
        largest = max(len(data) for data in payloads) + 4096
        assert len(sent) <= (MAX_INFLIGHT_BYTES + largest) // MiB
        assert client._inflight_bytes == sum(client._large.values())
        assert MAX_INFLIGHT_BYTES <= client._inflight_bytes <= MAX_INFLIGHT_BYTES + largest
        assert all(size >= LARGE_PAYLOAD for size in client._large.values())
        # the interchange has every task that was sent (two running, the rest queued), and no other
        until(lambda: outstanding(client) == len(sent), 20, lambda: f"interchange holds {outstanding(client)}")
        wait_for(lambda: markers_in(markers) == {0, 1}, 30, "the first two tasks never started")
        assert outbox_ids(client) == waiting  # nothing answered, so nothing more was sent

        # cancel some tasks in the outbox: dropped there, before they are ever sent
        cancel_in_outbox = waiting[::3] + [waiting[-1]]
        for tid in cancel_in_outbox:
            assert futures[index_of[tid]].cancel() is True
        # each is remembered as cancelled until the I/O thread drops it from the outbox (at once at its head)
        for tid in cancel_in_outbox:
            assert tid in client._cancelled_unsent or tid not in outbox_ids(client), tid
        assert not set(cancel_in_outbox) & set(client._large), "a cancelled task was sent"
        # and one that waits at the interchange: answered CANCELLED, so its bytes leave the window
        queued_at_interchange = sent[10]
        before = client._inflight_bytes
        assert futures[index_of[queued_at_interchange]].cancel() is True
        until(
            lambda: queued_at_interchange not in client._large,
            20,
            lambda: "the interchange never answered the cancelled task",
        )
        # its room went to the next task in the outbox that was not cancelled
        next_up = next(tid for tid in waiting if tid not in cancel_in_outbox)
        wait_for(lambda: next_up in client._large, 20, "the freed room was not used")
        assert client._inflight_bytes <= before - len(payloads[0]) + largest
        cancelled = {index_of[tid] for tid in [*cancel_in_outbox, queued_at_interchange]}
        for index in cancelled:
            assert futures[index].cancelled()

        gate.write_text("open")
        for index, future in enumerate(futures):
            if index in cancelled:
                continue
            got_index, got = future.result(timeout=90)
            assert got_index == index
            assert got == fingerprint(payloads[index]), f"task {index} saw other bytes"
    assert sampler.samples > 0
    assert sampler.largest <= MAX_INFLIGHT_BYTES + largest, sampler.largest
    for index in cancelled:
        assert futures[index].cancelled(), f"task {index} was cancelled, then got a result"
    assert markers_in(markers) == set(range(count)) - cancelled, "a cancelled task ran (or a task never ran)"
    wait_for(lambda: window_is_idle(client), 10, "the in-flight window did not empty")
    assert client._large == {} and client._inflight_bytes == 0
    wait_for(lambda: not client._cancelled_unsent, 10, "ids of cancelled unsent tasks were kept")
    assert outstanding(client) == 0
    assert executor.outstanding == 0


@pytest.mark.timeout(120)
def test_small_tasks_are_not_held_back(htex: LocalHtex, tmp_path: Path) -> None:
    executor, client = started(htex)
    gate, markers = tmp_path / "gate", tmp_path / "markers"
    markers.mkdir()
    blockers = [executor.submit(gated_fingerprint, {}, index, b"small", str(gate), str(markers)) for index in range(2)]
    wait_for(lambda: markers_in(markers) == {0, 1}, 30, "the gated tasks never started")
    count = 3000
    futures = [executor.submit(pool_tasks.add, {}, index, 1) for index in range(count)]
    until(
        lambda: outstanding(client) == count + 2,
        30,
        lambda: f"interchange holds {outstanding(client)}; {len(client._outbox)} still in the client's outbox",
    )
    assert not client._outbox
    assert client._inflight_bytes == 0 and not client._large  # small payloads do not count
    gate.write_text("open")
    assert [future.result(timeout=60) for future in futures] == [index + 1 for index in range(count)]
    assert [future.result(timeout=30)[0] for future in blockers] == [0, 1]
    wait_for(lambda: window_is_idle(client), 10, "the client kept state for small tasks")


@pytest.mark.timeout(120)
def test_small_tasks_are_not_held_back_behind_a_full_window(htex: LocalHtex, tmp_path: Path) -> None:
    executor, client = started(htex)
    gate, markers = tmp_path / "gate", tmp_path / "markers"
    markers.mkdir()
    futures = [
        executor.submit(gated_fingerprint, {}, index, payload(index), str(gate), str(markers)) for index in range(40)
    ]
    wait_for(lambda: client._inflight_bytes >= MAX_INFLIGHT_BYTES, 30, "the window never filled")
    small = [executor.submit(pool_tasks.add, {}, index, 1) for index in range(300)]
    try:
        until(
            lambda: outstanding(client) >= len(client._large) + len(small),
            5,
            lambda: f"interchange holds {outstanding(client)}; {len(client._outbox)} tasks wait in the client",
        )
    finally:
        gate.write_text("open")
        for future in [*futures, *small]:
            future.result(timeout=90)


# -------------------------------------------------------------- prefetch by bytes (unit)


def registration(workers: int = 2) -> p.Registration:
    return make_registration(worker_count=workers)


def record(workers: int = 2, identity: bytes = b"pool", short: bool = True) -> ManagerRecord:
    """A pool as the interchange registers it with adaptive prefetch; ``short``: its tasks come back fast."""
    reg = registration(workers)
    return ManagerRecord(
        identity=identity,
        registration=reg,
        free_slots=workers,
        free_cores=reg.cores,
        free_memory=reg.memory_mb,
        free_gpus=0.0,
        last_seen=time.monotonic(),
        extra_slots=32 * workers,
        service_time=SHORT_TASK_SECONDS / 5 if short else float("inf"),
    )


def task(tid: int, payload: Any) -> QueuedTask:
    return QueuedTask(tid, payload, None, 0.0, 0.0, 0.0)


def test_take_and_release_count_payload_bytes() -> None:
    pool = record()
    backing = bytes(3000)
    payloads: list[Any] = [b"", b"x" * 100, bytes(MiB), bytearray(5000), memoryview(backing)[1000:2500]]
    expected = 0
    for tid, data in enumerate(payloads):
        pool.take(task(tid, data))
        expected += memoryview(data).nbytes
        assert pool.held_bytes == expected
    assert pool.held_bytes == 0 + 100 + MiB + 5000 + 1500
    assert pool.free_slots == 2 - len(payloads)
    released = pool.release(2)
    assert released is not None and released.tid == 2
    assert pool.held_bytes == expected - MiB
    assert pool.release(2) is None  # twice: nothing more is given back
    assert pool.release(999) is None  # a task this pool never held
    assert pool.held_bytes == expected - MiB
    for tid in (0, 1, 3, 4):
        pool.release(tid, now=time.monotonic())
    assert pool.held_bytes == 0
    assert pool.free_slots == 2 and not pool.tasks


def test_can_overflow_stops_at_prefetch_bytes_and_resumes_after_releases() -> None:
    pool = record()
    size = MiB
    tids = []
    while pool.can_overflow():
        tid = len(tids)
        pool.take(task(tid, bytes(size)))
        tids.append(tid)
        assert len(tids) <= PREFETCH_BYTES // size, "prefetch went past PREFETCH_BYTES"
    assert len(tids) == PREFETCH_BYTES // size
    assert pool.held_bytes == PREFETCH_BYTES
    assert pool.free_slots + pool.extra_slots > 0  # slots are left: only the bytes stop it
    pool.release(tids.pop())
    assert pool.held_bytes == PREFETCH_BYTES - size
    assert pool.can_overflow()
    pool.take(task(100, bytes(size + 1)))  # one over the cap again
    assert not pool.can_overflow()
    for tid in [*tids, 100]:
        pool.release(tid)
    assert pool.held_bytes == 0 and pool.can_overflow()


def test_can_overflow_with_small_payloads_is_bounded_by_slots_not_bytes() -> None:
    pool = record(workers=2)
    taken = 0
    while pool.can_overflow():
        pool.take(task(taken, bytes(1000)))
        taken += 1
    assert taken == 2 + 64  # every slot and every adaptive extra slot
    assert pool.held_bytes == taken * 1000 < PREFETCH_BYTES


def test_byte_cap_turns_the_pool_out_of_the_overflow_choice() -> None:
    table = ManagerTable()
    pool = record()
    table.add(pool)
    assert table.choose_overflow() is pool
    pool.take(task(1, bytes(PREFETCH_BYTES)))
    table.refresh(pool)
    assert table.choose_overflow() is None
    pool.release(1)
    table.refresh(pool)
    assert table.choose_overflow() is pool


def dispatch(queued: Sequence[QueuedTask], pools: Sequence[ManagerRecord]) -> tuple[list[tuple[bytes, list[int]]], Any]:
    """Run the interchange's dispatch step on ``queued`` and ``pools``; return the TASKS messages sent."""
    sent: list[tuple[bytes, list[int]]] = []

    def send_to_pool(identity: bytes, frames: list[Any]) -> None:
        batch = p.TaskBatch.decode(frames)
        sent.append((identity, batch.ids))

    table = ManagerTable()
    for pool in pools:
        table.add(pool)
    queue = TaskQueue()
    for item in queued:
        queue.push(item)
    state = types.SimpleNamespace(
        queue=queue, managers=table, stats=collections.Counter(), send_to_pool=send_to_pool, arena=None, local=None
    )
    Interchange.dispatch_tasks(state, time.monotonic())  # type: ignore[arg-type]
    return sent, state


def test_dispatch_prefetches_large_payloads_only_up_to_prefetch_bytes() -> None:
    pool = record(workers=2)
    queued = [task(tid, bytes(MiB)) for tid in range(30)]
    sent, state = dispatch(queued, [pool])
    given = [tid for _, ids in sent for tid in ids]
    assert given == list(range(len(given))), "dispatch keeps submission order"
    assert pool.held_bytes == len(given) * MiB
    assert PREFETCH_BYTES <= pool.held_bytes < PREFETCH_BYTES + MiB
    assert len(state.queue) == 30 - len(given)
    for _, ids in sent:  # each TASKS message is about DISPATCH_BYTES
        assert (len(ids) - 1) * MiB < DISPATCH_BYTES


def test_dispatch_without_short_tasks_gives_only_free_slots() -> None:
    pool = record(workers=2, short=False)
    sent, state = dispatch([task(tid, bytes(MiB)) for tid in range(10)], [pool])
    assert [ids for _, ids in sent] == [[0, 1]]
    assert len(state.queue) == 8 and pool.held_bytes == 2 * MiB


# --------------------------------------------------------------------- split_by_size (unit)


def sizes_of(parts: list[list[QueuedTask]]) -> list[list[int]]:
    return [[len(t.payload) for t in part] for part in parts]


def check_split(tasks: list[QueuedTask], parts: list[list[QueuedTask]], limit: int) -> None:
    """Every task exactly once, in order; a part ends as soon as it reaches ``limit`` bytes."""
    assert [t.tid for part in parts for t in part] == [t.tid for t in tasks]
    for part in parts:
        assert part, "an empty message"
        assert sum(len(t.payload) for t in part[:-1]) < limit  # it was under the limit before its last task
    for part in parts[:-1]:
        assert sum(len(t.payload) for t in part) >= limit  # it was closed because it reached the limit


def test_by_size_of_nothing() -> None:
    assert split_by_size([], DISPATCH_BYTES) == []  # no message at all, not one empty message


def test_by_size_keeps_small_tasks_together() -> None:
    tasks = [task(tid, bytes(1000)) for tid in range(50)]
    parts = split_by_size(tasks, DISPATCH_BYTES)
    assert len(parts) == 1 and parts[0] == tasks


def test_by_size_puts_a_huge_task_alone() -> None:
    huge = task(1, bytes(3 * DISPATCH_BYTES))
    parts = split_by_size([huge], DISPATCH_BYTES)
    assert parts == [[huge]]
    tasks = [huge, task(2, b"x"), task(3, b"y")]
    assert sizes_of(split_by_size(tasks, DISPATCH_BYTES)) == [[3 * DISPATCH_BYTES], [1, 1]]
    # between huge ones, each huge task is a message of its own
    tasks = [task(tid, bytes(DISPATCH_BYTES)) for tid in range(4)]
    parts = split_by_size(tasks, DISPATCH_BYTES)
    assert [[t.tid for t in part] for part in parts] == [[0], [1], [2], [3]]


def test_by_size_closes_a_part_once_it_reaches_the_limit() -> None:
    limit = 1000
    tasks = [task(tid, bytes(size)) for tid, size in enumerate([400, 400, 400, 10, 999, 1, 1000, 0, 5])]
    parts = split_by_size(tasks, limit)
    assert sizes_of(parts) == [[400, 400, 400], [10, 999], [1, 1000], [0, 5]]
    check_split(tasks, parts, limit)


@pytest.mark.parametrize("seed", range(20))
def test_by_size_random_batches(seed: int) -> None:
    rng = random.Random(seed)
    limit = 4096
    tasks = [
        task(tid, memoryview(bytes(rng.choice([0, 1, 100, 2000, 4095, 4096, 10_000]))))
        for tid in range(rng.randrange(1, 60))
    ]
    parts = split_by_size(tasks, limit)
    check_split(tasks, parts, limit)
    assert all(
        part_item is original for part_item, original in zip([t for pt in parts for t in pt], tasks, strict=True)
    )


def test_window_and_prefetch_sizes() -> None:
    assert client_module.MAX_INFLIGHT_BYTES == 32 * MiB
    assert client_module.LARGE_PAYLOAD == 64 << 10
    assert PREFETCH_BYTES == 8 * MiB
