"""AppFuture.cancel(): pending tasks are cancelled and fail their dependents."""

from __future__ import annotations

import threading
from concurrent.futures import CancelledError, Future

import pytest

from flowlib import python_app
from flowlib.dataflow.errors import DependencyError
from flowlib.dataflow.states import States


@pytest.fixture(params=["threads"])
def executor_name(request: pytest.FixtureRequest) -> str:
    """These tests pass thread objects into tasks: thread pool only (htex has its own)."""
    return str(request.param)


pytestmark = pytest.mark.timeout(30)


@python_app
def identity(x):
    return x


@python_app
def block_on(event_path_future, started: threading.Event, release: threading.Event):
    started.set()
    release.wait(10)
    return "ran"


def test_cancel_pending_task_fails_dependents(dfk):
    gate: Future[int] = Future()
    waiting = identity(gate)
    downstream = identity(waiting)
    assert waiting.cancel() is True
    assert waiting.cancelled()
    assert waiting.task_status() == "cancelled"
    with pytest.raises(CancelledError):
        waiting.result()
    with pytest.raises(DependencyError) as info:
        downstream.result(timeout=5)
    ((exc, name),) = info.value.dependent_exceptions_tids
    assert name == f"task {waiting.tid}" and isinstance(exc, CancelledError)
    gate.set_result(1)  # the gate firing later must not resurrect the task
    assert dfk.task_state_counts[States.cancelled] == 1
    assert waiting.tid not in dfk.tasks


def test_cancel_running_thread_task_returns_false(dfk):
    started, release = threading.Event(), threading.Event()
    fut = block_on(None, started, release)
    assert started.wait(5)
    assert fut.cancel() is False
    release.set()
    assert fut.result(timeout=5) == "ran"


def test_cancel_finished_task_returns_false(dfk):
    fut = identity(3)
    assert fut.result(timeout=5) == 3
    assert fut.cancel() is False
    assert fut.result() == 3


def test_cancel_is_idempotent(dfk):
    gate: Future[int] = Future()
    fut = identity(gate)
    assert fut.cancel() and fut.cancel()
    gate.set_result(0)


def test_cancel_queued_task_in_thread_pool(tmp_path):
    """With one busy thread, a queued task can still be cancelled."""
    import flowlib
    from flowlib.config import Config
    from flowlib.executors.threads import ThreadPoolExecutor

    started, release = threading.Event(), threading.Event()
    with flowlib.load(Config(run_dir=str(tmp_path), executors=[ThreadPoolExecutor(max_threads=1)])):
        busy = block_on(None, started, release)
        assert started.wait(5)
        queued = identity(1)
        assert queued.task_status() == "launched"
        assert queued.cancel() is True
        assert queued.cancelled()
        release.set()
        assert busy.result(timeout=5) == "ran"
