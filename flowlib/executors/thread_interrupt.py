"""Giving up on a thread-pool task: asynchronous exceptions and a deadline watchdog.

::

    worker thread --runs--> task
         ^                    |  deadline passed (walltime) or the pool shuts down
         |                    v
         +--- TaskAbandoned <-- watchdog / shutdown: fail the future now, inject the
              (raised at the     exception, hand the slot to a fresh thread
              next bytecode)

A Python thread cannot be killed. What can be done is (1) fail the task's future at
once, (2) ask CPython to raise an exception in the thread (``PyThreadState_SetAsyncExc``),
which happens at the thread's next bytecode boundary, and (3) stop counting the
thread as part of the pool, so that a replacement takes its place. Pure Python code
stops within microseconds; a thread blocked inside one C call (``time.sleep``,
``Event.wait``, ``socket.recv``, a NumPy kernel) stops only when that call returns,
and until then it lives on as an *abandoned* thread.
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


class TaskAbandoned(BaseException):  # noqa: N818 - it is a signal to the thread, not an error report
    """Raised inside a worker thread whose task the pool gave up on.

    A BaseException, so that ``except Exception`` in the task does not swallow it.
    The task's future has already been failed with the error that explains why
    (AppTimeout for a walltime, BadStateException for a shutdown).
    """


def inject(thread_id: int, exc_type: type[BaseException] | None) -> bool:
    """Raise ``exc_type`` in thread ``thread_id`` at its next bytecode (None: withdraw a pending one).

    Returns False when no such thread exists any more.
    """
    target = ctypes.py_object(exc_type) if exc_type is not None else None
    return bool(ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), target))


class DeadlineWatchdog:
    """One thread that calls each registered callback when its deadline passes.

    ``add`` returns a handle that ``cancel`` takes; cancelled entries are dropped
    lazily, and the heap is rebuilt when more than half of it is cancelled, so a
    campaign of short tasks with long walltimes keeps it small.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._heap: list[list[object]] = []
        self._cancelled = 0
        self._seq = itertools.count()
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._closed = False

    def add(self, delay: float, callback: Callable[[], None]) -> list[object]:
        """Call ``callback()`` in ``delay`` seconds unless cancelled first."""
        entry: list[object] = [time.monotonic() + delay, next(self._seq), callback]
        with self._cond:
            if self._closed:
                raise RuntimeError(f"watchdog {self._name} is closed")
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            elif self._heap[0] is entry:
                self._cond.notify()
        return entry

    def cancel(self, entry: list[object]) -> None:
        """Forget ``entry``; its callback will not be called."""
        with self._cond:
            if entry[2] is None:
                return
            entry[2] = None
            self._cancelled += 1
            if self._cancelled > 64 and self._cancelled * 2 > len(self._heap):
                self._heap = [e for e in self._heap if e[2] is not None]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def pending(self) -> int:
        """Callbacks registered and neither called nor cancelled."""
        with self._cond:
            return len(self._heap) - self._cancelled

    def close(self) -> None:
        """Drop every pending callback and end the watchdog thread."""
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cancelled = 0
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        while True:
            due: list[Callable[[], None]] = []
            with self._cond:
                while not self._closed and not due:
                    if not self._heap:
                        self._cond.wait()
                        continue
                    wait = float(self._heap[0][0]) - time.monotonic()  # type: ignore[arg-type]
                    if wait > 0:
                        self._cond.wait(wait)
                        continue
                    while self._heap and float(self._heap[0][0]) <= time.monotonic():  # type: ignore[arg-type]
                        entry = heapq.heappop(self._heap)
                        if entry[2] is None:
                            self._cancelled -= 1
                        else:
                            due.append(entry[2])  # type: ignore[arg-type]
                            entry[2] = None
                if self._closed:
                    return
            for callback in due:
                try:
                    callback()
                except Exception:
                    logger.exception("watchdog %s: a deadline callback failed", self._name)
