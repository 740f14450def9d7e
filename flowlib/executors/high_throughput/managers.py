"""The interchange's table of registered worker pools (managers) and their free capacity.

A pool has ``worker_count + prefetch_capacity`` slots, and its node's cores, memory
(MB) and accelerators. A task takes one slot plus what its resource specification
asks for; plain tasks ask for nothing else. Available pools are kept in insertion
order and rotated, so tasks spread round-robin.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from flowlib.executors.high_throughput.protocol import Registration
from flowlib.executors.high_throughput.task_queue import QueuedTask


@dataclass(slots=True)
class ManagerRecord:
    """One registered worker pool."""

    identity: bytes
    registration: Registration
    free_slots: int
    free_cores: float
    free_memory: float
    free_gpus: float
    last_seen: float
    draining: bool = False
    tasks: dict[int, QueuedTask] = field(default_factory=dict)

    def fits(self, task: QueuedTask) -> bool:
        """Room for ``task`` now."""
        return (
            self.free_slots > 0
            and task.cores <= self.free_cores
            and task.memory <= self.free_memory
            and task.gpus <= self.free_gpus
        )

    def could_ever_fit(self, task: QueuedTask) -> bool:
        """Room for ``task`` on an idle pool of this size."""
        reg = self.registration
        return task.cores <= reg.cores and task.memory <= reg.memory_mb and task.gpus <= len(reg.accelerators)

    def take(self, task: QueuedTask) -> None:
        self.free_slots -= 1
        self.free_cores -= task.cores
        self.free_memory -= task.memory
        self.free_gpus -= task.gpus
        self.tasks[task.tid] = task

    def release(self, tid: int) -> QueuedTask | None:
        task = self.tasks.pop(tid, None)
        if task is not None:
            self.free_slots += 1
            self.free_cores += task.cores
            self.free_memory += task.memory
            self.free_gpus += task.gpus
        return task

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly summary for commands and events."""
        reg = self.registration
        return {
            "pool_id": reg.pool_id,
            "block_id": reg.block_id,
            "hostname": reg.hostname,
            "worker_count": reg.worker_count,
            "outstanding": len(self.tasks),
            "draining": self.draining,
            "idle_seconds": None if self.tasks else round(time.monotonic() - self.last_seen, 3),
            "flowlib_version": reg.flowlib_version,
            "python_version": reg.python_version,
        }


class ManagerTable:
    """Registered pools, and the subset with a free slot in round-robin order."""

    def __init__(self) -> None:
        self.all: dict[bytes, ManagerRecord] = {}
        self.available: dict[bytes, ManagerRecord] = {}

    def __len__(self) -> int:
        return len(self.all)

    def add(self, record: ManagerRecord) -> None:
        self.all[record.identity] = record
        self._refresh(record)

    def remove(self, identity: bytes) -> ManagerRecord | None:
        self.available.pop(identity, None)
        return self.all.pop(identity, None)

    def get(self, identity: bytes) -> ManagerRecord | None:
        return self.all.get(identity)

    def _refresh(self, record: ManagerRecord) -> None:
        if record.free_slots > 0 and not record.draining and record.identity in self.all:
            self.available.setdefault(record.identity, record)
        else:
            self.available.pop(record.identity, None)

    def refresh(self, record: ManagerRecord) -> None:
        """Re-file ``record`` after its capacity or draining flag changed."""
        self._refresh(record)

    def choose(self, task: QueuedTask) -> ManagerRecord | None:
        """An available pool with room for ``task``, rotating through them."""
        available = self.available
        if not available:
            return None
        plain = task.cores == 0 and task.memory == 0 and task.gpus == 0
        for identity, record in available.items():
            if plain or record.fits(task):
                # rotate: the chosen pool goes to the back of the line
                del available[identity]
                available[identity] = record
                return record
        return None

    def largest_fit(self, task: QueuedTask) -> bool:
        """Whether any registered pool could ever run ``task``."""
        return any(r.could_ever_fit(task) for r in self.all.values())
