"""Apps: decorators, call keywords, return values and the AppFuture interface."""

from __future__ import annotations

import asyncio
import functools
import types
from concurrent.futures import Future

import pytest

from flowlib import python_app
from flowlib.app.python import PythonApp
from flowlib.concurrent import FlowlibPoolExecutor
from flowlib.dataflow.futures import AppFuture

pytestmark = pytest.mark.timeout(60)


@python_app
def double(x):
    return 2 * x


@python_app(cache=False, executors="all")
def triple(x):
    return 3 * x


@python_app
def echo(value):
    return value


@python_app
def combine(a, b, *, sep="-", upper=False):
    text = f"{a}{sep}{b}"
    return text.upper() if upper else text


@python_app
def no_inputs_declared(x):
    return x


@python_app
def sum_inputs(inputs=()):
    return sum(inputs)


@python_app
def with_kwargs(**kwargs):
    return sorted(kwargs)


@python_app
def show_label(x, label=None):
    return (x, label)


def add(a, b):
    return a + b


def test_bare_decorator(dfk):
    fut = double(21)
    assert isinstance(fut, AppFuture)
    assert isinstance(fut, Future)
    assert fut.result(timeout=10) == 42


def test_decorator_with_options(dfk):
    assert triple(5).result(timeout=10) == 15


def test_app_defined_inside_test(dfk):
    offset = 7

    @python_app
    def shifted(x):
        return x + offset

    assert shifted(3).result(timeout=10) == 10


@pytest.mark.parametrize(
    "value",
    [
        0,
        -12345678901234567890,
        3.25,
        1 + 2j,
        "text with ünïcode",
        b"\x00\xffbytes",
        None,
        True,
        [1, [2, 3], {"k": (4, 5)}],
        (1, "two", 3.0),
        {"a": 1, "b": [1, 2]},
        {1, 2, 3},
        frozenset({"x"}),
    ],
    ids=lambda v: type(v).__name__,
)
def test_return_values_of_several_types(dfk, value):
    assert echo(value).result(timeout=10) == value


def test_return_value_object(dfk):
    result = echo(types.SimpleNamespace(name="ns", n=3)).result(timeout=10)
    assert (result.name, result.n) == ("ns", 3)


def test_keyword_arguments_and_defaults(dfk):
    assert combine("a", "b").result(timeout=10) == "a-b"
    assert combine("a", b="b", sep="+").result(timeout=10) == "a+b"
    assert combine(b="y", a="x", upper=True).result(timeout=10) == "X-Y"


def test_inputs_passed_only_if_declared(dfk):
    # The function does not declare inputs=: the kernel keeps it to itself.
    assert no_inputs_declared(5, inputs=[1, 2]).result(timeout=10) == 5
    assert sum_inputs(inputs=[1, 2, 3]).result(timeout=10) == 6
    assert sum_inputs().result(timeout=10) == 0


def test_var_keyword_function_receives_special_keywords(dfk):
    assert with_kwargs(inputs=[1], x=2).result(timeout=10) == ["inputs", "x"]


def test_label_keyword(dfk):
    assert no_inputs_declared(4, label="not-passed").result(timeout=10) == 4
    assert show_label(1, label="mine").result(timeout=10) == (1, "mine")


def test_partial_through_python_app(dfk):
    partial = functools.partial(add, 10)
    partial.__name__ = "add_ten"  # type: ignore[attr-defined]
    app = PythonApp(partial)
    assert app.__name__ == "add_ten"
    assert app(5).result(timeout=10) == 15


def test_partial_without_name_is_rejected():
    with pytest.raises(TypeError, match="__name__"):
        PythonApp(functools.partial(add, 1))


def test_executors_option_with_label(dfk):
    assert "exec" in dfk.executors

    @python_app(executors=["exec"])
    def on_exec(x):
        return x + 1

    fut = on_exec(1)
    assert fut.result(timeout=10) == 2
    assert fut.task_record.executor == "exec"


def test_unknown_executor_label_names_known_labels(dfk):
    @python_app(executors=["no-such-executor"])
    def nowhere():
        return 1

    with pytest.raises(ValueError, match="no-such-executor") as info:
        nowhere()
    assert "exec" in str(info.value)
    assert double(1).result(timeout=10) == 2  # the kernel stays usable


def test_lifted_item_and_attribute(dfk):
    assert echo({"k": "v", "n": 2})["k"].result(timeout=10) == "v"
    assert echo([10, 20, 30])[0].result(timeout=10) == 10
    assert echo([10, 20, 30])[-1].result(timeout=10) == 30
    assert echo(types.SimpleNamespace(payload=99)).payload.result(timeout=10) == 99
    assert echo({"a": {"b": 5}})["a"]["b"].result(timeout=10) == 5


def test_lifted_missing_key_fails_with_key_error(dfk):
    with pytest.raises(KeyError):
        echo({"k": 1})["missing"].result(timeout=10)


def test_lifted_future_is_a_dependency(dfk):
    pair = echo({"x": 4})
    assert double(pair["x"]).result(timeout=10) == 8


def test_private_names_are_not_lifted(dfk):
    fut = echo(1)
    with pytest.raises(AttributeError):
        fut._no_such_private_attribute  # noqa: B018


def test_app_future_attributes(dfk):
    futs = [double(i) for i in range(5)]
    tids = [f.tid for f in futs]
    assert all(type(t) is int for t in tids)
    assert tids == sorted(tids)
    assert len(set(tids)) == len(tids)
    for i, fut in enumerate(futs):
        assert fut.result(timeout=10) == 2 * i
        assert fut.task_status() == "exec_done"
        assert fut.outputs == []
    assert futs[0].task_record.func_name == "double"


def test_await_app_future(dfk):
    async def main():
        first = await double(2)
        both = await asyncio.gather(double(first), triple(first))
        return first, both

    assert asyncio.run(main()) == (4, [8, 12])


def test_pool_executor_over_kernel(dfk):
    with FlowlibPoolExecutor(dfk=dfk) as pool:
        fut = pool.submit(add, 2, b=3)
        assert fut.result(timeout=10) == 5
        assert list(pool.map(add, [1, 2, 3], [10, 20, 30], timeout=10)) == [11, 22, 33]
        # a future from the pool is a dependency of another submission
        assert pool.submit(add, fut, 1).result(timeout=10) == 6
    assert not dfk.cleanup_called  # the pool leaves a kernel it was given running
    assert double(3).result(timeout=10) == 6
    with pytest.raises(RuntimeError):
        pool.submit(add, 1, 2)


def test_walltime_is_not_a_decorator_option():
    with pytest.raises(TypeError):
        python_app(walltime=1)  # type: ignore[call-overload]
