"""GlobusStaging on globus-sdk's real TransferClient, against a local fake of the Transfer API."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("globus_sdk")  # the globus extra; CI installs it with the test extra

import globus_sdk

import flowlib
from flowlib import python_app
from flowlib.config import Config
from flowlib.data_provider.files import File
from flowlib.data_provider.globus import GlobusStaging
from flowlib.data_provider.staging import StagingError
from flowlib.dataflow.errors import DependencyError
from flowlib.executors.threads import ThreadPoolExecutor

from .fake_transfer_api import FakeTransferAPI

pytestmark = pytest.mark.timeout(30)

SOURCE = str(uuid.uuid4())  # the collection the data lives on
WORKERS = str(uuid.uuid4())  # the collection the executor's workers see


@pytest.fixture
def api(tmp_path: Any) -> Iterator[FakeTransferAPI]:
    (tmp_path / "source").mkdir()
    (tmp_path / "workers").mkdir()
    fake = FakeTransferAPI({SOURCE: str(tmp_path / "source"), WORKERS: str(tmp_path / "workers")})
    try:
        yield fake
    finally:
        fake.close()


def client(api: FakeTransferAPI, token: str = "test-token") -> Any:
    return globus_sdk.TransferClient(base_url=api.base_url, authorizer=globus_sdk.AccessTokenAuthorizer(token))


def staging(api: FakeTransferAPI, tmp_path: Any, **kwargs: Any) -> GlobusStaging:
    # The workers' collection is rooted at tmp_path/workers; its "/scratch" is their local scratch dir.
    (tmp_path / "workers" / "scratch").mkdir(exist_ok=True)
    kwargs.setdefault("transfer_client", client(api))
    kwargs.setdefault("poll_interval", 0.05)
    return GlobusStaging(WORKERS, endpoint_path="/scratch", local_path=str(tmp_path / "workers" / "scratch"), **kwargs)


@pytest.fixture
def load(tmp_path: Any) -> Iterator[Any]:
    kernels = []

    def _load(plugin: GlobusStaging) -> Any:
        executor = ThreadPoolExecutor(label="exec", storage_access=[plugin])
        kernel = flowlib.load(Config(executors=[executor], run_dir=str(tmp_path / "runinfo")))
        kernels.append(kernel)
        return kernel

    yield _load
    for kernel in kernels:
        kernel.cleanup()
    flowlib.clear()


@python_app
def read(inputs=()):
    with open(inputs[0].filepath) as f:
        return f.read()


@python_app
def write(text, outputs=()):
    with open(outputs[0].filepath, "w") as f:
        f.write(text)
    return outputs[0].filepath


def test_stage_in_transfers_to_the_workers_collection(api, tmp_path, load):
    (tmp_path / "source" / "data").mkdir()
    (tmp_path / "source" / "data" / "in.txt").write_text("from the source collection")
    load(staging(api, tmp_path))
    assert read(inputs=[File(f"globus://{SOURCE}/data/in.txt")]).result(timeout=20) == "from the source collection"
    (doc,) = api.submissions
    assert (doc["source_endpoint"], doc["destination_endpoint"]) == (SOURCE, WORKERS)
    assert [(i["source_path"], i["destination_path"]) for i in doc["DATA"]] == [("/data/in.txt", "/scratch/in.txt")]
    assert doc["submission_id"]  # the SDK fetched one first


def test_stage_out_transfers_after_the_app(api, tmp_path, load):
    load(staging(api, tmp_path))
    fut = write("results", outputs=[File(f"globus://{SOURCE}/results/out.txt")])
    assert fut.result(timeout=20) == str(tmp_path / "workers" / "scratch" / "out.txt")
    fut.outputs[0].result(timeout=20)  # the transfer finished
    assert (tmp_path / "source" / "results" / "out.txt").read_text() == "results"
    (doc,) = api.submissions
    assert (doc["source_endpoint"], doc["destination_endpoint"]) == (WORKERS, SOURCE)


def test_failed_app_is_not_staged_out(api, tmp_path, load):
    @python_app
    def fails(outputs=()):
        raise RuntimeError("no output")

    load(staging(api, tmp_path))
    fut = fails(outputs=[File(f"globus://{SOURCE}/results/never.txt")])
    assert isinstance(fut.exception(timeout=20), RuntimeError)
    assert fut.outputs[0].exception(timeout=20) is not None
    assert api.submissions == []


def test_failed_transfer_fails_the_app_naming_the_file(api, tmp_path, load):
    load(staging(api, tmp_path))
    url = f"globus://{SOURCE}/data/missing.txt"
    exc = read(inputs=[File(url)]).exception(timeout=20)
    assert isinstance(exc, DependencyError)
    (cause, _name) = exc.dependent_exceptions_tids[0]
    assert isinstance(cause, StagingError) and cause.url == url
    assert "FAILED" in str(cause) and "No such file: /data/missing.txt" in str(cause)


def test_transfer_that_never_finishes_is_cancelled_after_the_timeout(api, tmp_path, load):
    (tmp_path / "source" / "slow.txt").write_text("x")
    api.stuck.add(WORKERS)
    load(staging(api, tmp_path, timeout=0.5))
    exc = read(inputs=[File(f"globus://{SOURCE}/slow.txt")]).exception(timeout=20)
    (cause, _name) = exc.dependent_exceptions_tids[0]
    assert isinstance(cause, StagingError) and "did not finish within 0.5 s (last status ACTIVE)" in str(cause)
    assert api.cancelled == list(api.tasks)


def test_refused_credentials_are_a_staging_error(api, tmp_path, load):
    (tmp_path / "source" / "a.txt").write_text("x")
    load(staging(api, tmp_path, transfer_client=client(api, token="wrong")))
    exc = read(inputs=[File(f"globus://{SOURCE}/a.txt")]).exception(timeout=20)
    (cause, _name) = exc.dependent_exceptions_tids[0]
    assert isinstance(cause, StagingError) and "refused the transfer: 401 AuthenticationFailed" in str(cause)


def test_without_a_transfer_client_staging_says_what_is_missing():
    plugin = GlobusStaging(WORKERS)
    with pytest.raises(ValueError, match=r"needs transfer_client=globus_sdk.TransferClient"):
        plugin.stage_in(None, "exec", File(f"globus://{SOURCE}/a.txt"), None)  # type: ignore[arg-type]


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="timeout must be positive"):
        GlobusStaging(WORKERS, timeout=0)
    with pytest.raises(TypeError, match="'poll_interval' must be"):
        GlobusStaging(WORKERS, poll_interval="1")  # type: ignore[arg-type]
