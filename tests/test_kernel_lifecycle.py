"""load/dfk/clear, context-manager exit modes, run directories and the run log."""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import Future
from pathlib import Path

import pytest

import flowlib
from flowlib import python_app
from flowlib.config import Config
from flowlib.dataflow.dflow import DataFlowKernel
from flowlib.errors import ConfigurationError, FlowlibError, NoDataFlowKernelError
from flowlib.executors.threads import ThreadPoolExecutor

pytestmark = pytest.mark.timeout(30)


@python_app
def add(a, b):
    return a + b


@python_app
def wait_for(gate_future):
    return gate_future


def test_app_before_load_raises_no_dfk():
    with pytest.raises(NoDataFlowKernelError, match="Must first load config"):
        add(1, 2)
    with pytest.raises(NoDataFlowKernelError):
        flowlib.dfk()


def test_load_returns_kernel_and_context_manager_cleans_up(tmp_path):
    with flowlib.load(Config(run_dir=str(tmp_path))) as dfk:
        assert flowlib.dfk() is dfk
        assert add(1, 2).result() == 3
    assert dfk.cleanup_called
    with pytest.raises(NoDataFlowKernelError, match="Must first load config"):
        flowlib.dfk()


def test_load_twice_is_a_clear_error(tmp_path):
    dfk = flowlib.load(Config(run_dir=str(tmp_path)))
    try:
        with pytest.raises(ConfigurationError, match="already been loaded") as raised:
            flowlib.load(Config(run_dir=str(tmp_path)))
        # as in Parsl ("Config has already been loaded"), and it says how to recover
        assert str(dfk.run_dir) in str(raised.value)
        assert "flowlib.dfk().cleanup()" in str(raised.value) and "flowlib.clear()" in str(raised.value)
    finally:
        dfk.cleanup()
    assert flowlib.load(Config(run_dir=str(tmp_path))).cleanup() is None


def test_clear_forgets_without_cleanup(tmp_path):
    dfk = flowlib.load(Config(run_dir=str(tmp_path)))
    flowlib.clear()
    with pytest.raises(NoDataFlowKernelError):
        flowlib.dfk()
    assert not dfk.cleanup_called
    dfk.cleanup()


def test_cleanup_twice_raises(tmp_path):
    dfk = DataFlowKernel(Config(run_dir=str(tmp_path)))
    dfk.cleanup()
    with pytest.raises(FlowlibError, match="already been called"):
        dfk.cleanup()


def test_submit_after_cleanup_raises(tmp_path):
    dfk = DataFlowKernel(Config(run_dir=str(tmp_path)))
    dfk.cleanup()
    app = python_app(lambda: 1, data_flow_kernel=dfk)
    with pytest.raises(NoDataFlowKernelError, match="cleaned up"):
        app()


def test_direct_kernel_with_data_flow_kernel_option(tmp_path):
    dfk = DataFlowKernel(config=Config(run_dir=str(tmp_path)))
    try:
        app = python_app(data_flow_kernel=dfk)(lambda x: x * 3)
        assert app(4).result() == 12
    finally:
        dfk.cleanup()


def test_run_directories_are_numbered(tmp_path):
    base = tmp_path / "runs"
    dirs = []
    for _ in range(3):
        dfk = DataFlowKernel(Config(run_dir=str(base)))
        dirs.append(dfk.run_dir)
        dfk.cleanup()
    assert [os.path.basename(d) for d in dirs] == ["000", "001", "002"]
    (base / "999").mkdir()
    dfk = DataFlowKernel(Config(run_dir=str(base)))
    dfk.cleanup()
    assert os.path.basename(dfk.run_dir) == "1000"


def test_run_log_is_info_and_removed_at_cleanup(tmp_path):
    dfk = DataFlowKernel(Config(run_dir=str(tmp_path)))
    app = python_app(lambda: 1, data_flow_kernel=dfk)
    for _ in range(50):
        app().result()
    dfk.cleanup()
    log = Path(dfk.run_dir, "flowlib.log").read_text()
    assert "DataFlowKernel starting" in log and "cleanup complete" in log
    assert "DEBUG" not in log
    # no per-task lines at INFO: the log stays small however many tasks ran
    assert len(log.splitlines()) < 20
    handlers = logging.getLogger("flowlib").handlers
    assert not any(getattr(h, "baseFilename", "").startswith(dfk.run_dir) for h in handlers)


def test_run_log_is_also_reachable_as_parsl_log(tmp_path):
    dfk = DataFlowKernel(Config(run_dir=str(tmp_path)))
    dfk.cleanup()
    parsl_log = Path(dfk.run_dir, "parsl.log")
    assert parsl_log.is_symlink()
    assert "DataFlowKernel starting" in parsl_log.read_text()
    assert parsl_log.read_text() == Path(dfk.run_dir, "flowlib.log").read_text()


def test_initialize_logging_false_writes_no_log(tmp_path):
    dfk = DataFlowKernel(Config(run_dir=str(tmp_path), initialize_logging=False))
    dfk.cleanup()
    assert not os.path.exists(os.path.join(dfk.run_dir, "flowlib.log"))
    assert not os.path.lexists(os.path.join(dfk.run_dir, "parsl.log"))


def test_json_logging(tmp_path):
    import json

    from flowlib.logconfigs.json import JSONLogging

    dfk = DataFlowKernel(Config(run_dir=str(tmp_path), initialize_logging=JSONLogging()))
    logging.getLogger("flowlib.test").info("with %s", "extra", extra={"parsl.somekey": "vv", "odd": object()})
    dfk.cleanup()
    lines = Path(dfk.run_dir, "flowlib.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert any("starting" in r["message"] for r in records)
    (mine,) = [r for r in records if r["logger"] == "flowlib.test"]
    assert (mine["message"], mine["msg"], mine["parsl.somekey"]) == ("with extra", "with %s", "vv")
    assert mine["odd"].startswith("<object object")  # not JSON: written as its str()
    # Parsl's name for the same file
    assert os.readlink(os.path.join(dfk.run_dir, "parsl.jsonlog")) == "flowlib.jsonl"


def test_exit_mode_wait_waits_for_tasks(tmp_path):
    gate: Future[int] = Future()
    with flowlib.load(Config(run_dir=str(tmp_path), exit_mode="wait")):
        fut = wait_for(gate)
        threading.Timer(0.2, gate.set_result, args=(7,)).start()
    assert fut.result(timeout=0) == 7


def test_exit_mode_skip_leaves_kernel_running(tmp_path):
    with flowlib.load(Config(run_dir=str(tmp_path), exit_mode="skip")) as dfk:
        pass
    assert not dfk.cleanup_called
    assert add(2, 2).result() == 4
    dfk.cleanup()


def test_cleanup_fails_tasks_still_waiting(tmp_path):
    gate: Future[int] = Future()
    dfk = flowlib.load(Config(run_dir=str(tmp_path)))
    fut = wait_for(gate)
    dfk.cleanup()
    with pytest.raises(FlowlibError, match="cleaned up"):
        fut.result(timeout=5)


def test_dependency_on_future_of_a_cleaned_up_kernel(tmp_path):
    gate: Future[int] = Future()
    first = DataFlowKernel(Config(run_dir=str(tmp_path)))
    stuck = python_app(data_flow_kernel=first)(lambda g: g)(gate)
    second = DataFlowKernel(Config(run_dir=str(tmp_path)))
    try:
        downstream = python_app(data_flow_kernel=second)(lambda x: x)(stuck)
        first.cleanup()
        with pytest.raises(flowlib.dataflow.errors.DependencyError, match=f"task {stuck.tid}"):
            downstream.result(timeout=5)
    finally:
        second.cleanup()


def test_loading_does_not_change_config(tmp_path):
    config = Config(run_dir=str(tmp_path), executors=[ThreadPoolExecutor(label="t")])
    before = repr(config)
    with flowlib.load(config):
        pass
    assert repr(config) == before


def test_wait_for_current_tasks(tmp_path):
    with flowlib.load(Config(run_dir=str(tmp_path))) as dfk:
        gate: Future[int] = Future()
        futs = [wait_for(gate) for _ in range(5)]
        threading.Timer(0.1, gate.set_result, args=(1,)).start()
        flowlib.wait_for_current_tasks()
        assert all(f.done() for f in futs)
        assert dfk.tasks == {}


def test_debug_logging_adds_per_task_lines_when_asked(tmp_path):
    from flowlib.logconfigs.file import FileLogging

    dfk = DataFlowKernel(Config(run_dir=str(tmp_path), initialize_logging=FileLogging(level=logging.DEBUG)))
    try:
        fut = python_app(lambda: 1, data_flow_kernel=dfk)()
        assert fut.result(timeout=10) == 1
    finally:
        dfk.cleanup()
    log = Path(dfk.run_dir, "flowlib.log").read_text()
    assert f"task {fut.tid} (<lambda>) launched -> exec_done" in log


def test_gc_threshold_is_raised_while_running_and_restored(tmp_path):
    import gc

    before = gc.get_threshold()
    dfk = DataFlowKernel(Config(run_dir=str(tmp_path)))
    try:
        assert gc.get_threshold()[0] == max(before[0], 50_000)
    finally:
        dfk.cleanup()
    assert gc.get_threshold() == before
    dfk = DataFlowKernel(Config(run_dir=str(tmp_path), gc_threshold=None))
    try:
        assert gc.get_threshold() == before
    finally:
        dfk.cleanup()


# -- loading again after a failure (a notebook's cells run again) ------------------------


@python_app
def boom(message):
    raise ValueError(message)


def test_a_thread_pool_config_loads_again_after_its_kernel_was_cleaned_up(tmp_path):
    # As with Parsl's thread pool: the same Config object, loaded cell after cell.
    config = Config(executors=[ThreadPoolExecutor(label="cells", max_threads=2)], run_dir=str(tmp_path))
    with pytest.raises(ValueError, match="cell 1"):
        with flowlib.load(config):
            boom("cell 1").result(timeout=10)
    with flowlib.load(config) as dfk:
        assert add(1, 2).result(timeout=10) == 3
        assert dfk.executors["cells"].statistics().submitted == 1  # counted afresh
    dfk = flowlib.load(config)
    assert add(2, 3).result(timeout=10) == 5
    dfk.cleanup()
    assert sorted(os.listdir(tmp_path)) == ["000", "001", "002"]


def test_a_reused_htex_config_is_refused_at_load_and_leaves_nothing_loaded(tmp_path):
    from flowlib.configs.htex_local import fresh_config

    config = fresh_config(max_workers_per_node=1, run_dir=str(tmp_path))
    with pytest.raises(ValueError, match="first"):
        with flowlib.load(config):
            boom("first").result(timeout=30)
    with pytest.raises(ConfigurationError, match="cannot be started again") as raised:
        flowlib.load(config)
    assert "'htex_local'" in str(raised.value) and "fresh_config()" in str(raised.value)
    with pytest.raises(NoDataFlowKernelError):
        flowlib.dfk()
    assert sorted(os.listdir(tmp_path)) == ["000"]  # refused before a run directory was made
    with flowlib.load(fresh_config(max_workers_per_node=1, run_dir=str(tmp_path))):
        assert add(3, 4).result(timeout=30) == 7


class _FailsToStart(ThreadPoolExecutor):
    def start(self):
        raise RuntimeError("this executor does not start")


def test_a_load_whose_executor_fails_to_start_stops_the_others_and_loads_nothing(tmp_path):
    first = ThreadPoolExecutor(label="first")
    config = Config(executors=[first, _FailsToStart(label="second")], run_dir=str(tmp_path))
    with pytest.raises(RuntimeError, match="does not start"):
        flowlib.load(config)
    with pytest.raises(NoDataFlowKernelError):
        flowlib.dfk()
    assert first._shutdown  # started before the failure, shut down by it
    with flowlib.load(Config(executors=[ThreadPoolExecutor()], run_dir=str(tmp_path))):
        assert add(1, 1).result(timeout=10) == 2


def test_a_logging_config_written_for_parsl_is_used(tmp_path):
    from flowlib.logconfigs.base import LogConfig

    calls = []

    class ParslStyle(LogConfig):
        def initialize_logging(self, *, log_dir, log_name, **kwargs):
            calls.append((log_dir, log_name))
            return lambda: calls.append("removed")

    dfk = DataFlowKernel(Config(run_dir=str(tmp_path), initialize_logging=ParslStyle()))
    dfk.cleanup()
    assert calls == [(dfk.run_dir, "parsl"), "removed"]


def test_a_logging_config_must_implement_one_interface(tmp_path):
    from flowlib.logconfigs.base import LoggingConfig

    class Neither(LoggingConfig):
        pass

    with pytest.raises(NotImplementedError, match="initialize_logging"):
        DataFlowKernel(Config(run_dir=str(tmp_path), initialize_logging=Neither()))
    flowlib.clear()
