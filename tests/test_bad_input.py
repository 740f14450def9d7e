"""Each bad input gets a clear error naming what was wrong, and the kernel stays usable."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest

import flowlib
from flowlib import bash_app, python_app
from flowlib.app.errors import BadStdStreamFile, BashAppNoReturn
from flowlib.app.python import PythonApp
from flowlib.config import Config
from flowlib.dataflow.errors import BadCheckpoint
from flowlib.dataflow.memoization import BasicMemoizer
from flowlib.executors.base import FlowlibExecutor
from flowlib.serialize import pack_apply_message
from flowlib.serialize.errors import SerializationError

pytestmark = pytest.mark.timeout(30)


@python_app
def identity(x):
    return x


def test_decorating_a_non_callable():
    with pytest.raises(TypeError, match="callable, got int"):
        python_app(5)  # type: ignore[call-overload]


def test_decorating_a_coroutine_function():
    async def fetch():
        return 1

    with pytest.raises(TypeError, match="'fetch' is a coroutine function"):
        python_app(fetch)


def test_walltime_at_decoration_is_a_type_error():
    with pytest.raises(TypeError):
        python_app(walltime=1)  # type: ignore[call-overload]


def test_partial_without_name():
    import functools

    with pytest.raises(TypeError, match="__name__"):
        PythonApp(functools.partial(max, 1))


def test_bash_app_returning_non_string(dfk):
    @bash_app
    def bad():
        return 42

    with pytest.raises(BashAppNoReturn, match="must return a command string, but returned int"):
        bad().result(timeout=10)
    assert identity(1).result(timeout=5) == 1


def test_bad_stdout_mode(dfk, tmp_path):
    @bash_app
    def echo(stdout=None):
        return "echo hi"

    with pytest.raises(BadStdStreamFile, match="mode must be one of"):
        echo(stdout=(str(tmp_path / "out"), "r")).result(timeout=10)
    assert identity(2).result(timeout=5) == 2


def test_retry_handler_that_raises(tmp_path):
    def handler(exc, record):
        raise RuntimeError(f"handler refused task {record['id']}")

    @python_app
    def fail():
        raise ValueError("original")

    with flowlib.load(Config(run_dir=str(tmp_path), retries=3, retry_handler=handler)):
        fut = fail()
        with pytest.raises(RuntimeError, match=f"handler refused task {fut.tid}") as info:
            fut.result(timeout=5)
        assert isinstance(info.value.__context__, ValueError)
        assert identity(3).result(timeout=5) == 3


def test_missing_checkpoint(tmp_path):
    missing = str(tmp_path / "nowhere" / "checkpoint")
    config = Config(run_dir=str(tmp_path / "run"), memoizer=BasicMemoizer(checkpoint_files=[missing]))
    with pytest.raises(BadCheckpoint, match="nowhere"):
        flowlib.load(config)
    flowlib.clear()


def test_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "bad" / "checkpoint"
    bad.mkdir(parents=True)
    (bad / "tasks.ckpt").write_bytes(b"this is not a checkpoint at all")
    config = Config(run_dir=str(tmp_path / "run"), memoizer=BasicMemoizer(checkpoint_files=[str(bad)]))
    with pytest.raises(BadCheckpoint, match="tasks.ckpt"):
        flowlib.load(config)
    flowlib.clear()


class SerializingExecutor(FlowlibExecutor):
    """A custom executor that serializes tasks as remote executors do, running them inline."""

    label = "serializing"

    def start(self) -> None:
        pass

    def submit(self, func, resource_specification, *args, **kwargs):
        from flowlib.serialize import unpack_apply_message

        message = pack_apply_message(func, args, kwargs)
        func, args, kwargs = unpack_apply_message(message)
        fut: Future = Future()
        try:
            fut.set_result(func(*args, **kwargs))
        except Exception as e:
            fut.set_exception(e)
        return fut

    def shutdown(self) -> None:
        pass


def test_argument_that_cannot_be_pickled(tmp_path):
    with flowlib.load(Config(run_dir=str(tmp_path), executors=[SerializingExecutor()])):
        fut = identity(threading.Lock())
        with pytest.raises(
            SerializationError,
            match=f"positional argument 0 of type _thread.lock for task {fut.tid} .function 'identity'",
        ):
            fut.result(timeout=5)
        assert fut.task_status() == "failed"
        assert identity(5).result(timeout=5) == 5


def test_foreign_future_argument_types_are_fine(dfk):
    """Plain futures from anywhere are valid dependencies."""
    plain: Future[int] = Future()
    fut = identity(plain)
    plain.set_result(9)
    assert fut.result(timeout=5) == 9


@pytest.mark.parametrize(
    "spec",
    [["out.txt", "w"], ("out.txt", None), (42, "w"), ("out.txt", "w", 42), ("out.txt",), 42],
    ids=["list", "null-mode", "int-path", "3-tuple", "1-tuple", "int"],
)
def test_stdout_of_the_wrong_shape_is_a_type_error_naming_it(dfk, spec):
    """As in Parsl: typeguard's TypeCheckError (and TypeError), and flowlib's BadStdStreamFile."""
    import typeguard

    @bash_app
    def echo(stdout=None):
        return "echo hi"

    with pytest.raises(BadStdStreamFile, match="stdout") as info:
        echo(stdout=spec).result(timeout=10)
    assert isinstance(info.value, typeguard.TypeCheckError) and isinstance(info.value, TypeError)
    assert identity(3).result(timeout=5) == 3
