"""Join apps: the outer future takes the result(s) of the futures the app returns."""

from __future__ import annotations

import pytest

from flowlib import join_app, python_app
from flowlib.dataflow.errors import JoinError

pytestmark = pytest.mark.timeout(60)


@python_app
def add(a, b):
    return a + b


@python_app
def fail(message):
    raise ValueError(message)


@join_app
def add_then_double(a, b):
    return add(add(a, b), add(a, b))


@join_app
def fan_out(n):
    return [add(i, i) for i in range(n)]


@join_app
def fibonacci(n):
    if n < 2:
        return add(n, 0)
    return add(fibonacci(n - 1), fibonacci(n - 2))


@join_app
def with_failures(n_bad):
    return [add(1, 1)] + [fail(f"inner {i}") for i in range(n_bad)]


@join_app
def single_failure():
    return fail("the only inner task")


@join_app
def not_a_future():
    return 42


@join_app
def list_with_non_future():
    return [add(1, 2), "plain"]


def test_join_returning_one_future(dfk):
    fut = add_then_double(2, 3)
    assert fut.result(timeout=10) == 10
    assert fut.task_status() == "exec_done"


def test_join_returning_a_list(dfk):
    assert fan_out(5).result(timeout=10) == [0, 2, 4, 6, 8]
    assert fan_out(0).result(timeout=10) == []


def test_nested_joins(dfk):
    assert fibonacci(10).result(timeout=30) == 55


def test_join_result_is_a_dependency(dfk):
    assert add(add_then_double(1, 1), 1).result(timeout=10) == 5


def test_join_of_failing_inner_tasks(dfk):
    fut = with_failures(2)
    with pytest.raises(JoinError) as info:
        fut.result(timeout=10)
    failures = info.value.dependent_exceptions_tids
    assert len(failures) == 2
    assert all(isinstance(exc, ValueError) for exc, _ in failures)
    assert sorted(str(exc) for exc, _ in failures) == ["inner 0", "inner 1"]
    assert all(name.startswith("task ") for _, name in failures)
    for _, name in failures:
        assert name in str(info.value)


def test_join_of_single_failing_future(dfk):
    with pytest.raises(JoinError) as info:
        single_failure().result(timeout=10)
    ((exc, name),) = info.value.dependent_exceptions_tids
    assert isinstance(exc, ValueError) and str(exc) == "the only inner task"
    assert name.startswith("task ")


def test_join_returning_a_non_future(dfk):
    with pytest.raises(TypeError, match="not_a_future"):
        not_a_future().result(timeout=10)
    with pytest.raises(TypeError):
        list_with_non_future().result(timeout=10)
    assert add(1, 1).result(timeout=10) == 2


# -- join apps are PythonApp objects with join=True, as in Parsl ---------------------------


def double_sum(a, b):
    return add(add(a, b), add(a, b))


def test_join_app_is_a_python_app_with_join_true():
    from flowlib.app.python import JoinApp, PythonApp

    assert type(add_then_double) is PythonApp
    assert isinstance(add_then_double, PythonApp) and add_then_double.join is True
    assert isinstance(add, PythonApp) and add.join is False
    assert PythonApp(double_sum).join is False
    made = join_app(cache=True)(double_sum)
    assert isinstance(made, PythonApp) and made.join is True and made.cache is True
    old = JoinApp(double_sum)  # the earlier flowlib name still works and is a PythonApp too
    assert isinstance(old, PythonApp) and old.join is True
    with pytest.raises(TypeError, match="'join' must be a bool"):
        PythonApp(double_sum, join="yes")


def test_python_app_with_join_true_built_directly_runs_as_a_join_app(dfk):
    from flowlib.app.python import PythonApp

    direct = PythonApp(double_sum, join=True)
    assert direct(2, 3).result(timeout=30) == 10
    # executors are ignored for a join app: it runs on the kernel's internal executor
    named = PythonApp(double_sum, executors=["no-such-executor"], join=True)
    assert named(1, 1).result(timeout=30) == 4
    # through the kernel's low-level entry, as Parsl's dfk.submit(..., join=True)
    assert dfk.submit(double_sum, app_args=(1, 2), join=True).result(timeout=30) == 6
    with pytest.raises(TypeError, match="must return a Future"):
        PythonApp(lambda: 42, join=True)().result(timeout=30)
