"""GlobusComputeExecutor end to end: the real SDK Executor and result watcher, a real
RabbitMQ, the real endpoint engine (ThreadPoolEngine in its own process and venv),
and a fake of the web service only (fake_service.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("globus_compute_sdk")

import flowlib
from flowlib import bash_app, python_app
from flowlib.app.errors import BashExitFailure, RemoteTraceback
from flowlib.config import Config
from flowlib.dataflow.dflow import DataFlowKernel
from flowlib.executors.errors import BadStateException

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def service() -> Any:
    from gce import harness
    from gce.fake_service import FakeComputeService

    harness.require_globus_services()
    return FakeComputeService(harness.AMQP_URL, harness.shared_endpoint().queue)


@pytest.fixture
def gce_dfk(tmp_path: Any, service: Any) -> Iterator[DataFlowKernel]:
    from gce import harness

    executor = harness.make_executor(tmp_path, service=service)
    with flowlib.load(Config(executors=[executor], run_dir=str(tmp_path / "runinfo"))) as dfk:
        yield dfk


@python_app
def where_and_square(x):
    import os

    return os.getpid(), x * x


@python_app
def fail_with(message):
    raise LookupError(message)


@bash_app
def shell(command, stdout=None):
    return command


def test_results_come_back_from_the_endpoint_process(gce_dfk, service):
    futures = [where_and_square(i) for i in range(10)]
    results = [f.result(timeout=30) for f in futures]
    assert [square for _pid, square in results] == [i * i for i in range(10)]
    pids = {pid for pid, _square in results}
    assert len(pids) == 1 and os.getpid() not in pids  # ran in the endpoint process
    assert sum(b.task_count for b in service.batches) == 10


def test_exception_keeps_type_and_remote_traceback(gce_dfk):
    exc = fail_with("not on the endpoint").exception(timeout=30)
    assert type(exc) is LookupError and exc.args == ("not on the endpoint",)
    assert isinstance(exc.__cause__, RemoteTraceback) and "fail_with" in str(exc.__cause__)


def test_bash_app_runs_on_the_endpoint(gce_dfk, tmp_path):
    out = tmp_path / "out.txt"
    assert shell("echo from the endpoint", stdout=str(out)).result(timeout=30) == 0
    assert out.read_text() == "from the endpoint\n"
    with pytest.raises(BashExitFailure) as info:
        shell("exit 7").result(timeout=30)
    assert info.value.exitcode == 7


def test_resource_specification_reaches_the_service_and_the_engine(gce_dfk, service):
    # The specification travels with the batch; the ThreadPoolEngine refuses resource
    # specifications, and that endpoint-side error reaches the task with its traceback.
    fut = where_and_square(3, parsl_resource_specification={"num_nodes": 2, "user_endpoint_config": {"q": "debug"}})
    exc = fut.exception(timeout=30)
    assert type(exc).__name__ == "TaskExecutionFailed"
    assert "resource_specification is not supported on ThreadPoolEngine" in str(exc)
    assert isinstance(exc.__cause__, RemoteTraceback) and "thread_pool.py" in str(exc.__cause__)
    # Only the endpoint config: the engine runs the task, the service saw the config.
    ok = where_and_square(4, parsl_resource_specification={"user_endpoint_config": {"q": "debug"}})
    assert ok.result(timeout=30)[1] == 16
    carried = [(b.resource_specification, b.user_endpoint_config) for b in service.batches]
    assert ({"num_nodes": 2}, {"q": "debug"}) in carried
    assert (None, {"q": "debug"}) in carried


def test_service_refusing_a_batch_fails_the_task_and_stops_the_executor(gce_dfk, service):
    assert where_and_square(2).result(timeout=30)[1] == 4
    service.refuse_batches = PermissionError("403: not allowed on this endpoint")
    with pytest.raises(PermissionError, match="403: not allowed"):
        where_and_square(5).result(timeout=30)
    # The SDK executor stops after a failed submission; later tasks fail at once, saying so.
    exc = where_and_square(6).exception(timeout=30)
    assert isinstance(exc, BadStateException) and "cannot take tasks" in str(exc)
