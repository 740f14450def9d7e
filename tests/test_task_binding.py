"""A task record keeps its dependencies, and DEBUG records name the task they are about."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest

import flowlib
from flowlib import python_app
from flowlib.config import Config
from flowlib.dataflow.dflow import DataFlowKernel
from flowlib.executors.threads import ThreadPoolExecutor

pytestmark = pytest.mark.timeout(30)


@python_app
def const(x):
    return x


@python_app
def mul(a, b):
    return a * b


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[DataFlowKernel]:
    dfk = flowlib.load(Config(executors=[ThreadPoolExecutor(label="t", max_threads=2)], run_dir=str(tmp_path)))
    try:
        yield dfk
    finally:
        dfk.cleanup()
        flowlib.clear()


def diamond() -> tuple[Future[int], ...]:
    a = const(2)
    b = mul(a, 3)
    c = mul(a, 5)
    d = mul(b, c)
    e = const(d)
    return a, b, c, d, e


def dependency_pairs(records: list[logging.LogRecord], key: str = "parsl") -> set[tuple[int, int]]:
    return {
        (r.__dict__[f"{key}.task"], r.__dict__[f"{key}.dependency_task"])
        for r in records
        if f"{key}.dependency_task" in r.__dict__
    }


def test_task_record_lists_dependencies_until_the_task_launches(kernel: DataFlowKernel) -> None:
    plain: Future[int] = Future()
    fut = mul(plain, b=4)
    assert fut.task_record["depends"] == [plain]
    plain.set_result(2)
    assert fut.result(timeout=10) == 8
    # Dropped once the task launched (unlike Parsl), so a held future keeps no upstream alive.
    assert list(fut.task_record["depends"]) == []


def test_debug_records_bind_task_ids_to_apps_and_dependencies(
    kernel: DataFlowKernel, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="flowlib"):
        a, b, c, d, e = diamond()
        assert e.result(timeout=10) == 60
    for spelling in ("parsl", "flowlib"):
        bound = {
            (r.__dict__[f"{spelling}.task"], r.__dict__[f"{spelling}.app_name"])
            for r in caplog.records
            if f"{spelling}.app_name" in r.__dict__
        }
        assert {(a.tid, "const"), (b.tid, "mul"), (d.tid, "mul"), (e.tid, "const")} <= bound
        pairs = dependency_pairs(caplog.records, spelling)
        # only direct dependencies, never the transitive ones
        assert pairs == {(b.tid, a.tid), (c.tid, a.tid), (d.tid, b.tid), (d.tid, c.tid), (e.tid, d.tid)}


def test_a_plain_future_dependency_has_no_dependency_record(
    kernel: DataFlowKernel, caplog: pytest.LogCaptureFixture
) -> None:
    plain: Future[int] = Future()
    plain.set_result(3)
    with caplog.at_level(logging.DEBUG, logger="flowlib"):
        fut = mul(plain, 2)
        assert fut.result(timeout=10) == 6
    assert dependency_pairs(caplog.records) == set()
    assert any(r.__dict__.get("parsl.task") == fut.tid for r in caplog.records)


def test_no_per_task_record_at_the_default_level(kernel: DataFlowKernel, caplog: pytest.LogCaptureFixture) -> None:
    assert not logging.getLogger("flowlib").isEnabledFor(logging.DEBUG)
    _, _, _, _, e = diamond()
    assert e.result(timeout=10) == 60
    assert not [r for r in caplog.records if "parsl.task" in r.__dict__]
    log_text = (Path(kernel.run_dir) / "flowlib.log").read_text()
    assert "depends on task" not in log_text


@python_app
def broken():
    raise RuntimeError("deliberate")


def test_cleanup_logs_a_summary_of_task_states(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dfk = flowlib.load(Config(executors=[ThreadPoolExecutor(label="t", max_threads=2)], run_dir=str(tmp_path)))
    try:
        const(1).result(timeout=10)
        const(2).result(timeout=10)
        assert isinstance(broken().exception(timeout=10), RuntimeError)
    finally:
        with caplog.at_level(logging.INFO, logger="flowlib"):
            dfk.cleanup()
        flowlib.clear()
    assert "Summary of tasks in DFK:" in caplog.text
    assert "Tasks in state States.exec_done: 2" in caplog.text
    assert "Tasks in state States.failed: 1" in caplog.text
    assert "States.pending" not in caplog.text  # states with no task are left out
    assert "Tasks in state States.exec_done: 2" in (tmp_path / "000" / "flowlib.log").read_text()


@python_app
def boom():
    raise RuntimeError("boom")


def test_debug_records_name_each_state_and_the_executor(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="flowlib"):
        config = Config(executors=[ThreadPoolExecutor(label="t", max_threads=1)], run_dir=str(tmp_path))
        with flowlib.load(config):
            ok, bad = const(1), boom()
            assert ok.result(timeout=10) == 1 and isinstance(bad.exception(timeout=10), RuntimeError)
        flowlib.clear()
    for fut, last in ((ok, "exec_done"), (bad, "failed")):
        for spelling in ("parsl", "flowlib"):
            states = [
                r.__dict__[f"{spelling}.task_state"]
                for r in caplog.records
                if r.__dict__.get(f"{spelling}.task") == fut.tid and f"{spelling}.task_state" in r.__dict__
            ]
            assert states[0] == "pending" and "launched" in states and states[-1] == last
            bindings = [
                r
                for r in caplog.records
                if r.__dict__.get(f"{spelling}.task") == fut.tid and f"{spelling}.executor" in r.__dict__
            ]
            assert len(bindings) == 1 and bindings[0].__dict__[f"{spelling}.executor"] == "t"
            assert f"{spelling}.executor_task" not in bindings[0].__dict__  # the thread pool has no task ids
