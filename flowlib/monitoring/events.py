"""Task state-change events for programs: a small publish/subscribe bus per kernel.

::

    DataFlowKernel._transition (under the kernel lock)
        | publish(): one tuple appended to a bounded deque, nothing else
        v
    EventBus deque --(dispatcher thread, every `interval` s)--> TaskEvent objects
        |                                                        |
        +--> subscribe(callback): callback(event), per event     +--> batch listeners
             (progress bars, user code)                              (the monitoring router)

Nothing on the submit or completion path waits for a subscriber: the kernel only
appends to a deque, and a dispatcher thread (started by the first subscription)
builds the :class:`TaskEvent` records and calls the subscribers. A subscriber that
raises is logged and unsubscribed; it never reaches the kernel. When the deque is
full (subscribers far behind), new events are dropped and counted in
:attr:`EventBus.dropped`, never hidden.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from flowlib.dataflow.states import States
    from flowlib.dataflow.taskrecord import TaskRecord

logger = logging.getLogger(__name__)

DEFAULT_MAX_PENDING = 1_000_000
"""How many undelivered events a bus holds before it starts dropping (and counting) new ones."""


class TaskEvent(NamedTuple):
    """One state change of one task, as delivered to subscribers (an immutable record)."""

    task_id: int
    """The task's id within its kernel (``AppFuture.tid``)."""
    app: str
    """The app's (function's) name."""
    executor: str
    """The label of the executor the task is assigned to."""
    old: States
    """The state the task left."""
    new: States
    """The state the task entered."""
    time: float
    """When it happened (``time.time()``)."""
    try_id: int
    """0 for the first try, then 1, 2, ... after retries."""
    exception: BaseException | None = None
    """The failure, for transitions to ``failed``, ``dep_fail`` and ``fail_retryable``."""
    record: TaskRecord | None = None
    """The kernel's record of the task (read-only use; it may have moved on since)."""
    depends: Sequence[Any] = ()
    """The futures the task waits for (as given at submission)."""
    exec_future: Any = None
    """The executor's future of the try at the time of the change (None before launch); a
    high-throughput executor's carries ``worker_times`` when monitoring is on."""


Callback = Callable[[TaskEvent], None]
BatchCallback = Callable[[Sequence[TaskEvent]], None]


class Subscription:
    """A handle returned by :meth:`EventBus.subscribe`; ``cancel()`` (or leaving ``with``) stops delivery."""

    def __init__(self, bus: EventBus, callback: Callback | BatchCallback, batch: bool) -> None:
        self._bus = bus
        self.callback = callback
        self.batch = batch

    def cancel(self) -> None:
        """Stop calling the callback (events already being delivered may still arrive)."""
        self._bus._remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class EventBus:
    """The state-change feed of one kernel. See the module docstring.

    ``interval``: how often (seconds) the dispatcher delivers what has accumulated.
    ``max_pending``: undelivered events kept before new ones are dropped and counted.
    """

    def __init__(self, interval: float = 0.05, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        if interval <= 0:
            raise ValueError(f"EventBus interval must be > 0, got {interval}")
        if max_pending < 1:
            raise ValueError(f"EventBus max_pending must be >= 1, got {max_pending}")
        self.interval = interval
        self.max_pending = max_pending
        self.dropped = 0
        """Events dropped because the subscribers fell more than ``max_pending`` behind."""
        self.delivered = 0
        """Events handed to subscribers so far."""
        self._queue: collections.deque[tuple[Any, ...]] = collections.deque()
        self._subs: tuple[Subscription, ...] = ()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.active = False
        """True while someone is subscribed: the kernel publishes only then."""

    # ------------------------------------------------------------------ publishing (kernel side)

    def publish(
        self, record: TaskRecord, old: States, new: States, when: float, exception: BaseException | None = None
    ) -> None:
        """Queue one state change; O(1), no locks, no I/O (called under the kernel's lock)."""
        queue = self._queue
        if len(queue) >= self.max_pending:
            self.dropped += 1
            return
        queue.append((record, old, new, when, record.try_id, exception, record.depends, record.exec_fu))

    # ------------------------------------------------------------------ subscribing

    def subscribe(self, callback: Callback) -> Subscription:
        """Call ``callback(event)`` for every later state change, on the dispatcher thread.

        Callbacks should be quick; one that raises is logged and unsubscribed.
        """
        if not callable(callback):
            raise TypeError(f"subscribe() needs a callable, got {type(callback).__name__}")
        return self._add(Subscription(self, callback, batch=False))

    def subscribe_batches(self, callback: BatchCallback) -> Subscription:
        """Like :meth:`subscribe`, but ``callback(events)`` gets each delivered batch as a list."""
        if not callable(callback):
            raise TypeError(f"subscribe_batches() needs a callable, got {type(callback).__name__}")
        return self._add(Subscription(self, callback, batch=True))

    def _add(self, sub: Subscription) -> Subscription:
        with self._lock:
            if self._closed:
                raise RuntimeError("this kernel's event bus is closed (the kernel was cleaned up)")
            self._subs = (*self._subs, sub)
            self.active = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="flowlib-events", daemon=True)
                self._thread.start()
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subs = tuple(s for s in self._subs if s is not sub)
            self.active = bool(self._subs)

    # ------------------------------------------------------------------ dispatching

    def flush(self) -> None:
        """Deliver everything queued so far, on the calling thread's behalf (waits for the dispatcher)."""
        done = threading.Event()
        with self._lock:
            if self._thread is None or self._closed:
                return
            self._queue.append((done,))
        self._wake.set()
        done.wait(10)

    def close(self, timeout: float = 1.0) -> None:
        """Deliver what is queued, stop the dispatcher; later subscriptions are refused."""
        with self._lock:
            self._closed = True
            thread = self._thread
            self.active = False
        self._wake.set()
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                logger.warning("flowlib event dispatcher did not stop within %s s", timeout)

    def _run(self) -> None:
        queue = self._queue
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            closing = self._closed
            while queue:
                self._deliver(queue)
            if closing:
                return

    def _deliver(self, queue: collections.deque[tuple[Any, ...]]) -> None:
        events: list[TaskEvent] = []
        markers: list[threading.Event] = []
        popleft = queue.popleft
        for _ in range(len(queue)):
            item = popleft()
            if len(item) == 1:
                markers.append(item[0])
                continue
            record, old, new, when, try_id, exc, deps, exec_fu = item
            events.append(
                TaskEvent(
                    record.id, record.func_name, record.executor, old, new, when, try_id, exc, record, deps, exec_fu
                )
            )
        if events:
            for sub in self._subs:
                try:
                    if sub.batch:
                        sub.callback(events)  # type: ignore[arg-type]
                    else:
                        callback = sub.callback
                        for event in events:
                            callback(event)  # type: ignore[arg-type]
                except Exception:
                    logger.exception("event subscriber %r raised; it is unsubscribed", sub.callback)
                    self._remove(sub)
            self.delivered += len(events)
        for marker in markers:
            marker.set()
