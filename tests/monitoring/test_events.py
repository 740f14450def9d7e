"""The public event API: subscribe to task state changes of a kernel."""

from __future__ import annotations

import threading

import pytest

import flowlib
from flowlib.app.app import python_app
from flowlib.config import Config
from flowlib.dataflow.states import States
from flowlib.executors.threads import ThreadPoolExecutor
from flowlib.monitoring import EventBus, TaskEvent, subscribe
from flowlib.monitoring.hub import MonitoringHub


@python_app
def double(x):
    return 2 * x


@python_app
def explode():
    raise KeyError("nope")


@pytest.fixture
def kernel(tmp_path):
    dfk = flowlib.load(Config(run_dir=str(tmp_path), executors=[ThreadPoolExecutor(label="t", max_threads=2)]))
    yield dfk
    if not dfk.cleanup_called:
        dfk.cleanup()
    flowlib.clear()


def test_callbacks_see_every_transition_in_order(kernel):
    seen: list[TaskEvent] = []
    threads = set()

    def record(event):
        seen.append(event)
        threads.add(threading.current_thread().name)

    with subscribe(record):
        ok, bad = double(21), explode()
        assert ok.result() == 42
        with pytest.raises(KeyError):
            bad.result()
        kernel.events.flush()
    by_task: dict[int, list[tuple[States, States]]] = {}
    for ev in seen:
        by_task.setdefault(ev.task_id, []).append((ev.old, ev.new))
    assert by_task[ok.tid] == [
        (States.unsched, States.pending),
        (States.pending, States.launched),
        (States.launched, States.exec_done),
    ]
    assert by_task[bad.tid][-1] == (States.launched, States.failed)
    failure = [ev for ev in seen if ev.new is States.failed][0]
    assert isinstance(failure.exception, KeyError)
    assert failure.app == "explode" and failure.executor == "t"
    assert all(ev.time > 0 for ev in seen)
    assert threads == {"flowlib-events"}  # never the submitting or completing thread


def test_cancelled_subscription_gets_nothing_more(kernel):
    seen = []
    sub = subscribe(seen.append)
    double(1).result()
    kernel.events.flush()
    count = len(seen)
    assert count == 3
    sub.cancel()
    double(2).result()
    kernel.events.flush()
    assert len(seen) == count


def test_a_raising_callback_is_unsubscribed_and_the_workflow_goes_on(kernel, caplog):
    def broken(event):
        raise RuntimeError("subscriber bug")

    subscribe(broken)
    assert double(5).result() == 10
    kernel.events.flush()
    assert not kernel.events.active
    assert "subscriber bug" in caplog.text or "raised" in caplog.text
    assert double(6).result() == 12


def test_overflow_is_counted_not_hidden():
    bus = EventBus(interval=60, max_pending=3)
    gate = threading.Event()
    got = []

    def slow(event):
        gate.wait(5)
        got.append(event)

    bus.subscribe(slow)

    class Rec:
        id, func_name, executor, try_id, depends, exec_fu = 1, "f", "t", 0, (), None

    for _ in range(5):
        bus.publish(Rec(), States.pending, States.launched, 1.0)  # type: ignore[arg-type]
    assert bus.dropped == 2
    gate.set()
    bus.close()
    assert len(got) == 3 and bus.delivered == 3


def test_subscribe_needs_a_callable_and_an_open_bus():
    bus = EventBus()
    with pytest.raises(TypeError, match="callable"):
        bus.subscribe("print")  # type: ignore[arg-type]
    bus.close()
    with pytest.raises(RuntimeError, match="closed"):
        bus.subscribe(print)


def test_subscribe_without_a_kernel_is_a_clear_error():
    from flowlib.errors import NoDataFlowKernelError

    with pytest.raises(NoDataFlowKernelError):
        subscribe(print)


def test_monitoring_hub_is_reusable_after_cleanup(tmp_path):
    hub = MonitoringHub(flush_period=0.05)
    for _ in range(2):
        with flowlib.load(Config(run_dir=str(tmp_path / "runinfo"), monitoring=hub)):
            assert double(1).result() == 2
    flowlib.clear()
