"""DaskExecutor on a real LocalCluster: resources, cancellation, what it closes at shutdown, the extra.

The behavioural suite runs on the shared cluster of tests/dask_support.py (one worker
process, 2 threads, resources GPU=1 and MEMORY=1e9); these tests cover what is
Dask-specific.
"""

from __future__ import annotations

import sys
from concurrent.futures import CancelledError

import pytest
from conftest import try_assert
from dask_support import make_executor, shared_cluster

import flowlib
from flowlib import python_app
from flowlib.config import Config
from flowlib.errors import OptionalModuleMissing
from flowlib.executors.errors import InvalidResourceSpecification

pytestmark = pytest.mark.timeout(60)


@python_app
def add(a, b):
    return a + b


@python_app
def hold_gpu_until(event_name):
    from distributed import Event

    Event(event_name).wait(30)
    return "held"


@python_app
def marker_app(path):
    with open(path, "w") as f:
        f.write("ran")
    return "ran"


@pytest.fixture
def dask_dfk(tmp_path):
    kernel = flowlib.load(Config(executors=[make_executor(tmp_path)], run_dir=str(tmp_path / "runinfo")))
    try:
        yield kernel
    finally:
        kernel.cleanup()
        flowlib.clear()


def test_missing_distributed_names_the_extra(monkeypatch):
    from flowlib.executors.dask import DaskExecutor

    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(OptionalModuleMissing, match=r"pip install 'flowlib\[dask\]'"):
        DaskExecutor()


def test_a_resource_no_worker_has_is_refused_naming_it(dask_dfk):
    with pytest.raises(InvalidResourceSpecification, match=r"'GPU' \(asked 2, largest on a worker 1\)") as info:
        add(1, 2, parsl_resource_specification={"GPU": 2}).result(timeout=10)
    assert info.value.invalid_keys == {"GPU"}
    with pytest.raises(InvalidResourceSpecification, match="'TPU'"):
        add(1, 2, parsl_resource_specification={"TPU": 1}).result(timeout=10)
    with pytest.raises(InvalidResourceSpecification, match="GPU='one'"):
        add(1, 2, parsl_resource_specification={"GPU": "one"}).result(timeout=10)
    assert add(1, 2, parsl_resource_specification={"GPU": 1, "MEMORY": 5e8}).result(timeout=20) == 3


def test_cancel_a_task_queued_in_dask(dask_dfk, tmp_path):
    """The only GPU is held; a second GPU task waits in Dask, is cancelled and never runs."""
    from distributed import Event

    executor = dask_dfk.executors["exec"]
    name = f"release-{tmp_path.name}"
    release = Event(name, client=executor.client)
    holder = hold_gpu_until(name, parsl_resource_specification={"GPU": 1})
    marker = tmp_path / "queued-task-ran"
    queued = marker_app(str(marker), parsl_resource_specification={"GPU": 1})

    def on_scheduler(prefix: str) -> list[str]:
        return executor.client.run_on_scheduler(
            lambda dask_scheduler: [str(k) for k in dask_scheduler.tasks if str(k).startswith(prefix)]
        )

    try_assert(lambda: len(on_scheduler("marker_app")) == 1, timeout=20, message="the task never reached Dask")
    assert queued.cancel() is True
    with pytest.raises(CancelledError):
        queued.result(timeout=5)
    try_assert(lambda: not on_scheduler("marker_app"), timeout=10, message="Dask still holds the cancelled task")
    release.set()
    assert holder.result(timeout=20) == "held"
    assert add(1, 1, parsl_resource_specification={"GPU": 1}).result(timeout=20) == 2
    assert not marker.exists()


def test_a_cluster_it_made_is_closed_at_shutdown(tmp_path):
    from flowlib.executors.dask import DaskExecutor

    executor = DaskExecutor(label="own", local_cluster_kwargs={"n_workers": 1, "threads_per_worker": 1})
    with flowlib.load(Config(executors=[executor], run_dir=str(tmp_path / "runinfo"))):
        assert add(2, 3).result(timeout=30) == 5
        cluster, client = executor.cluster, executor.client
        assert cluster is not None and cluster.status.name == "running"
    assert cluster.status.name == "closed"
    assert client.status == "closed"


def test_a_users_cluster_and_client_are_left_running(tmp_path):
    from distributed import Client

    from flowlib.executors.dask import DaskExecutor

    cluster = shared_cluster()
    with flowlib.load(Config(executors=[make_executor(tmp_path)], run_dir=str(tmp_path / "runinfo"))):
        assert add(1, 1).result(timeout=20) == 2
    assert cluster.status.name == "running"

    client = Client(cluster, set_as_default=False)
    try:
        with flowlib.load(Config(executors=[DaskExecutor(client, label="c")], run_dir=str(tmp_path / "run2"))):
            assert add(2, 2).result(timeout=20) == 4
        assert client.status == "running"
        assert client.submit(lambda: 7, pure=False).result(timeout=20) == 7
    finally:
        client.close()
