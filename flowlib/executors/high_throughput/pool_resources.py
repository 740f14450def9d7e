"""Resource sampling of a worker pool's busy workers: one thread per pool, not a process per task.

::

    Manager main loop                         ResourceSampler thread (only when asked)
    running {task id: WorkerSlot} --copy----> every `interval` s: for each busy worker,
                                              psutil reads it and its descendants (a bash
                                              app's command runs in a child), summed
    send_resources step <--deque of batches-- one batch per pass
      RESOURCES message to the interchange (never on the result path)

The interchange asks for sampling in its REGISTERED answer
(``resource_interval``, set when monitoring wants resources); without it the
pool starts no thread and the main loop does one ``is None`` check per pass.

Each sample is a dict of Parsl's resource figures for one task at one time:
CPU times and memory of the worker process plus its live descendants, their
disk I/O, threads and context switches. ``cpu_percent`` is the CPU time used
since the previous sample of the same worker process (or since it started),
over the wall time between them: a worker runs one task at a time and idles
in between, so a task's first figure may include its worker's previous task's
last moments.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

logger = logging.getLogger("flowlib.executors.high_throughput.worker_pool")

MAX_QUEUED_BATCHES = 100
"""Sample batches held while the main loop does not pick them up; older ones are dropped."""


def _children_by_proc(pid: int) -> list[int] | None:
    """The direct children of ``pid`` from /proc (every thread's list), or None where unsupported."""
    base = f"/proc/{pid}/task"
    try:
        threads = os.listdir(base)
    except OSError:
        return None
    children: list[int] = []
    for tid in threads:
        try:
            with open(f"{base}/{tid}/children") as f:
                children.extend(int(c) for c in f.read().split())
        except FileNotFoundError:
            return None  # no CONFIG_PROC_CHILDREN, or the thread ended: let psutil walk
        except (OSError, ValueError):
            continue
    return children


class TreeReader:
    """Reads the figures of one worker process and its descendants with psutil.

    ``psutil.Process`` objects are kept per pid (checked against pid reuse), so
    a pass costs a few ``/proc`` reads per process.
    """

    def __init__(self) -> None:
        import psutil

        self.psutil = psutil
        self.total_memory = float(psutil.virtual_memory().total)
        self._procs: dict[int, Any] = {}
        self._last: dict[int, tuple[float, float]] = {}  # worker pid -> (wall time, cpu seconds) at its last sample

    def _proc(self, pid: int) -> Any:
        proc = self._procs.get(pid)
        if proc is None or not proc.is_running():
            proc = self.psutil.Process(pid)
            self._procs[pid] = proc
        return proc

    def descendants(self, pid: int) -> list[int]:
        """Every live descendant of ``pid`` (empty if it has none or is gone)."""
        found: list[int] = []
        todo = [pid]
        while todo:
            current = todo.pop()
            children = _children_by_proc(current)
            if children is None:
                try:
                    children = [c.pid for c in self._proc(current).children()]
                except self.psutil.Error:
                    children = []
            found.extend(children)
            todo.extend(children)
        return found

    def sample(self, task_id: int, pid: int, now: float) -> dict[str, Any] | None:
        """One task's sample (its worker ``pid`` and descendants), or None if the worker is gone."""
        ps = self.psutil
        try:
            worker = self._proc(pid)
            with worker.oneshot():
                head = self._figures(worker)
                status = worker.status()
                cpu_num = worker.cpu_num() if hasattr(worker, "cpu_num") else None
                created = worker.create_time()
        except ps.Error:
            return None
        children = self.descendants(pid)
        total = head
        for child in children:
            try:
                proc = self._proc(child)
                with proc.oneshot():
                    figures = self._figures(proc)
            except ps.Error:  # ended between the listing and the read
                continue
            total = [a + b for a, b in zip(total, figures, strict=True)]
        user, system, rss, vms, read, write, threads, vol, invol = total
        cpu = user + system
        then, cpu_then = self._last.get(pid, (created, 0.0))
        self._last[pid] = (now, cpu)
        span = now - then
        percent = max(0.0, (cpu - cpu_then) / span * 100.0) if span > 0 else 0.0
        return {
            "task_id": task_id,
            "pid": pid,
            "cpu_percent": round(percent, 2),
            "time_user": user,
            "time_system": system,
            "memory_resident": rss,
            "memory_virtual": vms,
            "memory_percent": round(rss / self.total_memory * 100.0, 3) if self.total_memory else None,
            "disk_read": read,
            "disk_write": write,
            "num_threads": threads,
            "children_count": len(children),
            "status": str(status),
            "cpu_num": None if cpu_num is None else str(cpu_num),
            "ctx_switches_voluntary": vol,
            "ctx_switches_involuntary": invol,
        }

    def _figures(self, proc: Any) -> list[float]:
        """CPU (own and waited-for children), memory, I/O, threads, context switches of one process."""
        t = proc.cpu_times()
        user = t.user + getattr(t, "children_user", 0.0)
        system = t.system + getattr(t, "children_system", 0.0)
        mem = proc.memory_info()
        try:
            io = proc.io_counters()
            read, write = float(io.read_bytes), float(io.write_bytes)
        except (self.psutil.AccessDenied, AttributeError, NotImplementedError):
            read = write = 0.0
        ctx = proc.num_ctx_switches()
        return [user, system, float(mem.rss), float(mem.vms), read, write, float(proc.num_threads()),
                float(ctx.voluntary), float(ctx.involuntary)]  # fmt: skip

    def forget(self, live_pids: Iterable[int]) -> None:
        """Drop what is kept about processes no longer among ``live_pids`` and their descendants."""
        keep = set(live_pids)
        for pid in [p for p in self._last if p not in keep]:
            del self._last[pid]
        if len(self._procs) > 4 * max(len(keep), 16):
            self._procs = {pid: proc for pid, proc in self._procs.items() if pid in keep}


class ResourceSampler:
    """A daemon thread sampling the busy workers every ``interval`` s; batches wait in :attr:`batches`.

    ``running`` returns ``{task id: worker pid}`` for the tasks on a worker now;
    it is called on the sampler thread, so it must only copy (the manager's dict
    copy is atomic under the GIL).
    """

    def __init__(self, interval: float, running: Callable[[], dict[int, int]]) -> None:
        if not interval > 0:
            raise ValueError(f"resource sampling interval must be > 0, got {interval!r}")
        self.interval = float(interval)
        self.running = running
        self.batches: collections.deque[list[dict[str, Any]]] = collections.deque(maxlen=MAX_QUEUED_BATCHES)
        self.passes = 0
        """Sampling passes done so far."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reader: TreeReader | None = None

    def start(self) -> None:
        self._reader = TreeReader()
        self._thread = threading.Thread(target=self._run, name="flowlib-resource-sampler", daemon=True)
        self._thread.start()
        logger.info("resource sampling of busy workers every %g s", self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def sample_once(self, now: float | None = None) -> list[dict[str, Any]]:
        """One pass: a sample per busy worker, all stamped with the same time."""
        reader = self._reader
        if reader is None:
            reader = self._reader = TreeReader()
        now = time.time() if now is None else now
        running = self.running()
        samples = []
        for task_id, pid in running.items():
            sample = reader.sample(task_id, pid, now)
            if sample is not None:
                sample["timestamp"] = now
                samples.append(sample)
        reader.forget(running.values())
        self.passes += 1
        return samples

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                samples = self.sample_once()
            except Exception:  # a psutil surprise must not end sampling, nor the pool
                logger.exception("resource sampling pass failed; continuing")
                continue
            if samples:
                self.batches.append(samples)


def node_figures() -> dict[str, int]:
    """This node's logical CPU count and total memory in bytes (for the monitoring node table)."""
    import psutil

    return {
        "cpu_count": int(psutil.cpu_count() or os.cpu_count() or 1),
        "total_memory": int(psutil.virtual_memory().total),
    }
