"""Errors: user exceptions arrive unchanged; dependency failures name their tasks."""

from __future__ import annotations

import concurrent.futures
import traceback

import pytest

from flowlib import python_app
from flowlib.dataflow.errors import DependencyError

pytestmark = pytest.mark.timeout(60)


class CustomError(Exception):
    def __init__(self, code, detail):
        super().__init__(code, detail)
        self.code = code
        self.detail = detail


@python_app
def raise_value_error(message):
    raise ValueError(message)


@python_app
def raise_custom(code):
    raise CustomError(code, "custom detail")


@python_app
def deeply_failing_user_function(n):
    def helper_inside_user_code(k):
        if k == 0:
            raise ZeroDivisionError("reached the bottom")
        return helper_inside_user_code(k - 1)

    return helper_inside_user_code(n)


@python_app
def raise_key_error():
    return {}["absent-key"]


@python_app
def identity(x):
    return x


def test_exception_keeps_type_and_message(dfk):
    fut = raise_value_error("a very specific message")
    with pytest.raises(ValueError, match="a very specific message"):
        fut.result(timeout=10)
    exc = fut.exception()
    assert type(exc) is ValueError
    assert exc.args == ("a very specific message",)
    assert fut.task_status() == "failed"


def test_builtin_exception_from_user_code(dfk):
    with pytest.raises(KeyError, match="absent-key"):
        raise_key_error().result(timeout=10)


def test_custom_exception_keeps_type_and_attributes(dfk):
    exc = raise_custom(17).exception(timeout=10)
    assert type(exc) is CustomError
    assert exc.code == 17
    assert exc.detail == "custom detail"


def test_traceback_contains_user_frames(dfk):
    exc = deeply_failing_user_function(3).exception(timeout=10)
    assert isinstance(exc, ZeroDivisionError)
    names = [frame.name for frame in traceback.extract_tb(exc.__traceback__)]
    assert "deeply_failing_user_function" in names
    assert names.count("helper_inside_user_code") == 4
    formatted = "".join(traceback.format_exception(exc))
    assert "reached the bottom" in formatted


def test_traceback_when_result_reraises(dfk):
    fut = raise_value_error("re-raised")
    with pytest.raises(ValueError) as info:
        fut.result(timeout=10)
    names = [frame.name for frame in info.traceback]
    assert "raise_value_error" in names


def test_dependency_error_message_names_failed_tasks(dfk):
    first = raise_value_error("first")
    second = raise_custom(1)
    fut = identity(first)
    both = python_app(lambda a, b: (a, b))(first, second)
    with pytest.raises(DependencyError) as info:
        fut.result(timeout=10)
    message = str(info.value)
    assert f"task {first.tid}" in message
    assert f"task {fut.tid}" in message
    with pytest.raises(DependencyError) as info:
        both.result(timeout=10)
    message = str(info.value)
    assert f"task {first.tid}" in message
    assert f"task {second.tid}" in message
    causes = {name: type(exc) for exc, name in info.value.dependent_exceptions_tids}
    assert causes == {f"task {first.tid}": ValueError, f"task {second.tid}": CustomError}


def test_kernel_keeps_working_after_failures(dfk):
    failures = [raise_value_error(str(i)) for i in range(20)]
    # One deadline for the batch: on Flux every task is a fresh interpreter, slow on a loaded machine.
    done, not_done = concurrent.futures.wait(failures, timeout=45)
    assert not not_done, f"{len(not_done)} of 20 failing tasks never finished"
    assert all(isinstance(f.exception(), ValueError) for f in failures)
    assert identity("still fine").result(timeout=10) == "still fine"
