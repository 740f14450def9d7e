"""A pool of threads in the submitting process: the default executor.

::

    kernel --submit--> SimpleQueue --> worker thread 1 --> future.set_result
                                   \\-> worker thread N --/
    watchdog thread: a task past its walltime -> future fails with AppTimeout,
                     its thread is abandoned and a fresh one takes its slot

Tasks run in the user's process without serialization, so anything can be passed
and returned. It is the lowest-latency executor and suits I/O-bound or GIL-releasing
work; CPU-bound Python code wants a process-based executor.

Stopping tasks (see docs/executors.rst, "Thread pool: walltime and shutdown"): a
task's future fails at its walltime on time, and ``shutdown()`` cancels every queued
task at once and fails the running ones; their threads are interrupted with an
asynchronous exception, which stops Python code at once but a blocking C call only
when it returns. Such a thread is *abandoned*: it no longer counts as one of the
pool's threads, takes no further task, and ends by itself.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from queue import Empty, SimpleQueue
from typing import Any

from flowlib.app.walltime import split_walltime, walltime_error
from flowlib.dataflow.futures import LightFuture
from flowlib.executors.base import ExecutorStatistics, FlowlibExecutor, reject_resource_specification
from flowlib.executors.errors import BadStateException
from flowlib.executors.thread_interrupt import DeadlineWatchdog, TaskAbandoned, inject
from flowlib.validation import validate_arguments

logger = logging.getLogger(__name__)

_STOP = None


class _Worker:
    """One worker thread and the task it is running (guarded by ``lock``)."""

    __slots__ = ("abandoned", "ident", "lock", "task", "thread")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.task: Future[Any] | None = None
        self.abandoned = False
        self.ident = 0
        self.thread: threading.Thread | None = None


class ThreadPoolExecutor(FlowlibExecutor):
    """Run tasks on ``max_threads`` threads of the submitting process.

    Parameters:
        label: the executor's name in ``executors=[...]``.
        max_threads: the number of worker threads.
        thread_name_prefix: prefix of the worker threads' names.
        storage_access: staging providers for files (None: the defaults).
        working_dir: where staging providers put files (as in Parsl); bash apps run
            in the process's current directory whatever it is.
        shutdown_timeout: (flowlib only) how long ``shutdown()`` waits for the
            interrupted running tasks' threads to end before leaving them behind
            as abandoned daemon threads.
    """

    def __init__(
        self,
        label: str = "threads",
        max_threads: int = 2,
        thread_name_prefix: str = "",
        storage_access: list[Any] | None = None,
        working_dir: str | None = None,
        shutdown_timeout: float = 1.0,
    ) -> None:
        validate_arguments(
            "ThreadPoolExecutor",
            {
                "label": (label, str),
                "max_threads": (max_threads, int),
                "thread_name_prefix": (thread_name_prefix, str),
                "storage_access": (storage_access, list[Any] | None),
                "working_dir": (working_dir, str | None),
                "shutdown_timeout": (shutdown_timeout, int | float),
            },
        )
        if max_threads < 1:
            raise ValueError(f"ThreadPoolExecutor max_threads must be at least 1, got {max_threads}")
        if not shutdown_timeout >= 0:
            raise ValueError(f"ThreadPoolExecutor shutdown_timeout must be >= 0 seconds, got {shutdown_timeout}")
        self.label = label
        self.max_threads = max_threads
        self.thread_name_prefix = thread_name_prefix
        self.storage_access = storage_access
        self.working_dir = working_dir
        self.shutdown_timeout = shutdown_timeout
        self._queue: SimpleQueue[Any] = SimpleQueue()
        self._workers: set[_Worker] = set()
        self._abandoned: set[_Worker] = set()
        self._thread_numbers = itertools.count()
        self._submitted = itertools.count()
        self._completed = itertools.count()
        self._started = False
        self._shutdown = False
        self._lock = threading.Lock()
        self._watchdog: DeadlineWatchdog | None = None

    def start(self) -> None:
        """Mark the pool usable; threads are started on the first submit.

        After :meth:`shutdown` this makes the pool usable again with a new task queue
        and new threads (as Parsl's thread pool does), so a Config can be loaded again
        once its kernel has been cleaned up. Threads of the earlier run that are still
        finishing keep the old queue and take none of the new tasks.
        """
        with self._lock:
            if self._shutdown:
                self._queue = SimpleQueue()
                self._workers = set()
                self._abandoned = set()
                self._submitted = itertools.count()
                self._completed = itertools.count()
                self._watchdog = None
                self._shutdown = False
                logger.debug("%s started again after shutdown", self.label)
            self._started = True

    def _start_threads(self) -> None:
        with self._lock:
            if self._workers or self._shutdown:
                return
            for _ in range(self.max_threads):
                self._spawn_locked()

    def _spawn_locked(self) -> None:
        worker = _Worker()
        prefix = self.thread_name_prefix or f"flowlib-{self.label}"
        worker.thread = threading.Thread(
            target=self._run_thread, args=(worker,), name=f"{prefix}_{next(self._thread_numbers)}", daemon=True
        )
        self._workers.add(worker)
        worker.thread.start()

    def submit(
        self, func: Callable[..., Any], resource_specification: dict[str, Any], /, *args: Any, **kwargs: Any
    ) -> Future[Any]:
        """Queue ``func(*args, **kwargs)``; the returned future completes with its outcome."""
        if resource_specification:
            reject_resource_specification(self, resource_specification)
        if self._shutdown:
            raise BadStateException(self, "the executor has been shut down")
        if not self._workers:
            self._start_threads()
        fut: LightFuture[Any] = LightFuture()
        next(self._submitted)
        self._queue.put((fut, func, args, kwargs))
        return fut

    # ------------------------------------------------------------ worker side

    def _run_thread(self, worker: _Worker) -> None:
        worker.ident = threading.get_ident()
        try:
            self._serve(worker)
        except TaskAbandoned:
            pass  # the interruption surfaced after the task had ended; this thread was given up on
        finally:
            with self._lock:
                self._workers.discard(worker)
                self._abandoned.discard(worker)

    def _serve(self, worker: _Worker) -> None:
        get = self._queue.get
        completed = self._completed
        lock = worker.lock
        while True:
            item = get()
            if item is _STOP:
                return
            fut, func, args, kwargs = item
            del item
            with lock:  # shutdown() looks at worker.task under this lock after setting _shutdown
                if self._shutdown:
                    fut.cancel()  # taken just as the pool shut down: it never starts
                    started = False
                else:
                    started = fut.set_running_or_notify_cancel()
                    worker.task = fut if started else None
            if not started:
                next(completed)
                continue
            timed = split_walltime(func)
            deadline = None
            if timed is not None:
                func, walltime = timed
                if walltime <= 0:
                    with lock:
                        worker.task = None
                    next(completed)
                    fut.set_exception(walltime_error(func, walltime))
                    continue
                deadline = self._deadlines().add(walltime, partial(self._expire, worker, fut, func, walltime))
            try:
                outcome = func(*args, **kwargs)
                ok = True
            except BaseException as exc:
                outcome, ok = exc, False
            with lock:
                worker.task = None
                abandoned = worker.abandoned
            if deadline is not None:
                self._deadlines().cancel(deadline)
            if abandoned:
                inject(worker.ident, None)  # withdraw the interruption if it has not surfaced yet
                return
            next(completed)
            if ok:
                fut.set_result(outcome)
            else:
                fut.set_exception(outcome)
            del fut, func, args, kwargs, outcome

    # ------------------------------------------------------- giving up on tasks

    def _deadlines(self) -> DeadlineWatchdog:
        watchdog = self._watchdog
        if watchdog is None:
            with self._lock:
                if self._watchdog is None:
                    prefix = self.thread_name_prefix or f"flowlib-{self.label}"
                    self._watchdog = DeadlineWatchdog(f"{prefix}_walltime")
                watchdog = self._watchdog
        return watchdog

    def _abandon(self, worker: _Worker, fut: Future[Any]) -> bool:
        """Give up on ``worker`` if it still runs ``fut``: interrupt it and stop counting it."""
        with worker.lock:
            if worker.task is not fut or worker.abandoned:
                return False
            worker.abandoned = True
            inject(worker.ident, TaskAbandoned)
        with self._lock:
            self._workers.discard(worker)
            self._abandoned.add(worker)
        return True

    def _expire(self, worker: _Worker, fut: Future[Any], func: Callable[..., Any], walltime: float) -> None:
        if not self._abandon(worker, fut):
            return
        with self._lock:
            if not self._shutdown:
                self._spawn_locked()  # the pool gets its capacity back at once
            stuck = len(self._abandoned)
        logger.warning(
            "%s: %s passed its walltime of %s s; its thread %s was interrupted and replaced "
            "(%d abandoned thread(s) still running)",
            self.label,
            getattr(func, "__name__", "task"),
            walltime,
            worker.thread.name if worker.thread else "?",
            stuck,
        )
        next(self._completed)
        fut.set_exception(walltime_error(func, walltime))

    def shutdown(self, block: bool = True) -> None:
        """Cancel the queued tasks, fail and interrupt the running ones, stop the threads.

        Queued tasks never start: their futures are cancelled at once. Running tasks'
        futures fail with BadStateException and their threads get an asynchronous
        exception. With ``block``, wait up to ``shutdown_timeout`` seconds for the
        threads to end; any still inside a blocking call are left as daemon threads.
        """
        with self._lock:
            if self._shutdown:
                return
            self._shutdown = True
            workers = list(self._workers)
        cancelled = self._cancel_queued()
        for _ in workers:
            self._queue.put(_STOP)
        interrupted = []
        for worker in workers:
            fut = worker.task
            if fut is not None and self._abandon(worker, fut):
                interrupted.append(fut)
        for fut in interrupted:
            next(self._completed)
            fut.set_exception(
                BadStateException(self, "the executor shut down while the task was running; its thread was interrupted")
            )
        if cancelled or interrupted:
            logger.info(
                "%s shut down: %d queued task(s) cancelled, %d running interrupted",
                self.label,
                cancelled,
                len(interrupted),
            )
        if self._watchdog is not None:
            self._watchdog.close()
        if block:
            self._join(workers)

    def _cancel_queued(self) -> int:
        cancelled = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except Empty:
                return cancelled
            if item is not _STOP and item[0].cancel():
                next(self._completed)
                cancelled += 1

    def _join(self, workers: list[_Worker]) -> None:
        deadline = time.monotonic() + self.shutdown_timeout
        current = threading.current_thread()
        for worker in workers:
            thread = worker.thread
            if thread is None or thread is current:
                continue
            thread.join(max(0.0, deadline - time.monotonic()))
            fut = worker.task
            if thread.is_alive() and fut is not None and self._abandon(worker, fut):
                next(self._completed)  # started in the instant before shutdown looked
                fut.set_exception(BadStateException(self, "the executor shut down while the task was running"))
        with self._lock:
            stuck = [w.thread.name for w in self._abandoned if w.thread is not None and w.thread.is_alive()]
        if stuck:
            logger.warning(
                "%s: %d thread(s) still inside a blocking call after shutdown, left running as daemon threads: %s",
                self.label,
                len(stuck),
                ", ".join(sorted(stuck)),
            )

    def task_slots(self) -> int:
        """The number of threads."""
        return self.max_threads

    def statistics(self) -> ExecutorStatistics:
        """Tasks submitted and completed so far, and the number of threads."""
        return ExecutorStatistics(self.label, _peek(self._submitted), _peek(self._completed), len(self._workers))

    @property
    def abandoned_threads(self) -> int:
        """Threads given up on (past a walltime, or running at shutdown) that have not ended yet."""
        with self._lock:
            return len(self._abandoned)


def _peek(counter: itertools.count[int]) -> int:
    # itertools.count is the thread-safe counter of CPython; its repr is its next value.
    return int(repr(counter)[6:-1])
