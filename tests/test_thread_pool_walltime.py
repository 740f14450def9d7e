"""Thread-pool walltime: the future fails on time and the pool gets its thread back."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from conftest import try_assert

import flowlib
from flowlib import python_app
from flowlib.app.errors import AppTimeout
from flowlib.config import Config
from flowlib.dataflow.dflow import DataFlowKernel
from flowlib.executors.thread_interrupt import DeadlineWatchdog
from flowlib.executors.threads import ThreadPoolExecutor

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(label="tp", max_threads=1)


@pytest.fixture
def kernel(tmp_path, pool: ThreadPoolExecutor) -> Iterator[DataFlowKernel]:
    dfk = flowlib.load(Config(executors=[pool], run_dir=str(tmp_path)))
    try:
        yield dfk
    finally:
        if not dfk.cleanup_called:
            dfk.cleanup()
        flowlib.clear()


@python_app
def nap(seconds, walltime=None):
    time.sleep(seconds)
    return seconds


@python_app
def wait_for(event, walltime=None):
    event.wait()
    return "released"


@python_app
def spin_swallowing(walltime=None):
    while True:  # pure Python; swallows every ordinary exception
        try:
            sum(range(100))
        except Exception:  # noqa: S110
            pass


@python_app
def where():
    return threading.current_thread().name


def _timed_failure(fut) -> tuple[BaseException | None, float]:
    start = time.monotonic()
    exc = fut.exception(timeout=20)
    return exc, time.monotonic() - start


def test_sleep_past_walltime_fails_on_time_and_capacity_returns(kernel, pool):
    fut = nap(2, walltime=0.2)
    exc, elapsed = _timed_failure(fut)
    assert isinstance(exc, AppTimeout) and "nap exceeded its walltime of 0.2 s" in str(exc)
    assert elapsed < 1.5, f"AppTimeout came after {elapsed:.2f} s"
    assert fut.task_status() == "failed"
    # the only thread is still inside time.sleep, yet a new task runs at once on its replacement
    assert pool.abandoned_threads == 1
    start = time.monotonic()
    assert nap(0, walltime=5).result(timeout=10) == 0
    assert time.monotonic() - start < 1.0
    assert pool.statistics().workers == 1
    try_assert(lambda: pool.abandoned_threads == 0, timeout=10, message="the sleeping thread never ended")


def test_event_wait_past_walltime_fails_and_with_exits(tmp_path):
    release = threading.Event()
    start = time.monotonic()
    try:
        with flowlib.load(Config(executors=[ThreadPoolExecutor(max_threads=2)], run_dir=str(tmp_path))):
            fut = wait_for(release, walltime=1)
            exc = fut.exception(timeout=20)
            waited = time.monotonic() - start
        left = time.monotonic() - start
        assert isinstance(exc, AppTimeout)
        assert 0.9 < waited < 3.0, f"AppTimeout after {waited:.2f} s"
        assert left - waited < 2.0, "leaving `with` waited for the stuck thread"
    finally:
        release.set()  # the abandoned thread ends now


def test_python_code_is_really_interrupted(kernel, pool):
    fut = spin_swallowing(walltime=0.3)
    exc, elapsed = _timed_failure(fut)
    assert isinstance(exc, AppTimeout) and elapsed < 2.0
    # the interruption is a BaseException: `except Exception` in the task cannot swallow it
    try_assert(lambda: pool.abandoned_threads == 0, timeout=5, message="the spinning thread was never stopped")


def test_replacement_thread_serves_queued_tasks(kernel, pool):
    release = threading.Event()
    try:
        stuck = wait_for(release, walltime=0.3)
        queued = [where() for _ in range(3)]  # queued behind the stuck task on the single thread
        assert isinstance(stuck.exception(timeout=20), AppTimeout)
        names = {f.result(timeout=10) for f in queued}
        assert names == {"flowlib-tp_1"}, names  # the replacement, not the abandoned flowlib-tp_0
    finally:
        release.set()


def test_task_that_finishes_in_time_keeps_its_result(kernel, pool):
    assert [nap(0.01, walltime=10).result(timeout=10) for _ in range(5)] == [0.01] * 5
    assert pool.abandoned_threads == 0
    assert isinstance(nap(0, walltime=0).exception(timeout=10), AppTimeout)  # no time at all


def test_watchdog_calls_in_deadline_order_and_skips_cancelled():
    dog = DeadlineWatchdog("flowlib-test-watchdog")
    calls: list[str] = []
    done = threading.Event()
    try:
        dog.add(0.2, lambda: (calls.append("late"), done.set()))
        skipped = dog.add(0.05, lambda: calls.append("cancelled"))
        dog.add(0.1, lambda: calls.append("early"))
        dog.cancel(skipped)
        dog.cancel(skipped)  # twice is harmless
        assert done.wait(10)
        assert calls == ["early", "late"]
        assert dog.pending() == 0
    finally:
        dog.close()
    with pytest.raises(RuntimeError, match="closed"):
        dog.add(1, lambda: None)


def test_watchdog_compacts_cancelled_entries():
    dog = DeadlineWatchdog("flowlib-test-watchdog")
    try:
        entries = [dog.add(3600, lambda: None) for _ in range(200)]
        for entry in entries[:150]:
            dog.cancel(entry)
        assert dog.pending() == 50
        assert len(dog._heap) < 200  # rebuilt once more than half was cancelled
    finally:
        dog.close()


def test_shutdown_timeout_is_validated():
    with pytest.raises(TypeError, match="shutdown_timeout"):
        ThreadPoolExecutor(shutdown_timeout="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shutdown_timeout"):
        ThreadPoolExecutor(shutdown_timeout=-1)
