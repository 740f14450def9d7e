"""dfk.add_executors starts executors on a running kernel; app.executors is a list; executor start records."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

import flowlib
from flowlib import python_app
from flowlib.app.python import INTERNAL_EXECUTOR, PythonApp
from flowlib.config import Config
from flowlib.dataflow.dflow import DataFlowKernel
from flowlib.errors import ConfigurationError, FlowlibError
from flowlib.executors.threads import ThreadPoolExecutor

pytestmark = pytest.mark.timeout(30)


def where() -> str:
    import threading

    return threading.current_thread().name


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[DataFlowKernel]:
    dfk = flowlib.load(Config(executors=[ThreadPoolExecutor(label="first", max_threads=1)], run_dir=str(tmp_path)))
    try:
        yield dfk
    finally:
        if not dfk.cleanup_called:
            dfk.cleanup()
        flowlib.clear()


def executor_records(caplog: pytest.LogCaptureFixture) -> set[tuple[str, str]]:
    return {
        (r.__dict__["parsl.executor.label"], r.__dict__["parsl.executor.type"])
        for r in caplog.records
        if "parsl.executor.label" in r.__dict__
    }


def test_app_executors_is_the_list_given() -> None:
    app = python_app(executors=["a", "b"])(where)
    assert app.executors == ["a", "b"]
    assert type(app.executors) is list
    assert PythonApp(where, executors=("a",)).executors == ["a"]
    assert python_app(where).executors == "all"


def test_an_added_executor_runs_tasks(kernel: DataFlowKernel, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="flowlib")
    added = ThreadPoolExecutor(label="second", max_threads=1, thread_name_prefix="added-pool")
    kernel.add_executors([added])
    assert kernel.executors["second"] is added
    assert added.run_dir == kernel.run_dir
    on_second = python_app(executors=["second"])(where)
    assert on_second().result(timeout=10).startswith("added-pool")
    assert ("second", "flowlib.executors.threads.ThreadPoolExecutor") in executor_records(caplog)


def test_all_apps_may_run_on_an_added_executor(kernel: DataFlowKernel) -> None:
    anywhere = python_app(where)
    assert anywhere().result(timeout=10)  # fills the kernel's choice cache for "all"
    kernel.add_executors([ThreadPoolExecutor(label="second", max_threads=1)])
    seen = set()
    for _ in range(200):
        seen.add(anywhere().task_record["executor"])
        if len(seen) == 2:
            break
    assert seen == {"first", "second"}


def test_labels_must_be_new(kernel: DataFlowKernel) -> None:
    with pytest.raises(ConfigurationError, match="already in use by this kernel: \\['first'\\]"):
        kernel.add_executors([ThreadPoolExecutor(label="first")])
    with pytest.raises(ConfigurationError, match="duplicated: \\['x'\\]"):
        kernel.add_executors([ThreadPoolExecutor(label="x"), ThreadPoolExecutor(label="x")])
    assert set(kernel.executors) == {"first", INTERNAL_EXECUTOR}


def test_adding_to_a_cleaned_up_kernel_is_an_error(kernel: DataFlowKernel) -> None:
    kernel.cleanup()
    with pytest.raises(FlowlibError, match="has been cleaned up"):
        kernel.add_executors([ThreadPoolExecutor(label="late")])


def test_load_logs_each_configured_executor(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="flowlib")
    with flowlib.load(Config(executors=[ThreadPoolExecutor(label="threads")], run_dir=str(tmp_path))):
        pass
    flowlib.clear()
    assert executor_records(caplog) == {("threads", "flowlib.executors.threads.ThreadPoolExecutor")}
