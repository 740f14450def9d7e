"""The interchange's queue of tasks waiting for a worker pool, in priority order.

Lower ``priority`` values are dispatched first; equal priorities keep submission
order. Payloads are kept as the frames they arrived in (never deserialized).
Also here: building a queued task from a resource specification, and splitting
a pool's batch into messages of bounded size.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass
from typing import Any

from flowlib.executors.high_throughput import protocol as p
from flowlib.executors.high_throughput.parts import nbytes


@dataclass(slots=True)
class QueuedTask:
    """A task waiting in the interchange."""

    tid: int
    payload: Any
    spec: dict[str, Any] | None
    cores: float
    memory: float
    gpus: float
    dispatched: float = 0.0


class TaskQueue:
    """A priority queue of :class:`QueuedTask` with O(1) cancellation by id.

    Tasks of priority 0 (every task without a resource specification) wait in a
    FIFO; only the others go through a heap. No heap entry has priority 0, so
    the two never tie: negative priorities come before the FIFO, positive ones
    after it.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int]] = []
        self._plain: deque[int] = deque()
        self._tasks: dict[int, QueuedTask] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, tid: int) -> bool:
        return tid in self._tasks

    def push(self, task: QueuedTask, priority: float = 0.0) -> None:
        """Queue ``task``."""
        self._tasks[task.tid] = task
        if priority == 0:
            self._plain.append(task.tid)
        else:
            heapq.heappush(self._heap, (priority, next(self._seq), task.tid))

    def push_plain(self, tasks: list[QueuedTask]) -> None:
        """Queue tasks of priority 0, in order (one call for a whole SUBMIT batch)."""
        queued = self._tasks
        for task in tasks:
            queued[task.tid] = task
        self._plain.extend([task.tid for task in tasks])

    def pop(self) -> QueuedTask | None:
        """The highest-priority task, or None when empty."""
        heap, plain, tasks = self._heap, self._plain, self._tasks
        while heap and heap[0][0] < 0:
            task = tasks.pop(heapq.heappop(heap)[2], None)
            if task is not None:
                return task
        while plain:
            task = tasks.pop(plain.popleft(), None)
            if task is not None:
                return task
        while heap:
            task = tasks.pop(heapq.heappop(heap)[2], None)
            if task is not None:
                return task
        return None

    def sizes(self) -> dict[str, int]:
        """Queued tasks, and the entries of the FIFO and the heap (cancelled ones linger until popped)."""
        return {"queued": len(self._tasks), "fifo_entries": len(self._plain), "heap_entries": len(self._heap)}

    def compact(self) -> None:
        """Once empty, give back the table sized for the largest backlog so far (a dict never shrinks)."""
        if not self._tasks and not self._heap and not self._plain:
            self._tasks = {}

    def push_back(self, tasks: list[tuple[float, QueuedTask]]) -> None:
        """Return tasks that could not be placed, keeping their priority."""
        for priority, task in tasks:
            self.push(task, priority)

    def remove(self, tid: int) -> QueuedTask | None:
        """Take a task out (cancellation); its heap entry is skipped later."""
        return self._tasks.pop(tid, None)

    def ids(self) -> list[int]:
        """Ids of all queued tasks."""
        return list(self._tasks)


def split_by_size(tasks: list[QueuedTask], limit: int) -> list[list[QueuedTask]]:
    """Split tasks into runs whose payloads add up to about ``limit`` bytes (one message each)."""
    if not tasks:
        return []
    parts: list[list[QueuedTask]] = [[]]
    size = 0
    for task in tasks:
        if size >= limit and parts[-1]:
            parts.append([])
            size = 0
        parts[-1].append(task)
        size += nbytes(task.payload)
    return parts


def task_from_spec(tid: int, payload: Any, spec: dict[str, Any]) -> tuple[QueuedTask, float]:
    """A queued task and its priority from a resource specification; ValueError naming a bad key or value."""
    unknown = set(spec) - p.RESOURCE_KEYS
    if unknown:
        raise ValueError(f"task {tid}: unknown resource specification key(s) {sorted(unknown)}")
    values = {}
    for key in ("priority", "cores", "memory", "gpus"):
        value = spec.get(key, 0)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or (key != "priority" and value < 0):
            raise ValueError(f"task {tid}: resource specification {key!r} must be a non-negative number, got {value!r}")
        values[key] = float(value)
    return QueuedTask(tid, payload, spec, values["cores"], values["memory"], values["gpus"]), values["priority"]


def describe_request(task: QueuedTask) -> str:
    """What a task asks for, for error messages: ``cores=4, gpus=1``."""
    parts = [
        f"{name}={value:g}"
        for name, value in (("cores", task.cores), ("memory", task.memory), ("gpus", task.gpus))
        if value
    ]
    return ", ".join(parts) or "nothing"
