"""GlobusComputeExecutor over a spec'd mock of the SDK's Executor: what it asks the SDK to do."""

from __future__ import annotations

import sys
from concurrent.futures import CancelledError, Future
from typing import Any
from unittest import mock

import pytest

pytest.importorskip("globus_compute_sdk")  # the extra; CI installs it with the test extra

from globus_compute_sdk import Executor
from globus_compute_sdk.errors import TaskExecutionFailed

import flowlib
from flowlib import python_app
from flowlib.app.errors import RemoteTraceback
from flowlib.config import Config
from flowlib.errors import OptionalModuleMissing
from flowlib.executors.errors import BadStateException, InvalidResourceSpecification
from flowlib.executors.globus_compute import GlobusComputeExecutor
from flowlib.executors.remote_call import pack_call, run_packed_call

pytestmark = pytest.mark.timeout(30)


def sdk_mock(resource_specification: Any = None, user_endpoint_config: Any = None) -> Any:
    sdk = mock.create_autospec(Executor, instance=True)
    sdk.resource_specification = resource_specification
    sdk.user_endpoint_config = user_endpoint_config
    sdk.sent = []  # (resource_specification, user_endpoint_config, future) at each submit

    def submit(fn: Any, *args: Any, **kwargs: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        sdk.sent.append((sdk.resource_specification, sdk.user_endpoint_config, fut, fn, args))
        return fut

    sdk.submit.side_effect = submit
    return sdk


def started(sdk: Any) -> GlobusComputeExecutor:
    gce = GlobusComputeExecutor(sdk, label="gce")
    gce.start()
    return gce


def add(a: int, b: int) -> int:
    return a + b


def test_constructor_refuses_a_non_sdk_executor():
    with pytest.raises(TypeError, match="'executor' must be a globus_compute_sdk.Executor, got dict"):
        GlobusComputeExecutor({})
    with pytest.raises(TypeError, match="'label' must be str"):
        GlobusComputeExecutor(sdk_mock(), label=3)


def test_missing_sdk_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "globus_compute_sdk", None)  # import now raises ImportError
    with pytest.raises(OptionalModuleMissing, match=r"flowlib\[globus-compute\]"):
        GlobusComputeExecutor(object())


def test_submit_sends_one_registered_function_and_the_packed_call():
    sdk = sdk_mock()
    gce = started(sdk)
    fut = gce.submit(add, {}, 2, 3)
    (_spec, _uep, sdk_fut, fn, args) = sdk.sent[0]
    assert fn is run_packed_call and len(args) == 1 and isinstance(args[0], bytes)
    # The endpoint side: run the bytes as the endpoint would, and hand back what it returns.
    sdk_fut.set_result(run_packed_call(args[0]))
    assert fut.result(timeout=5) == 5
    assert gce.statistics().submitted == 1 and gce.statistics().completed == 1


def test_resource_specification_and_user_endpoint_config_per_task():
    sdk = sdk_mock(resource_specification={"num_nodes": 1}, user_endpoint_config={"account": "default"})
    gce = started(sdk)
    gce.submit(add, {}, 1, 1)
    gce.submit(add, {"num_ranks": 4, "user_endpoint_config": {"worker_init": "module load x"}}, 1, 1)
    gce.submit(add, {"user_endpoint_config": {"account": "other"}}, 1, 1)
    sent = [(spec, uep) for spec, uep, *_ in sdk.sent]
    assert sent == [
        ({"num_nodes": 1}, {"account": "default"}),  # the SDK executor's own values
        ({"num_ranks": 4}, {"worker_init": "module load x"}),
        ({"num_nodes": 1}, {"account": "other"}),
    ]


def test_user_endpoint_config_must_be_a_dict():
    gce = started(sdk_mock())
    with pytest.raises(InvalidResourceSpecification, match="'user_endpoint_config' must be a dict, got str"):
        gce.submit(add, {"user_endpoint_config": "x"}, 1, 1)


def test_sdk_refusing_the_specification_is_an_invalid_resource_specification():
    sdk = sdk_mock()
    gce = started(sdk)

    def refuse(self: Any, value: Any) -> None:
        raise TypeError("Resource specification must be JSON-serializable")  # as the real setter does

    type(sdk).resource_specification = property(lambda self: None, refuse)
    with pytest.raises(InvalidResourceSpecification, match="Globus Compute refused it: .* JSON-serializable"):
        gce.submit(add, {"x": object()}, 1, 1)


def test_remote_failure_keeps_the_remote_traceback():
    sdk = sdk_mock()
    gce = started(sdk)
    fut = gce.submit(add, {}, 1, 1)
    remote = 'Traceback (most recent call last):\n  File "engine.py", line 9\nValueError: on the endpoint'
    sdk.sent[0][2].set_exception(TaskExecutionFailed(remote))
    exc = fut.exception(timeout=5)
    assert isinstance(exc, TaskExecutionFailed)
    assert isinstance(exc.__cause__, RemoteTraceback) and "ValueError: on the endpoint" in str(exc.__cause__)


def test_sdk_exception_without_remote_data_passes_unchanged():
    sdk = sdk_mock()
    gce = started(sdk)
    fut = gce.submit(add, {}, 1, 1)
    error = ConnectionError("AMQP connection lost")
    sdk.sent[0][2].set_exception(error)
    assert fut.exception(timeout=5) is error


def test_non_bytes_result_is_a_clear_error():
    sdk = sdk_mock()
    gce = started(sdk)
    fut = gce.submit(add, {}, 1, 1)
    sdk.sent[0][2].set_result(42)
    with pytest.raises(TypeError, match="the endpoint returned int, not the bytes"):
        fut.result(timeout=5)


def test_sdk_executor_that_stopped_gives_bad_state():
    sdk = sdk_mock()
    sdk.submit.side_effect = RuntimeError("Executor<...> is shutdown; no new functions may be executed")
    gce = started(sdk)
    with pytest.raises(BadStateException, match="cannot take tasks: .* is shutdown"):
        gce.submit(add, {}, 1, 1)


def test_cancelling_the_future_cancels_the_sdk_future():
    sdk = sdk_mock()
    gce = started(sdk)
    fut = gce.submit(add, {}, 1, 1)
    assert fut.cancel()
    assert sdk.sent[0][2].cancelled()
    with pytest.raises(CancelledError):
        fut.result(timeout=5)


def test_shutdown_uses_the_sdk_api_and_fails_unfinished_tasks():
    sdk = sdk_mock()
    gce = started(sdk)
    done = gce.submit(add, {}, 1, 1)
    sdk.sent[0][2].set_result(run_packed_call(sdk.sent[0][4][0]))
    waiting = gce.submit(add, {}, 2, 2)
    gce.shutdown()
    gce.shutdown()  # a second call does nothing
    sdk.shutdown.assert_called_once_with(wait=False, cancel_futures=True)
    assert done.result(timeout=5) == 2
    with pytest.raises(BadStateException, match="shut down before the task's result arrived"):
        waiting.result(timeout=5)
    with pytest.raises(BadStateException, match="has been shut down"):
        gce.submit(add, {}, 1, 1)
    # A result that arrives after shutdown changes nothing.
    sdk.sent[1][2].set_result(run_packed_call(sdk.sent[1][4][0]))
    assert isinstance(waiting.exception(), BadStateException)


@python_app
def fails(message):
    raise KeyError(message)


def test_through_the_kernel_exceptions_keep_their_type(tmp_path):
    sdk = sdk_mock()

    def run_inline(fn: Any, *args: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        fut.set_result(fn(*args))  # as if the endpoint ran it at once
        return fut

    sdk.submit.side_effect = run_inline
    gce = GlobusComputeExecutor(sdk, label="gce")
    with flowlib.load(Config(executors=[gce], run_dir=str(tmp_path / "runinfo"))):
        exc = fails("missing").exception(timeout=10)
    assert type(exc) is KeyError and exc.args == ("missing",)
    assert isinstance(exc.__cause__, RemoteTraceback) and ", in fails" in str(exc.__cause__)
    sdk.shutdown.assert_called_once_with(wait=False, cancel_futures=True)


def test_unserializable_argument_fails_at_submit():
    import threading

    gce = started(sdk_mock())
    with pytest.raises(Exception, match="cannot serialize"):
        gce.submit(add, {}, threading.Lock(), 1)
    assert pack_call(add, (1, 2), {})  # and a good call packs
