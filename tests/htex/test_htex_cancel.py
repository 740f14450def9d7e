"""Cancelling tasks on the high-throughput executor: queued ones are dropped, running ones killed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import CancelledError
from typing import Any

import pytest
from conftest import try_assert
from proc_state import process_gone

import flowlib
from flowlib import python_app
from flowlib.config import Config
from flowlib.dataflow.dflow import DataFlowKernel
from flowlib.dataflow.errors import DependencyError
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.providers import LocalProvider

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def one_worker(tmp_path: Any) -> Iterator[DataFlowKernel]:
    executor = HighThroughputExecutor(
        label="htex", max_workers_per_node=1, provider=LocalProvider(init_blocks=1, max_blocks=1)
    )
    dfk = flowlib.load(Config(executors=[executor], run_dir=str(tmp_path / "run"), strategy="none"))
    try:
        yield dfk
    finally:
        dfk.cleanup()


@python_app
def wait_for_file(path: str, marker: str) -> int:
    import time

    with open(marker, "w") as f:
        f.write(str(os.getpid()))
    while not os.path.exists(path):
        time.sleep(0.01)
    return os.getpid()


@python_app
def worker_pid() -> int:
    return os.getpid()


@python_app
def identity(x: Any) -> Any:
    return x


def test_cancel_running_task_kills_its_worker(one_worker, tmp_path):
    marker = tmp_path / "started"
    running = wait_for_file(str(tmp_path / "never"), str(marker))
    downstream = identity(running)
    # the pool starts with the kernel: allow a slow machine time for it; the marker may be empty while written
    try_assert(lambda: marker.exists() and marker.read_text() != "", timeout=30, message="the task never started")
    pid = int(marker.read_text())
    assert running.cancel() is True
    assert running.cancelled()
    with pytest.raises(CancelledError):
        running.result()
    with pytest.raises(DependencyError):
        downstream.result(timeout=10)
    try_assert(lambda: process_gone(pid), message=f"worker {pid} still running after cancel")
    replacement = worker_pid().result(timeout=20)
    assert replacement != pid


def test_cancel_queued_task_drops_it(one_worker, tmp_path):
    release = tmp_path / "release"
    marker = tmp_path / "started"
    busy = wait_for_file(str(release), str(marker))
    try_assert(marker.exists, timeout=30, message="the first task never started")
    queued_marker = tmp_path / "queued_started"
    queued = wait_for_file(str(release), str(queued_marker))
    assert queued.cancel() is True
    release.write_text("go")
    assert busy.result(timeout=20) > 0
    assert identity(5).result(timeout=20) == 5
    assert not queued_marker.exists(), "a cancelled queued task ran"
    assert one_worker.task_state_counts[flowlib.dataflow.states.States.cancelled] == 1


@flowlib.bash_app
def long_command(pidfile: str) -> str:
    return f"sleep 120 & echo $! > {pidfile}; wait"


def test_cancel_running_bash_app_kills_its_command(one_worker, tmp_path):
    pidfile = tmp_path / "pid"
    fut = long_command(str(pidfile))
    try_assert(
        lambda: pidfile.exists() and pidfile.read_text().strip() != "", timeout=30, message="the command never started"
    )
    sleeper = int(pidfile.read_text())
    assert fut.cancel() is True
    try_assert(lambda: process_gone(sleeper), message=f"the bash app's process {sleeper} outlived the cancel")
