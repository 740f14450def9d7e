"""A pool of threads in the submitting process: the default executor.

::

    kernel --submit--> SimpleQueue --> worker thread 1 --> future.set_result
                                   \\-> worker thread N --/

Tasks run in the user's process without serialization, so anything can be passed
and returned. It is the lowest-latency executor and suits I/O-bound or GIL-releasing
work; CPU-bound Python code wants a process-based executor.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Future
from queue import SimpleQueue
from typing import Any

from flowlib.dataflow.futures import LightFuture
from flowlib.executors.base import ExecutorStatistics, FlowlibExecutor, reject_resource_specification
from flowlib.executors.errors import BadStateException
from flowlib.validation import validate_arguments

_STOP = None


class ThreadPoolExecutor(FlowlibExecutor):
    """Run tasks on ``max_threads`` threads of the submitting process.

    Parameters:
        label: the executor's name in ``executors=[...]``.
        max_threads: the number of worker threads.
        thread_name_prefix: prefix of the worker threads' names.
        storage_access: staging providers for files (None: the defaults).
        working_dir: the directory bash apps run in (None: the current directory).
    """

    def __init__(
        self,
        label: str = "threads",
        max_threads: int = 2,
        thread_name_prefix: str = "",
        storage_access: list[Any] | None = None,
        working_dir: str | None = None,
    ) -> None:
        validate_arguments(
            "ThreadPoolExecutor",
            {
                "label": (label, str),
                "max_threads": (max_threads, int),
                "thread_name_prefix": (thread_name_prefix, str),
                "storage_access": (storage_access, list[Any] | None),
                "working_dir": (working_dir, str | None),
            },
        )
        if max_threads < 1:
            raise ValueError(f"ThreadPoolExecutor max_threads must be at least 1, got {max_threads}")
        self.label = label
        self.max_threads = max_threads
        self.thread_name_prefix = thread_name_prefix
        self.storage_access = storage_access
        self.working_dir = working_dir
        self._queue: SimpleQueue[Any] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._submitted = itertools.count()
        self._completed = itertools.count()
        self._started = False
        self._shutdown = False
        self._lock = threading.Lock()

    def start(self) -> None:
        """Mark the pool usable; threads are started on the first submit."""
        self._started = True

    def _start_threads(self) -> None:
        with self._lock:
            if self._threads or self._shutdown:
                return
            prefix = self.thread_name_prefix or f"flowlib-{self.label}"
            for i in range(self.max_threads):
                t = threading.Thread(target=self._work, name=f"{prefix}_{i}", daemon=True)
                t.start()
                self._threads.append(t)

    def submit(
        self, func: Callable[..., Any], resource_specification: dict[str, Any], /, *args: Any, **kwargs: Any
    ) -> Future[Any]:
        """Queue ``func(*args, **kwargs)``; the returned future completes with its outcome."""
        if resource_specification:
            reject_resource_specification(self, resource_specification)
        if self._shutdown:
            raise BadStateException(self, "the executor has been shut down")
        if not self._threads:
            self._start_threads()
        fut: LightFuture[Any] = LightFuture()
        next(self._submitted)
        self._queue.put((fut, func, args, kwargs))
        return fut

    def _work(self) -> None:
        get = self._queue.get
        completed = self._completed
        while True:
            item = get()
            if item is _STOP:
                return
            fut, func, args, kwargs = item
            del item
            if not fut.set_running_or_notify_cancel():
                next(completed)
                continue
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                next(completed)
                fut.set_exception(exc)
            else:
                next(completed)
                fut.set_result(result)
            del fut, func, args, kwargs

    def shutdown(self, block: bool = True) -> None:
        """Stop the threads after the queued tasks; with ``block`` wait for them."""
        with self._lock:
            if self._shutdown:
                return
            self._shutdown = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(_STOP)
        if block:
            for t in threads:
                if t is not threading.current_thread():
                    t.join()

    def statistics(self) -> ExecutorStatistics:
        """Tasks submitted and completed so far, and the number of threads."""
        return ExecutorStatistics(self.label, _peek(self._submitted), _peek(self._completed), len(self._threads))


def _peek(counter: itertools.count[int]) -> int:
    # itertools.count is the thread-safe counter of CPython; its repr is its next value.
    return int(repr(counter)[6:-1])
