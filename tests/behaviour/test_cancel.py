"""Cancellation: a task that has not started can be cancelled on every executor."""

from __future__ import annotations

from concurrent.futures import CancelledError, Future

import pytest

from flowlib import python_app
from flowlib.dataflow.errors import DependencyError

pytestmark = pytest.mark.timeout(60)


@python_app
def plus_one(x):
    return x + 1


def test_a_task_waiting_for_its_input_is_cancelled(dfk):
    gate: Future[int] = Future()
    waiting = plus_one(gate)
    dependent = plus_one(waiting)
    assert waiting.cancel() is True
    assert waiting.cancelled()
    with pytest.raises(CancelledError):
        waiting.result(timeout=10)
    with pytest.raises(DependencyError):
        dependent.result(timeout=10)
    gate.set_result(1)  # the input arrives after the cancellation: the task never runs
    assert plus_one(gate).result(timeout=20) == 2
    assert waiting.cancelled()


def test_a_finished_task_cannot_be_cancelled(dfk):
    done = plus_one(1)
    assert done.result(timeout=20) == 2
    assert done.cancel() is False
    assert not done.cancelled() and done.result() == 2


def test_wait_and_as_completed_return_for_cancelled_futures(dfk):
    """concurrent.futures.wait() and as_completed() count a cancelled task (and its lifted future) as done."""
    import concurrent.futures

    gate: Future[dict] = Future()
    waiting = plus_one(gate)
    lifted = waiting["key"]
    other = plus_one(1)
    assert waiting.cancel() is True
    done, not_done = concurrent.futures.wait([waiting, lifted, other], timeout=20)
    assert not not_done, not_done
    assert waiting.cancelled() and lifted.cancelled() and other.result() == 2
    assert set(concurrent.futures.as_completed([waiting, lifted], timeout=20)) == {waiting, lifted}
    gate.set_result({})
