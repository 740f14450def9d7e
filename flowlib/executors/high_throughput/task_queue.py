"""The interchange's queue of tasks waiting for a worker pool, in priority order.

Lower ``priority`` values are dispatched first; equal priorities keep submission
order. Payloads are kept as the frames they arrived in (never deserialized).
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from typing import Any


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
    """A priority queue of :class:`QueuedTask` with O(1) cancellation by id."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int]] = []
        self._tasks: dict[int, QueuedTask] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, tid: int) -> bool:
        return tid in self._tasks

    def push(self, task: QueuedTask, priority: float = 0.0) -> None:
        """Queue ``task``."""
        self._tasks[task.tid] = task
        heapq.heappush(self._heap, (priority, next(self._seq), task.tid))

    def pop(self) -> QueuedTask | None:
        """The highest-priority task, or None when empty."""
        heap, tasks = self._heap, self._tasks
        while heap:
            _, _, tid = heapq.heappop(heap)
            task = tasks.pop(tid, None)
            if task is not None:
                return task
        return None

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
