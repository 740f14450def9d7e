"""Dependencies: futures as arguments, resolution modes and lazy failure."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest

import flowlib
from flowlib import python_app
from flowlib.dataflow.dependency_resolvers import DEEP_DEPENDENCY_RESOLVER
from flowlib.dataflow.errors import DependencyError
from flowlib.serialize.errors import SerializationError

pytestmark = pytest.mark.timeout(60)


@python_app
def inc(x):
    return x + 1


@python_app
def add(a, b=0):
    return a + b


@python_app
def total(inputs=()):
    return sum(inputs)


@python_app
def square(x):
    return x * x


@python_app
def fail(message="boom"):
    raise ValueError(message)


@python_app
def fail_after(x, message="head failed"):
    raise ValueError(message)


@python_app
def nested_sum(data):
    flat = 0
    for group in data["groups"]:
        flat += sum(group)
    return flat + data["extra"][0][0] + sum(data["pair"])


@python_app
def first_item_kind(items):
    return type(items[0]).__name__


def test_chain(dfk):
    fut = inc(0)
    for _ in range(9):
        fut = inc(fut)
    assert fut.result(timeout=10) == 10


def test_fan_out_fan_in(dfk):
    squares = [square(i) for i in range(10)]
    fut = total(inputs=squares)
    assert fut.result(timeout=10) == sum(i * i for i in range(10))


def test_future_as_keyword_argument(dfk):
    assert add(1, b=inc(1)).result(timeout=10) == 3
    assert add(a=inc(0), b=inc(1)).result(timeout=10) == 3


def test_plain_future_as_dependency(dfk):
    plain: Future[int] = Future()
    fut = add(plain, 1)
    assert not fut.done()  # it cannot have run: its argument is not there yet
    assert fut.task_status() == "pending"
    plain.set_result(41)
    assert fut.result(timeout=10) == 42


def test_failed_plain_future_dependency(dfk):
    plain: Future[int] = Future()
    fut = add(plain, 1)
    plain.set_exception(KeyError("nope"))
    with pytest.raises(DependencyError) as info:
        fut.result(timeout=10)
    ((exc, name),) = info.value.dependent_exceptions_tids
    assert isinstance(exc, KeyError)
    assert isinstance(name, str)


def test_future_as_default_argument(dfk):
    plain: Future[int] = Future()

    @python_app
    def add_default(a, b=plain):
        return a + b

    fut = add_default(1)
    assert not fut.done()
    plain.set_result(2)
    assert fut.result(timeout=10) == 3
    # an explicit argument replaces the default and is not made to wait for it
    assert add_default(1, b=5).result(timeout=10) == 6


def test_deep_resolver_resolves_nested_futures(make_config):
    gate: Future[int] = Future()
    with flowlib.load(make_config(dependency_resolver=DEEP_DEPENDENCY_RESOLVER)):
        data = {
            "groups": [[inc(0), inc(1)], (inc(2), 10)],
            "extra": [[gate]],
            "pair": {inc(3), 100},
        }
        fut = nested_sum(data)
        assert not fut.done()
        gate.set_result(1000)
        assert fut.result(timeout=10) == (1 + 2) + (3 + 10) + 1000 + (4 + 100)


def test_deep_resolver_propagates_nested_failure(make_config):
    with flowlib.load(make_config(dependency_resolver=DEEP_DEPENDENCY_RESOLVER)):
        bad = fail()
        fut = nested_sum({"groups": [[bad]], "extra": [[0]], "pair": (1,)})
        with pytest.raises(DependencyError) as info:
            fut.result(timeout=10)
        assert f"task {bad.tid}" in [name for _, name in info.value.dependent_exceptions_tids]


def test_shallow_resolver_leaves_nested_futures(dfk):
    never: Future[int] = Future()  # never set: a shallow task must not wait for it
    fut = first_item_kind([never])
    exc = fut.exception(timeout=10)
    if exc is None:
        # the task saw the future object itself, not its result
        assert fut.result() == "Future"
    else:
        # an executor that ships arguments to another process cannot send a Future
        assert isinstance(exc, SerializationError)
    assert not never.done()


def test_lazy_failure_keeps_independent_branches_running(dfk):
    bad = fail("left branch")
    left = inc(bad)
    right = inc(inc(1))
    assert right.result(timeout=10) == 3
    with pytest.raises(DependencyError) as info:
        left.result(timeout=10)
    err = info.value
    assert [name for _, name in err.dependent_exceptions_tids] == [f"task {bad.tid}"]
    ((cause, _),) = err.dependent_exceptions_tids
    assert isinstance(cause, ValueError)
    assert str(cause) == "left branch"
    assert f"task {bad.tid}" in str(err)
    assert left.task_status() == "dep_fail"
    assert bad.task_status() == "failed"


def test_dependency_error_propagates_down_a_chain(dfk):
    bad = fail()
    middle = inc(bad)
    tail = inc(middle)
    with pytest.raises(DependencyError) as info:
        tail.result(timeout=10)
    assert [name for _, name in info.value.dependent_exceptions_tids] == [f"task {middle.tid}"]
    assert isinstance(info.value.dependent_exceptions_tids[0][0], DependencyError)


def test_dependency_error_cause_is_the_root_failure(dfk):
    bad = fail("the root")
    middle = inc(bad)
    tail = inc(middle)
    root = bad.exception(timeout=10)
    assert isinstance(root, ValueError)
    # the very exception object of the task at the root of the chain, at every level
    assert tail.exception(timeout=10).__cause__ is root
    assert middle.exception(timeout=10).__cause__ is root
    message = str(tail.exception())
    assert message == (
        f"Dependency failure for task {tail.tid}. The representative cause is via task {middle.tid} <- task {bad.tid}"
    )
    with pytest.raises(DependencyError) as info:
        tail.result()
    assert info.value.__cause__ is root  # a traceback printout shows the root failure first


def test_dependency_error_from_several_failures_names_a_representative(dfk):
    a = fail("a")
    b = fail("b")
    fut = add(a, b)
    exc = fut.exception(timeout=10)
    assert exc.dependent_exceptions_tids == [(a.exception(), f"task {a.tid}"), (b.exception(), f"task {b.tid}")]
    assert exc.__cause__ is a.exception()
    assert f"The representative cause is via task {a.tid} (+ others)" in str(exc)


def test_dependency_error_cause_of_a_failed_plain_future(dfk):
    plain: Future[int] = Future()
    err = KeyError("from elsewhere")
    plain.set_exception(err)
    exc = inc(plain).exception(timeout=10)
    assert exc.dependent_exceptions_tids == [(err, repr(plain))]
    assert exc.__cause__ is err


@python_app
def fail_with_dict():
    raise KeyError("no mapping today")


def test_failed_lifted_future_dependency_is_named(dfk):
    parent = fail_with_dict()
    lifted = parent["k"]
    fut = inc(lifted)
    with pytest.raises(DependencyError) as info:
        fut.result(timeout=10)
    ((exc, name),) = info.value.dependent_exceptions_tids
    assert isinstance(exc, KeyError)
    # a lifted future is not an app future: it is named by its repr (or by its parent task)
    assert name in (repr(lifted), f"task {parent.tid}"), name


def test_several_failed_dependencies_are_all_named(dfk):
    a = fail("a")
    b = fail("b")
    ok = inc(0)
    fut = total(inputs=[a, ok, b])
    with pytest.raises(DependencyError) as info:
        fut.result(timeout=10)
    names = [name for _, name in info.value.dependent_exceptions_tids]
    assert sorted(names) == sorted([f"task {a.tid}", f"task {b.tid}"])
    assert f"task {a.tid}" in str(info.value) and f"task {b.tid}" in str(info.value)


def test_chain_of_1000_tasks(dfk):
    gate: Future[int] = Future()
    fut = inc(gate)
    for _ in range(999):
        fut = inc(fut)
    assert not fut.done()
    gate.set_result(0)  # every completion now launches the next task from a callback
    assert fut.result(timeout=30) == 1000


def test_failure_at_head_of_1000_chain(dfk):
    gate: Future[int] = Future()
    head = fail_after(gate)
    fut = head
    futs = []
    for _ in range(999):
        fut = inc(fut)
        futs.append(fut)
    gate.set_result(0)
    exc = fut.exception(timeout=30)
    assert isinstance(exc, DependencyError), repr(exc)[:300]
    assert [name for _, name in exc.dependent_exceptions_tids] == [f"task {futs[-2].tid}"]
    assert isinstance(head.exception(timeout=10), ValueError)
    assert all(isinstance(f.exception(timeout=10), DependencyError) for f in futs)
    assert exc.__cause__ is head.exception()
    assert len(str(exc)) < 1000  # the path to the root is cut short, not 1000 names long


def test_submissions_from_several_threads(dfk):
    tails = {}

    def build(k):
        fut = inc(k * 1000)
        for _ in range(99):
            fut = inc(fut)
        tails[k] = fut

    threads = [threading.Thread(target=build, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {k: f.result(timeout=30) for k, f in tails.items()} == {k: k * 1000 + 100 for k in range(6)}
    dfk.wait_for_current_tasks()
    counts = {state.name: n for state, n in dfk.task_state_counts.items() if n}
    assert counts == {"exec_done": 600}
