"""FlowlibPoolExecutor (ParslPoolExecutor): argument errors, a loaded kernel, cancel_futures."""

from __future__ import annotations

import concurrent.futures
import threading
from pathlib import Path

import pytest

import flowlib
from flowlib import python_app
from flowlib.concurrent import FlowlibPoolExecutor, ParslPoolExecutor
from flowlib.config import Config
from flowlib.errors import NoDataFlowKernelError
from flowlib.executors.threads import ThreadPoolExecutor

pytestmark = pytest.mark.timeout(30)


def config(tmp_path: Path, threads: int = 2) -> Config:
    return Config(executors=[ThreadPoolExecutor(label="t", max_threads=threads)], run_dir=str(tmp_path))


def inc(x: int) -> int:
    return x + 1


@python_app
def is_even(x):
    return x % 2 == 0


def test_argument_errors(tmp_path: Path) -> None:
    assert ParslPoolExecutor is FlowlibPoolExecutor
    with pytest.raises(ValueError, match="Must specify one of config or dfk"):
        FlowlibPoolExecutor()
    with flowlib.load(config(tmp_path)) as dfk:
        with pytest.raises(ValueError, match="Specify only one of config or dfk"):
            FlowlibPoolExecutor(config=config(tmp_path), dfk=dfk)
    flowlib.clear()


def test_a_config_is_loaded_as_the_current_kernel(tmp_path: Path) -> None:
    with FlowlibPoolExecutor(config(tmp_path)) as pool:
        assert flowlib.dfk() is pool.dfk
        odd = pool.submit(inc, 2)
        # an app defined with the decorator takes the pool's future as a dependency
        assert is_even(odd).result(timeout=10) is False
        assert is_even(pool.submit(inc, odd)).result(timeout=10) is True
    assert pool.dfk.cleanup_called
    with pytest.raises(NoDataFlowKernelError):
        flowlib.dfk()


def test_loading_a_second_kernel_is_refused(tmp_path: Path) -> None:
    with FlowlibPoolExecutor(config(tmp_path / "a")):
        with pytest.raises(flowlib.errors.ConfigurationError):
            FlowlibPoolExecutor(config(tmp_path / "b"))


def hold(started: threading.Event, gate: threading.Event) -> bool:
    started.set()
    return gate.wait(10)


def test_shutdown_cancel_futures_cancels_tasks_not_started(tmp_path: Path) -> None:
    started, gate = threading.Event(), threading.Event()
    pool = FlowlibPoolExecutor(config(tmp_path, threads=1))
    running = pool.submit(hold, started, gate)
    assert started.wait(10)
    waiting = [pool.submit(inc, i) for i in range(3)]  # queued behind the one thread
    warned: list[str] = []

    def shut_down() -> None:
        with pytest.warns(UserWarning) as record:
            pool.shutdown(wait=True, cancel_futures=True)
        warned.extend(str(w.message) for w in record)

    closer = threading.Thread(target=shut_down)
    closer.start()
    try:
        for fut in waiting:
            with pytest.raises(concurrent.futures.CancelledError):
                fut.result(timeout=10)
        assert not running.done()  # a started task is not cancelled
    finally:
        gate.set()
        closer.join(10)
    assert running.result(timeout=10) is True
    assert pool.dfk.cleanup_called
    assert warned == [
        "FlowlibPoolExecutor.shutdown(cancel_futures=True) cancelled 3 task(s) that had not started; "
        "1 started task(s) are not interrupted"
    ]


def test_cancel_futures_warns_as_parsl_does_with_nothing_to_cancel(tmp_path: Path) -> None:
    pool = FlowlibPoolExecutor(config(tmp_path))
    with pytest.warns(UserWarning, match="cancelled 0 task"):
        pool.shutdown(False, cancel_futures=True)
    assert pool.dfk.cleanup_called


def test_get_app_executors_is_a_list(tmp_path: Path) -> None:
    with flowlib.load(config(tmp_path)) as dfk, FlowlibPoolExecutor(dfk=dfk, executors=["t"]) as pool:
        assert pool.submit(inc, 1).result(timeout=10) == 2
        assert pool.get_app(inc).executors == ["t"]
    flowlib.clear()


def test_shutdown_without_cancel_futures_runs_everything(tmp_path: Path) -> None:
    pool = FlowlibPoolExecutor(config(tmp_path))
    futures = [pool.submit(inc, i) for i in range(5)]
    pool.shutdown(wait=True)
    assert [fut.result(timeout=1) for fut in futures] == [1, 2, 3, 4, 5]
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(inc, 1)
