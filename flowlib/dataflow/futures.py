"""AppFuture: the future an app call returns.

An :class:`AppFuture` is a :class:`concurrent.futures.Future` plus the identity of
its task. It is made lighter than a plain Future (whose ``threading.Condition``
costs about 1.4 KB) by a slotted condition that allocates its waiter list only
when somebody actually waits: a campaign keeps hundreds of thousands in flight.
For the same reason a future keeps a single done-callback as itself, not in a
list, and makes its ``concurrent.futures.wait`` waiter list only when such a
wait installs a waiter: every list is one more object for the garbage collector
to walk while the task is in flight.
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import Callable, Generator
from concurrent.futures import Future, InvalidStateError
from concurrent.futures._base import CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED, PENDING
from concurrent.futures._base import LOGGER as _LOGGER
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from flowlib.dataflow.taskrecord import TaskRecord

from _thread import RLock, allocate_lock

T = TypeVar("T")


class _FutureCondition:
    """The part of ``threading.Condition`` that ``Future`` uses, in a fraction of the memory."""

    __slots__ = ("_lock", "_waiters")

    def __init__(self) -> None:
        # reentrant, as threading.Condition's default: concurrent.futures.wait holds every future's
        # condition while it asks each whether it is cancelled (which takes the condition again)
        self._lock = RLock()
        self._waiters: list[Any] | None = None

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def wait(self, timeout: float | None = None) -> bool:
        waiter = allocate_lock()
        waiter.acquire()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        self._lock.release()
        got = False
        try:
            if timeout is None:
                got = waiter.acquire()
            elif timeout > 0:
                got = waiter.acquire(True, timeout)
            else:
                got = waiter.acquire(False)
            return got
        finally:
            self._lock.acquire()
            if not got and self._waiters is not None:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass

    def notify(self, n: int = 1) -> None:
        waiters = self._waiters
        while waiters and n > 0:
            waiters.pop(0).release()
            n -= 1

    def notify_all(self) -> None:
        waiters = self._waiters
        if waiters:
            self._waiters = None
            for waiter in waiters:
                waiter.release()


class _NoWaiters:
    """The waiter list of a finished future that never had one: empty, and it stays empty.

    ``Future.set_result`` reads the list only after marking the future finished,
    and ``concurrent.futures.wait`` adds (and later removes) its waiter on every
    future it is given, finished ones included; a finished future never wakes a
    waiter again, so neither needs a list of its own.
    """

    __slots__ = ()

    def __iter__(self) -> Any:
        return iter(())

    def __len__(self) -> int:
        return 0

    def append(self, waiter: Any) -> None:
        pass

    def remove(self, waiter: Any) -> None:
        pass


_NO_WAITERS = _NoWaiters()
_DONE = (FINISHED, CANCELLED_AND_NOTIFIED)
_SETTLED = frozenset((CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED))


class _LazyWaiters:
    """``Future._waiters``, made on first use while the future is unfinished (always under its condition)."""

    def __get__(self, future: Any, owner: Any = None) -> Any:
        if future is None:
            return self
        if future._state in _DONE:
            return _NO_WAITERS
        waiters: list[Any] = []
        future._waiters = waiters  # an instance attribute: found before this descriptor from now on
        return waiters


class LightFuture(Future[T]):
    """A ``concurrent.futures.Future`` with a compact condition; behaves exactly like one."""

    _waiters = _LazyWaiters()

    def __init__(self) -> None:  # Future.__init__ would build a heavy threading.Condition
        self._condition = _FutureCondition()  # type: ignore[assignment]
        self._state = PENDING
        self._result = None
        self._exception = None
        # None, one callable, or a list of them (several callbacks)
        self._done_callbacks: Any = None

    def add_done_callback(self, fn: Callable[[Future[T]], object]) -> None:
        """Call ``fn(self)`` when the future finishes (at once if it has), as ``Future.add_done_callback``."""
        with self._condition:
            if self._state not in _DONE and self._state != CANCELLED:
                callbacks = self._done_callbacks
                if callbacks is None:
                    self._done_callbacks = fn
                elif type(callbacks) is list:
                    callbacks.append(fn)
                else:
                    self._done_callbacks = [callbacks, fn]
                return
        try:
            fn(self)
        except Exception:
            _LOGGER.exception("exception calling callback for %r", self)

    def done(self) -> bool:
        """Whether the future is finished or cancelled (a single read: the finished states are final)."""
        return self._state in _SETTLED

    def result(self, timeout: float | None = None) -> T:
        """The result, waiting up to ``timeout`` seconds, as ``Future.result``."""
        if self._state == FINISHED and self._exception is None:  # finished: no need to take the lock
            return self._result  # type: ignore[return-value]
        return super().result(timeout)

    # set_result and set_exception do what Future's do, holding the condition's lock directly:
    # an executor finishes tens of thousands of futures a second, and Future's versions enter the
    # condition and wake waiters through Python-level calls even when nobody waits.
    def set_result(self, result: T) -> None:
        """Finish the future with ``result``, as ``Future.set_result`` (InvalidStateError if already done)."""
        self._finish("_result", result, "add_result")

    def set_exception(self, exception: BaseException | None) -> None:
        """Finish the future with ``exception``, as ``Future.set_exception`` (InvalidStateError if already done)."""
        self._finish("_exception", exception, "add_exception")

    def _finish(self, outcome: str, value: Any, tell_waiter: str) -> None:
        condition = self._condition
        with condition._lock:  # type: ignore[attr-defined]
            if self._state in _SETTLED:
                raise InvalidStateError(f"{self._state}: {self!r}")
            setattr(self, outcome, value)
            self._state = FINISHED
            waiters = self.__dict__.get("_waiters")
            if waiters:
                for waiter in waiters:
                    getattr(waiter, tell_waiter)(self)
            if condition._waiters:  # type: ignore[attr-defined]
                condition.notify_all()
        if self._done_callbacks is not None:
            self._invoke_callbacks()

    def _invoke_callbacks(self) -> None:
        # Unlike Future, drop the callbacks once called: they hold the dependents'
        # task records, and keeping them would tie finished tasks into cycles.
        callbacks, self._done_callbacks = self._done_callbacks, None
        if callbacks is None:
            return
        for callback in callbacks if type(callbacks) is list else (callbacks,):
            try:
                callback(self)
            except Exception:
                _LOGGER.exception("exception calling callback for %r", self)

    def __await__(self) -> Generator[Any, None, T]:
        return asyncio.wrap_future(self).__await__()

    def __getitem__(self, key: Any) -> LiftedFuture[Any]:
        return derive_future(self, operator.itemgetter(key))

    def __getattr__(self, name: str) -> LiftedFuture[Any]:
        # Only called for attributes that do not exist: lift them onto the result.
        if name.startswith("_"):
            raise AttributeError(name)
        return derive_future(self, operator.attrgetter(name))


def cancel_and_notify(fut: Future[Any]) -> bool:
    """Cancel ``fut`` as ``Future.cancel`` does, and wake ``concurrent.futures.wait``/``as_completed``.

    ``Future.cancel`` alone leaves the state ``CANCELLED``, which ``wait()`` does not
    count as done until an executor calls ``set_running_or_notify_cancel``. No
    executor ever does that for the kernel's futures, so it is done here. Only for
    futures no executor will start.
    """
    if not Future.cancel(fut):
        return False
    fut.set_running_or_notify_cancel()  # CANCELLED -> CANCELLED_AND_NOTIFIED; returns False
    return True


class LiftedFuture(LightFuture[T]):
    """The future of ``fut[key]`` or ``fut.attr``: resolves when its parent does."""

    def cancel(self) -> bool:
        return cancel_and_notify(self)


def derive_future(parent: Future[Any], op: Callable[[Any], Any]) -> LiftedFuture[Any]:
    """A future holding ``op(parent.result())``, or the parent's exception."""
    child: LiftedFuture[Any] = LiftedFuture()

    def _copy(fut: Future[Any]) -> None:
        if fut.cancelled():
            child.cancel()
            return
        exc = fut.exception()
        if exc is not None:
            child.set_exception(exc)
            return
        try:
            child.set_result(op(fut.result()))
        except Exception as e:
            child.set_exception(e)

    parent.add_done_callback(_copy)
    return child


class AppFuture(LightFuture[T]):
    """The future returned by calling an app.

    Behaves as a ``concurrent.futures.Future`` (``result()``, ``exception()``,
    ``done()``, ``add_done_callback()``), can be awaited in asyncio code, and adds:

    - ``tid``: the task id; ``task_record``: the kernel's record of the task;
    - ``outputs``: DataFutures for the files named in ``outputs=``;
    - ``stdout`` / ``stderr``: the stream spec as given, the generated path for
      ``AUTO_LOGNAME``, or a DataFuture when a File was given;
    - ``task_status()``: the name of the task's current state;
    - ``fut["key"]`` / ``fut.attr``: a new future of that item or attribute of the result.

    ``cancel()`` stops a task that has not started; see :meth:`cancel`.
    """

    _outputs: list[Any] = []
    _stdout: Any = None
    _stderr: Any = None

    def __init__(self, task_record: TaskRecord) -> None:
        super().__init__()
        self.task_record = task_record

    @property
    def tid(self) -> int:
        """The task id."""
        return self.task_record.id

    @property
    def outputs(self) -> list[Any]:
        """DataFutures for the files named in the call's ``outputs=`` keyword."""
        return list(self._outputs)

    @property
    def stdout(self) -> Any:
        """The task's stdout: the spec given, the AUTO_LOGNAME path, or a DataFuture."""
        return self._stdout

    @property
    def stderr(self) -> Any:
        """The task's stderr: the spec given, the AUTO_LOGNAME path, or a DataFuture."""
        return self._stderr

    def task_status(self) -> str:
        """The name of the task's current state, e.g. ``"pending"`` or ``"exec_done"``."""
        return self.task_record.status.name

    def cancel(self) -> bool:
        """Cancel the task if it has not started.

        A task still waiting for its dependencies, or queued in its executor, is
        cancelled: this future raises ``CancelledError`` and tasks depending on it
        fail with ``DependencyError``. A task already running is not stopped by the
        thread pool, and ``False`` is returned.
        """
        dfk = self.task_record.dfk
        if dfk is None:
            return cancel_and_notify(self)
        return bool(dfk._cancel_task(self.task_record))

    def _set_cancelled(self) -> bool:
        return cancel_and_notify(self)

    def __repr__(self) -> str:
        return f"<AppFuture task {self.task_record.id} {self.task_record.func_name} state={self._state.lower()}>"
