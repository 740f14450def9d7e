"""The interchange's queue order, batched release and raw ZeroMQ framing (no interchange process)."""

from __future__ import annotations

import math

import pytest
import zmq

from flowlib.benchmark.simulated_managers import registration
from flowlib.executors.high_throughput import protocol as p
from flowlib.executors.high_throughput.managers import ManagerRecord
from flowlib.executors.high_throughput.task_queue import QueuedTask, TaskQueue
from flowlib.executors.high_throughput.zmq_frames import NOBLOCK, recv_frames, send_frames


def _task(tid: int, payload: bytes = b"x", cores: float = 0.0) -> QueuedTask:
    return QueuedTask(tid, payload, None, cores, 0.0, 0.0)


def _drain(queue: TaskQueue) -> list[int]:
    order = []
    while (task := queue.pop()) is not None:
        order.append(task.tid)
    return order


def test_priorities_around_the_plain_fifo() -> None:
    queue = TaskQueue()
    queue.push_plain([_task(1), _task(2)])
    queue.push(_task(3), priority=5)
    queue.push(_task(4), priority=-1)
    queue.push(_task(5))
    queue.push(_task(6), priority=-3)
    queue.push(_task(7), priority=5)
    assert len(queue) == 7
    assert _drain(queue) == [6, 4, 1, 2, 5, 3, 7]
    assert len(queue) == 0 and queue.pop() is None


def test_removed_tasks_are_skipped_in_both_lanes() -> None:
    queue = TaskQueue()
    queue.push_plain([_task(1), _task(2), _task(3)])
    queue.push(_task(4), priority=-2)
    assert queue.remove(2) is not None and queue.remove(4) is not None
    assert queue.remove(2) is None
    assert 2 not in queue and 1 in queue
    assert _drain(queue) == [1, 3]


def test_release_many_restores_capacity_and_ignores_unknown_ids() -> None:
    reg = registration(4)
    record = ManagerRecord(b"pool", reg, free_slots=4, free_cores=4.0, free_memory=100.0, free_gpus=0.0, last_seen=0.0)
    tasks = [_task(1, b"ab", cores=1.0), _task(2, b"cde"), _task(3)]
    for task in tasks:
        task.dispatched = 10.0
        record.take(task)
    assert (record.free_slots, record.free_cores, record.held_bytes) == (1, 3.0, 6)
    record.release_many([1, 2, 99], now=10.5)
    assert (record.free_slots, record.free_cores, record.held_bytes) == (3, 4.0, 1)
    assert math.isclose(record.service_time, 0.5)
    assert list(record.tasks) == [3]
    record.release_many([99], now=11.0)
    assert record.free_slots == 3
    record.release_many([3], now=12.0)
    assert not record.tasks and record.free_slots == 4
    assert math.isclose(record.service_time, 0.8 * 0.5 + 0.2 * 2.0)


def test_raw_multipart_round_trip() -> None:
    context = zmq.Context()
    try:
        a, b = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
        a.bind("inproc://frames")
        b.connect("inproc://frames")
        frames = [p.header(p.Kind.TASKS), b"", memoryview(b"payload"), bytearray(b"z" * 1000)]
        send_frames(a, frames)
        send_frames(a, [b"one"], copy=False)
        assert b.poll(5000)
        assert recv_frames(b) == [bytes(f) for f in frames]
        assert b.poll(5000)
        assert recv_frames(b, NOBLOCK) == [b"one"]
        with pytest.raises(zmq.Again):
            recv_frames(b, NOBLOCK)
        a.close(linger=0)
        b.close(linger=0)
    finally:
        context.term()


def test_parse_header_fast_and_slow_paths() -> None:
    assert p.parse_header(p.header(p.Kind.RESULTS)) == (p.PROTOCOL_VERSION, p.Kind.RESULTS)
    with pytest.raises(p.ProtocolError):
        p.parse_header(b"short")
