"""Stopping a Python app that runs past its ``walltime``.

The kernel wraps an app called with ``walltime=`` as
``functools.partial(run_with_walltime, func, walltime)``.

- In a worker process's main thread (the high-throughput executor) a SIGALRM timer
  interrupts the function, even inside ``time.sleep`` or a lock wait.
- The thread pool unwraps the call (:func:`split_walltime`) and enforces the limit
  itself: the future fails with AppTimeout at the deadline whatever the function is
  doing, and the thread is replaced (see :mod:`flowlib.executors.thread_interrupt`).
- In any other thread the timeout is delivered as an asynchronous exception, which
  Python raises at the next bytecode boundary: a function blocked inside a long C
  call is stopped when that call returns.
"""

from __future__ import annotations

import ctypes
import functools
import signal
import threading
from collections.abc import Callable
from typing import Any

from flowlib.app.errors import AppTimeout


class _WalltimeExpired(AppTimeout):
    """Injected into the running function; replaced by a descriptive AppTimeout."""


def _set_async_exc(thread_id: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc else None)


def walltime_error(func: Callable[..., Any], walltime: float) -> AppTimeout:
    """The AppTimeout for ``func`` having run past ``walltime`` seconds."""
    return AppTimeout(f"{getattr(func, '__name__', 'app')} exceeded its walltime of {walltime} s")


def split_walltime(call: Callable[..., Any]) -> tuple[Callable[..., Any], float] | None:
    """``(func, walltime)`` if ``call`` is the kernel's walltime wrapper of ``func``, else None."""
    if type(call) is functools.partial and call.func is run_with_walltime and len(call.args) == 2:
        func, walltime = call.args
        if not call.keywords and isinstance(walltime, int | float):
            return func, walltime
    return None


def run_with_walltime(func: Callable[..., Any], walltime: float, /, *args: Any, **kwargs: Any) -> Any:
    """Call ``func(*args, **kwargs)``; raise AppTimeout if it runs longer than ``walltime`` seconds."""
    message = str(walltime_error(func, walltime))
    if walltime <= 0:
        raise AppTimeout(message)
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        return _run_with_alarm(func, walltime, message, args, kwargs)
    return _run_with_async_exc(func, walltime, message, args, kwargs)


def _run_with_alarm(func: Callable[..., Any], walltime: float, message: str, args: Any, kwargs: Any) -> Any:
    def on_alarm(signum: int, frame: Any) -> None:
        raise _WalltimeExpired()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, walltime)
    try:
        return func(*args, **kwargs)
    except _WalltimeExpired:
        raise AppTimeout(message) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _run_with_async_exc(func: Callable[..., Any], walltime: float, message: str, args: Any, kwargs: Any) -> Any:
    thread_id = threading.get_ident()
    lock = threading.Lock()
    state = {"finished": False, "fired": False}

    def fire() -> None:
        with lock:
            if not state["finished"]:
                state["fired"] = True
                _set_async_exc(thread_id, _WalltimeExpired)

    timer = threading.Timer(walltime, fire)
    timer.daemon = True
    timer.start()
    try:
        try:
            result = func(*args, **kwargs)
        finally:
            with lock:
                state["finished"] = True
                if state["fired"]:
                    _set_async_exc(thread_id, None)  # drop it if it has not been raised yet
            timer.cancel()
    except _WalltimeExpired:
        raise AppTimeout(message) from None
    if state["fired"]:
        raise AppTimeout(message)
    return result
