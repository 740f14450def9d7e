"""Resource samples from worker pools, turned into ``resource`` rows for the router's batched writes.

::

    worker pool sampler --RESOURCES--> interchange --EVENT 'resources'--> executor
        --pool_listeners--> ResourceRows.accept (executor's thread: one deque append)
    Router thread, each flush:
        ResourceRows.rows(): executor task ids -> (task_id, try_id) of the kernel, checked values

A pool knows only its executor's task ids; the kernel's tries are found from
the executor futures the router sees (``record.exec_fu`` of a launched try,
or the event's ``exec_future`` when it ends). A sample that arrives after its
try ended still finds it for a while (the result travels faster than the
samples); one that never matches a try is counted in :attr:`ResourceRows.unmatched`.
"""

from __future__ import annotations

import collections
import math
import time
from typing import Any

GRACE = 60.0
"""Seconds an ended try stays findable for late samples (at least three intervals)."""

_FLOAT_COLUMNS = {
    "cpu_percent": "psutil_process_cpu_percent",
    "time_user": "psutil_process_time_user",
    "time_system": "psutil_process_time_system",
    "memory_resident": "psutil_process_memory_resident",
    "memory_virtual": "psutil_process_memory_virtual",
    "memory_percent": "psutil_process_memory_percent",
    "disk_read": "psutil_process_disk_read",
    "disk_write": "psutil_process_disk_write",
    "num_threads": "psutil_process_num_threads",
    "children_count": "psutil_process_children_count",
    "ctx_switches_voluntary": "psutil_process_num_ctx_switches_voluntary",
    "ctx_switches_involuntary": "psutil_process_num_ctx_switches_involuntary",
}
_TEXT_LIMIT = 64


def _number(value: Any) -> float | None:
    if type(value) not in (int, float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _short_text(value: Any) -> str | None:
    return value[:_TEXT_LIMIT] if type(value) is str else None


class ResourceRows:
    """Resource samples waiting to be written, and the map from executor task ids to tries."""

    def __init__(self, run_id: str, max_queued: int, interval: float) -> None:
        self.run_id = run_id
        self.max_queued = max_queued
        self.interval = float(interval)
        self.dropped = 0
        """Samples dropped because the store fell more than ``max_queued`` behind."""
        self.unmatched = 0
        """Samples for an executor task id that matched no try of this run."""
        self.written = 0
        """Rows handed to the writer so far."""
        self._queued = 0
        self._incoming: collections.deque[dict[str, Any]] = collections.deque()
        self._launched: dict[tuple[int, int], tuple[str, Any]] = {}  # try -> (executor label, task record)
        self._by_exec: dict[tuple[str, int], tuple[int, int]] = {}  # (label, executor task id) -> try
        self._ended: collections.deque[tuple[float, tuple[str, int]]] = collections.deque()

    # ---------------------------------------------------------- intake

    def accept(self, event: dict[str, Any]) -> None:
        """A 'resources' event from an executor (its receiving thread): queue it, or count it dropped."""
        samples = event.get("samples")
        if type(samples) is not list:
            return
        if self._queued + len(samples) > self.max_queued:
            self.dropped += len(samples)
            return
        self._queued += len(samples)
        self._incoming.append(event)

    def launched(self, key: tuple[int, int], label: str, record: Any) -> None:
        """A try was launched (router thread): its executor future appears on ``record`` soon."""
        if record is not None:
            self._launched[key] = (label, record)

    def ended(self, key: tuple[int, int], label: str, exec_future: Any) -> None:
        """A try ended (router thread): keep it findable for :data:`GRACE` s."""
        entry = self._launched.pop(key, None)
        if exec_future is None and entry is not None:
            exec_future = getattr(entry[1], "exec_fu", None)
        exec_id = getattr(exec_future, "executor_task_id", None)
        if type(exec_id) is int:
            self._by_exec[(label, exec_id)] = key
            self._ended.append((time.monotonic(), (label, exec_id)))

    def _index(self, key: tuple[int, int], label: str, fut: Any) -> None:
        exec_id = getattr(fut, "executor_task_id", None)
        if type(exec_id) is int:
            self._by_exec[(label, exec_id)] = key

    # ---------------------------------------------------------- writer side

    def pending(self) -> bool:
        return bool(self._incoming)

    def rows(self) -> list[dict[str, Any]]:
        """The rows for every sample queued so far (router thread)."""
        if not self._incoming:
            self._expire()
            return []
        for key, (label, record) in list(self._launched.items()):
            fut = getattr(record, "exec_fu", None)
            if fut is not None:
                self._index(key, label, fut)
                del self._launched[key]
        rows: list[dict[str, Any]] = []
        queue = self._incoming
        by_exec = self._by_exec
        for _ in range(len(queue)):
            event = queue.popleft()
            samples = event["samples"]
            self._queued -= len(samples)
            label = str(event.get("label"))
            hostname = _short_text(event.get("hostname"))
            interval = _number(event.get("interval")) or self.interval
            for sample in samples:
                exec_id = sample.get("task_id")
                found = by_exec.get((label, exec_id)) if type(exec_id) is int else None
                when = _number(sample.get("timestamp"))
                if found is None or when is None:
                    self.unmatched += 1
                    continue
                rows.append(self._row(found, sample, when, hostname, interval))
        self._expire()
        self.written += len(rows)
        return rows

    def _row(
        self, key: tuple[int, int], sample: dict[str, Any], when: float, hostname: str | None, interval: float
    ) -> dict[str, Any]:
        pid = sample.get("pid")
        row: dict[str, Any] = {
            "task_id": key[0],
            "try_id": key[1],
            "run_id": self.run_id,
            "timestamp": when,
            "hostname": hostname,
            "resource_monitoring_interval": interval,
            "psutil_process_pid": pid if type(pid) is int and 0 < pid < 1 << 32 else None,
            "psutil_process_status": _short_text(sample.get("status")),
            "psutil_cpu_num": _short_text(sample.get("cpu_num")),
        }
        for name, column in _FLOAT_COLUMNS.items():
            row[column] = _number(sample.get(name))
        return row

    def _expire(self) -> None:
        ended = self._ended
        if not ended:
            return
        horizon = time.monotonic() - max(GRACE, 3 * self.interval)
        while ended and ended[0][0] < horizon:
            self._by_exec.pop(ended.popleft()[1], None)
