"""Backpressure: with max_tasks_in_flight unfinished tasks, a submission from the main thread waits."""

from __future__ import annotations

import sys
import threading

import pytest
from conftest import try_assert

import flowlib
from flowlib import python_app
from flowlib.config import Config
from flowlib.dataflow.dflow import DataFlowKernel
from flowlib.errors import NoDataFlowKernelError
from flowlib.executors.threads import ThreadPoolExecutor

pytestmark = pytest.mark.timeout(60)


@python_app
def held(i, gate):
    gate.wait()
    return i


def main_thread_waits_for_room() -> bool:
    frame = sys._current_frames().get(threading.main_thread().ident or 0)
    while frame is not None:
        if frame.f_code.co_name == "_wait_for_room":
            return True
        frame = frame.f_back
    return False


def load(tmp_path, bound: int | None) -> DataFlowKernel:
    config = Config(executors=[ThreadPoolExecutor(max_threads=2)], run_dir=str(tmp_path), max_tasks_in_flight=bound)
    return flowlib.load(config)


def test_main_thread_waits_at_the_bound_and_resumes_when_tasks_finish(tmp_path):
    gate = threading.Event()
    seen: dict[str, int] = {}

    def release_once_blocked() -> None:
        try_assert(main_thread_waits_for_room, timeout=20, message="the 11th submission never waited")
        seen["in_flight"] = len(dfk.tasks)
        gate.set()

    with load(tmp_path, 10) as dfk:
        releaser = threading.Thread(target=release_once_blocked)
        releaser.start()
        futures = [held(i, gate) for i in range(25)]
        releaser.join(timeout=30)
        assert [f.result(timeout=20) for f in futures] == list(range(25))
    assert seen["in_flight"] == 10  # the 11th call waited with exactly the bound in flight


def test_other_threads_never_wait(tmp_path):
    gate = threading.Event()
    with load(tmp_path, 5) as dfk:
        futures: list = []
        submitter = threading.Thread(target=lambda: futures.extend(held(i, gate) for i in range(20)))
        submitter.start()
        submitter.join(timeout=20)
        assert not submitter.is_alive() and len(futures) == 20
        assert len(dfk.tasks) == 20
        gate.set()
        assert [f.result(timeout=20) for f in futures] == list(range(20))


def test_cleanup_ends_a_waiting_submission_with_a_clear_error(tmp_path):
    gate = threading.Event()
    dfk = load(tmp_path, 3)

    def clean_up_once_blocked() -> None:
        try_assert(main_thread_waits_for_room, timeout=20, message="the 4th submission never waited")
        gate.set()
        dfk.cleanup()

    cleaner = threading.Thread(target=clean_up_once_blocked)
    cleaner.start()
    try:
        with pytest.raises(NoDataFlowKernelError, match="cleaned up while the submission waited"):
            for i in range(10):
                held(i, gate)
    finally:
        cleaner.join(timeout=30)
        flowlib.clear()


def test_no_bound(tmp_path):
    gate = threading.Event()
    gate.set()
    with load(tmp_path, None):
        assert sum(f.result(timeout=20) for f in [held(i, gate) for i in range(200)]) == sum(range(200))


def test_bad_bound_is_refused():
    with pytest.raises(ValueError, match="max_tasks_in_flight"):
        Config(max_tasks_in_flight=0)
    with pytest.raises(TypeError, match="max_tasks_in_flight"):
        Config(max_tasks_in_flight=2.5)  # type: ignore[arg-type]
