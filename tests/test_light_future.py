"""LightFuture keeps no lists it does not need, and still behaves as a concurrent.futures.Future."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import gc
import logging
import threading

import pytest

from flowlib.dataflow.futures import LightFuture

pytestmark = pytest.mark.timeout(30)


def test_a_future_with_one_callback_and_no_waiter_holds_no_list() -> None:
    fut: LightFuture[int] = LightFuture()
    seen: list[int] = []
    fut.add_done_callback(lambda f: seen.append(f.result()))
    assert not [ref for ref in gc.get_referents(fut) if type(ref) is list]
    assert "_waiters" not in vars(fut)
    fut.set_result(3)
    assert seen == [3]
    assert "_waiters" not in vars(fut)  # finishing did not make one either


def test_callbacks_run_in_order_once_and_late_ones_at_once() -> None:
    fut: LightFuture[str] = LightFuture()
    calls: list[str] = []
    for name in ("a", "b", "c"):
        fut.add_done_callback(lambda f, name=name: calls.append(name))
    fut.set_result("x")
    assert calls == ["a", "b", "c"]
    fut.add_done_callback(lambda f: calls.append("late"))
    assert calls == ["a", "b", "c", "late"]


def test_a_failing_callback_is_logged_and_the_next_still_runs(caplog: pytest.LogCaptureFixture) -> None:
    fut: LightFuture[int] = LightFuture()
    calls: list[int] = []

    def bad(f: cf.Future[int]) -> None:
        raise RuntimeError("callback failed")

    fut.add_done_callback(bad)
    fut.add_done_callback(lambda f: calls.append(1))
    with caplog.at_level(logging.ERROR, logger="concurrent.futures"):
        fut.set_result(1)
    assert calls == [1]
    assert "exception calling callback" in caplog.text


def test_wait_on_pending_and_finished_futures() -> None:
    finished: LightFuture[int] = LightFuture()
    finished.set_result(1)
    pending: LightFuture[int] = LightFuture()
    timer = threading.Timer(0.05, pending.set_result, args=(2,))
    timer.start()
    try:
        done, not_done = cf.wait([finished, pending], timeout=10)
    finally:
        timer.join()
    assert done == {finished, pending} and not not_done
    assert vars(pending)["_waiters"] == []  # the waiter was installed on a real list and removed again
    assert "_waiters" not in vars(finished)


def test_wait_first_completed_and_first_exception_do_not_deadlock() -> None:
    futures: list[LightFuture[int]] = [LightFuture() for _ in range(3)]
    done, not_done = cf.wait(futures, timeout=0.01, return_when=cf.FIRST_COMPLETED)
    assert not done and len(not_done) == 3
    assert all(vars(f)["_waiters"] == [] for f in futures)
    futures[1].set_exception(ValueError("no"))
    done, _ = cf.wait(futures, timeout=10, return_when=cf.FIRST_EXCEPTION)
    assert done == {futures[1]}


def test_as_completed_and_cancel() -> None:
    futures: list[LightFuture[int]] = [LightFuture() for _ in range(3)]
    futures[0].set_result(0)
    assert futures[2].cancel()
    futures[2].set_running_or_notify_cancel()

    def finish() -> None:
        futures[1].set_result(1)

    timer = threading.Timer(0.05, finish)
    timer.start()
    try:
        order = list(cf.as_completed(futures, timeout=10))
    finally:
        timer.join()
    assert set(order) == set(futures)
    assert futures[2].cancelled()


def test_a_cancelled_future_runs_its_callbacks_and_wakes_wait() -> None:
    fut: LightFuture[int] = LightFuture()
    calls: list[bool] = []
    fut.add_done_callback(lambda f: calls.append(f.cancelled()))
    waiter = threading.Thread(target=lambda: cf.wait([fut], timeout=10))
    waiter.start()
    assert fut.cancel()
    fut.set_running_or_notify_cancel()
    waiter.join(10)
    assert not waiter.is_alive()
    assert calls == [True]
    fut.add_done_callback(lambda f: calls.append(f.cancelled()))
    assert calls == [True, True]


def test_result_from_another_thread_and_await() -> None:
    fut: LightFuture[int] = LightFuture()
    threading.Timer(0.02, fut.set_result, args=(7,)).start()
    assert fut.result(timeout=10) == 7

    async def main() -> int:
        other: LightFuture[int] = LightFuture()
        asyncio.get_running_loop().call_later(0.01, other.set_result, 8)
        return await other

    assert asyncio.run(main()) == 8
