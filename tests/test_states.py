"""The task state table, illegal transitions, state counts, and record release."""

from __future__ import annotations

import gc
import sys
import weakref
from concurrent.futures import Future

import pytest

from flowlib import python_app
from flowlib.dataflow.states import FINAL_FAILURE_STATES, FINAL_STATES, TRANSITIONS, States
from flowlib.dataflow.taskrecord import TaskRecord, check_transition
from flowlib.errors import InternalConsistencyError


@pytest.fixture(params=["threads"])
def executor_name(request: pytest.FixtureRequest) -> str:
    """These tests pass thread objects into tasks: thread pool only (htex has its own)."""
    return str(request.param)


pytestmark = pytest.mark.timeout(60)


def make_record() -> TaskRecord:
    return TaskRecord(1, print, "print", "", (), {}, "exec")


def test_final_states_have_no_way_out():
    for src, _dst in TRANSITIONS:
        assert src not in FINAL_STATES
    assert FINAL_FAILURE_STATES < FINAL_STATES


def test_every_state_is_documented():
    import inspect

    source = inspect.getsource(States)
    for state in States:
        assert f"{state.name} = " in source
        assert source.split(f"{state.name} = ", 1)[1].split("\n", 2)[1].strip().startswith('"""')


def test_illegal_transition_raises_with_history():
    record = make_record()
    check_transition(record, States.pending)
    check_transition(record, States.launched)
    check_transition(record, States.exec_done)
    with pytest.raises(
        InternalConsistencyError, match="exec_done -> launched; history: unsched -> pending -> launched -> exec_done"
    ):
        check_transition(record, States.launched)


def test_record_reads_as_mapping():
    record = make_record()
    assert record["id"] == 1 and record["func_name"] == "print" and record["fail_count"] == 0
    assert record.get("missing", 5) == 5
    with pytest.raises(KeyError):
        record["missing"]


@python_app
def identity(x):
    return x


def test_state_counts_after_a_run(dfk):
    gate: Future[int] = Future()
    waiting = [identity(gate) for _ in range(3)]
    done = [identity(i) for i in range(5)]
    for f in done:
        f.result(timeout=5)
    assert dfk.task_state_counts[States.pending] == 3
    gate.set_result(1)
    for f in waiting:
        f.result(timeout=5)
    counts = {s: n for s, n in dfk.task_state_counts.items() if n}
    assert counts == {States.exec_done: 8}


def test_completed_records_are_released(dfk):
    futs = [identity(i) for i in range(200)]
    refs = [weakref.ref(f.task_record) for f in futs]
    assert [f.result(timeout=10) for f in futs] == list(range(200))
    assert dfk.tasks == {}
    del futs
    gc.collect()
    assert sum(r() is not None for r in refs) == 0


def test_holding_the_last_future_of_a_chain_keeps_only_it(dfk):
    fut = identity(0)
    first = weakref.ref(fut.task_record)
    for _ in range(100):
        fut = identity(fut)
    assert fut.result(timeout=10) == 0
    gc.collect()
    assert first() is None


def test_long_chain_of_failures_does_not_grow_the_stack(dfk):
    @python_app
    def boom():
        raise ValueError("head")

    depths = []

    def record_depth(_fut):
        depths.append(len(_stack()))

    fut = boom()
    for _ in range(2000):
        fut = identity(fut)
        fut.add_done_callback(record_depth)
    with pytest.raises(Exception, match="Dependency failure"):
        fut.result(timeout=20)
    assert max(depths) < 100


def _stack():
    frames = []
    frame = sys._getframe()
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    return frames


def test_finished_tasks_leave_no_reference_cycles(dfk):
    """Finished tasks are freed by reference counting alone, so the cyclic GC has nothing to do."""
    identity(0).result(timeout=5)
    gc.collect()
    gc.disable()
    try:
        futures = [identity(i) for i in range(500)]
        chained = identity(futures[-1])
        assert chained.result(timeout=10) == 499
        assert [f.result(timeout=10) for f in futures] == list(range(500))
        del futures, chained
        assert gc.collect() == 0
    finally:
        gc.enable()
