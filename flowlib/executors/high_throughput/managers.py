"""The interchange's table of registered worker pools (managers) and their free capacity.

A pool has ``worker_count + prefetch_capacity`` slots, and its node's cores, memory
(MB) and accelerators. A task takes one slot plus what its resource specification
asks for; plain tasks ask for nothing else. Available pools are kept in insertion
order and rotated, so tasks spread round-robin.

Adaptive prefetch: a pool registered with ``prefetch_capacity=0`` may also take
extra tasks (up to 32 per worker), but only while tasks are queued beyond every
free slot, only while its tasks come back within ``SHORT_TASK_SECONDS`` of being
sent, and only while it holds less than ``PREFETCH_BYTES`` of payloads. That time
includes waiting in the pool, so the work parked at a pool stays under about that
long: a throughput-bound run of short tasks keeps every worker busy in large
batches, long tasks are never parked behind each other, and large payloads are
not piled up in a pool's memory.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from flowlib.executors.high_throughput.parts import nbytes
from flowlib.executors.high_throughput.protocol import Registration
from flowlib.executors.high_throughput.task_queue import QueuedTask

SHORT_TASK_SECONDS = 0.05
"""Pools whose tasks come back faster than this on average may prefetch adaptively."""
PREFETCH_BYTES = 8 << 20
"""Adaptive prefetch stops while a pool holds this many payload bytes (large tasks are not parked)."""


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
    extra_slots: int = 0
    held_bytes: int = 0
    draining: bool = False
    service_time: float = math.inf
    idle_since: float = field(default_factory=time.monotonic)
    tasks: dict[int, QueuedTask] = field(default_factory=dict)

    def can_overflow(self) -> bool:
        """Whether adaptive prefetch lets this pool take one more task now."""
        return (
            self.free_slots + self.extra_slots > 0
            and self.service_time < SHORT_TASK_SECONDS
            and self.held_bytes < PREFETCH_BYTES
        )

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
        self.held_bytes += nbytes(task.payload)
        self.tasks[task.tid] = task

    def release(self, tid: int, now: float | None = None) -> QueuedTask | None:
        task = self.tasks.pop(tid, None)
        if task is not None:
            if now is not None:
                sample = now - task.dispatched
                self.service_time = sample if math.isinf(self.service_time) else 0.8 * self.service_time + 0.2 * sample
            self.free_slots += 1
            self.held_bytes -= nbytes(task.payload)
            if not self.tasks:
                self.idle_since = time.monotonic()
            self.free_cores += task.cores
            self.free_memory += task.memory
            self.free_gpus += task.gpus
        return task

    def release_many(self, ids: list[int], now: float) -> None:
        """:meth:`release` for each of ``ids`` (one RESULTS message), with the loop kept tight."""
        tasks = self.tasks
        service = self.service_time
        freed = held = 0
        cores = memory = gpus = 0.0
        for tid in ids:
            task = tasks.pop(tid, None)
            if task is None:
                continue
            sample = now - task.dispatched
            service = sample if service == math.inf else 0.8 * service + 0.2 * sample
            freed += 1
            held += len(task.payload)
            cores += task.cores
            memory += task.memory
            gpus += task.gpus
        if not freed:
            return
        self.service_time = service
        self.free_slots += freed
        self.held_bytes -= held
        self.free_cores += cores
        self.free_memory += memory
        self.free_gpus += gpus
        if not tasks:
            self.idle_since = time.monotonic()

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly summary for commands and events."""
        reg = self.registration
        idle = None if self.tasks else round(time.monotonic() - self.idle_since, 3)
        return {
            "pool_id": reg.pool_id,
            "block_id": reg.block_id,
            "hostname": reg.hostname,
            "worker_count": reg.worker_count,
            "outstanding": len(self.tasks),
            "draining": self.draining,
            "idle_seconds": idle,
            "flowlib_version": reg.flowlib_version,
            "python_version": reg.python_version,
            "cpu_count": reg.cpu_count,
            "total_memory": reg.total_memory,
            # Parsl's names for the same facts, for code written against Parsl's connected_managers()
            "manager": reg.pool_id,
            "tasks": len(self.tasks),
            "idle_duration": 0.0 if idle is None else idle,
            "active": not self.draining,
            "parsl_version": reg.flowlib_version,
        }


class ManagerTable:
    """Registered pools, and the subset with a free slot in round-robin order."""

    def __init__(self) -> None:
        self.all: dict[bytes, ManagerRecord] = {}
        self.available: dict[bytes, ManagerRecord] = {}
        self.overflow: dict[bytes, ManagerRecord] = {}

    def __len__(self) -> int:
        return len(self.all)

    def add(self, record: ManagerRecord) -> None:
        self.all[record.identity] = record
        self._refresh(record)

    def remove(self, identity: bytes) -> ManagerRecord | None:
        self.available.pop(identity, None)
        self.overflow.pop(identity, None)
        return self.all.pop(identity, None)

    def get(self, identity: bytes) -> ManagerRecord | None:
        return self.all.get(identity)

    def _refresh(self, record: ManagerRecord) -> None:
        identity = record.identity
        usable = not record.draining and identity in self.all
        if usable and record.free_slots > 0:
            self.available.setdefault(identity, record)
        else:
            self.available.pop(identity, None)
        if usable and record.free_slots + record.extra_slots > 0:
            self.overflow.setdefault(identity, record)
        else:
            self.overflow.pop(identity, None)

    def refresh(self, record: ManagerRecord) -> None:
        """Re-file ``record`` after its capacity or draining flag changed."""
        self._refresh(record)

    def choose(self, task: QueuedTask) -> ManagerRecord | None:
        """An available pool with room for ``task``, rotating through them."""
        available = self.available
        plain = task.cores == 0 and task.memory == 0 and task.gpus == 0
        for identity, record in available.items():
            if plain or record.fits(task):
                return self._rotate(available, identity, record)
        return None

    def choose_overflow(self) -> ManagerRecord | None:
        """A pool that may prefetch one more plain task adaptively, or None."""
        overflow = self.overflow
        for identity, record in overflow.items():
            if record.can_overflow():
                return self._rotate(overflow, identity, record)
        return None

    @staticmethod
    def _rotate(table: dict[bytes, ManagerRecord], identity: bytes, record: ManagerRecord) -> ManagerRecord:
        # the chosen pool goes to the back of the line
        del table[identity]
        table[identity] = record
        return record

    def largest_fit(self, task: QueuedTask) -> bool:
        """Whether any registered pool could ever run ``task``."""
        return any(r.could_ever_fit(task) for r in self.all.values())
