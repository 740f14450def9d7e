"""Parsl's htex methods and record keys: connected_managers() fields, connected_blocks(),
outstanding(), validate_resource_spec, status()/handle_errors, workers_per_node."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from conftest import try_assert

import flowlib
from flowlib import python_app
from flowlib.config import Config
from flowlib.executors.errors import InvalidResourceSpecification
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.executors.high_throughput.mpi_executor import MPIExecutor
from flowlib.jobs.error_handlers import simple_error_handler
from flowlib.jobs.states import JobState, JobStatus
from flowlib.launchers import SimpleLauncher
from flowlib.providers import LocalProvider

pytestmark = pytest.mark.timeout(90)


@python_app
def quick(x: int) -> int:
    return x


def htex_config(tmp_path: Path, **provider: Any) -> Config:
    executor = HighThroughputExecutor(
        label="htex",
        max_workers_per_node=1,
        heartbeat_period=1,
        heartbeat_threshold=10,
        provider=LocalProvider(**provider),
    )
    return Config(executors=[executor], run_dir=str(tmp_path / "run"), strategy="none")


def test_running_executor_reports_managers_blocks_and_outstanding(tmp_path: Path) -> None:
    with flowlib.load(htex_config(tmp_path, init_blocks=1, max_blocks=2)) as dfk:
        htex = dfk.executors["htex"]
        assert isinstance(htex, HighThroughputExecutor)
        assert htex.outstanding == 0 and htex.outstanding() == 0  # a property and, as in Parsl, callable
        assert type(htex.outstanding()) is int
        assert quick(1).result(timeout=60) == 1
        # a local pool's result reaches the executor directly; the interchange hears of it a little later
        try_assert(
            lambda: htex.connected_managers()[0]["tasks"] == 0, timeout=10, message="the pool still holds the task"
        )
        (manager,) = htex.connected_managers()
        # Parsl's keys next to flowlib's
        assert manager["manager"] == manager["pool_id"]
        assert manager["block_id"] == "0"
        assert manager["active"] is True and manager["draining"] is False
        assert manager["parsl_version"] == manager["flowlib_version"] == flowlib.__version__
        assert manager["tasks"] == manager["outstanding"] == 0
        assert manager["idle_duration"] >= 0.0
        assert manager["worker_count"] == 1
        assert htex.connected_blocks() == ["0"]
        # Parsl's layout of the executor's files: <run_dir>/<label>/...
        label_dir = Path(dfk.run_dir) / "htex"
        assert htex.logdir == str(label_dir)
        assert (label_dir / "interchange.log").is_file()
        pool_dir = label_dir / "block-0" / manager["pool_id"]
        try_assert(lambda: (pool_dir / "worker_0.log").is_file(), timeout=10, message="no worker_0.log")
        assert (pool_dir / "manager.log").is_file()
        # a released block stays in the history; the next block is added
        htex.scale_in(block_ids=["0"])
        htex.scale_out(1)
        assert quick(2).result(timeout=60) == 2
        try_assert(lambda: htex.connected_blocks() == ["0", "1"], timeout=30, message="block 1 never connected")
        # status() is Parsl's name for block_status()
        status = htex.status()
        assert status == htex.block_status()
        assert status["0"].state is JobState.SCALED_IN


def test_a_local_block_is_running_once_submitted(tmp_path: Path) -> None:
    with flowlib.load(htex_config(tmp_path, init_blocks=1, max_blocks=1)) as dfk:
        htex = dfk.executors["htex"]
        # LocalProvider starts the block's process when it submits, so the block is RUNNING at once
        assert htex.status()["0"].state is JobState.RUNNING


def test_validate_resource_spec_is_called_by_submit_and_names_bad_keys() -> None:
    htex = HighThroughputExecutor(provider=LocalProvider(init_blocks=0))
    assert htex.validate_resource_spec({}) is None
    assert htex.validate_resource_spec({"priority": 2, "cores": 1}) is None
    with pytest.raises(InvalidResourceSpecification, match="num_nodes"):
        htex.validate_resource_spec({"num_nodes": 2})
    with mock.patch.object(htex, "validate_resource_spec", side_effect=InvalidResourceSpecification({"x"}, "no")):
        with pytest.raises(InvalidResourceSpecification, match="no"):
            htex.submit(quick, {"x": 1}, 1)  # validated before anything else, also on an executor not started


def test_mpi_executor_validates_its_own_keys() -> None:
    mpi = MPIExecutor(provider=LocalProvider(init_blocks=0, launcher=SimpleLauncher()))
    assert mpi.validate_resource_spec({"num_nodes": 1, "num_ranks": 2}) is None
    with pytest.raises(InvalidResourceSpecification, match="cores"):
        mpi.validate_resource_spec({"cores": 2})


def failed(*ids: str) -> dict[str, JobStatus]:
    return {i: JobStatus(JobState.FAILED) for i in ids}


def test_handle_errors_calls_the_block_error_handler() -> None:
    handler = mock.Mock()
    htex = HighThroughputExecutor(block_error_handler=handler, provider=LocalProvider(init_blocks=0))
    htex.handle_errors(failed("1", "2"))
    handler.assert_called_once_with(htex, failed("1", "2"))


def test_handle_errors_with_parsl_handlers() -> None:
    htex = HighThroughputExecutor(block_error_handler=simple_error_handler, provider=LocalProvider(init_blocks=0))
    htex.set_bad_state_and_fail_all = mock.Mock()  # type: ignore[method-assign]
    htex.handle_errors(failed("1", "2"))
    htex.set_bad_state_and_fail_all.assert_not_called()
    htex.handle_errors(failed("1", "2", "3"))
    htex.set_bad_state_and_fail_all.assert_called_once()
    quiet = HighThroughputExecutor(block_error_handler=False, provider=LocalProvider(init_blocks=0))
    quiet.set_bad_state_and_fail_all = mock.Mock()  # type: ignore[method-assign]
    quiet.handle_errors(failed("1", "2", "3", "4"))
    quiet.set_bad_state_and_fail_all.assert_not_called()


def test_workers_per_node_counts_memory() -> None:
    provider = LocalProvider(init_blocks=0)
    provider.cores_per_node = 8
    provider.mem_per_node = 16
    one = HighThroughputExecutor(max_workers_per_node=16, cores_per_worker=4, mem_per_worker=16, provider=provider)
    assert one.workers_per_node == 1  # one worker takes all the memory
    two = HighThroughputExecutor(max_workers_per_node=16, cores_per_worker=4, mem_per_worker=2, provider=provider)
    assert two.workers_per_node == 2  # cores are the limit


def test_mpi_executor_takes_htex_keywords_except_worker_sizing() -> None:
    import inspect

    htex = set(inspect.signature(HighThroughputExecutor.__init__).parameters)
    mpi = set(inspect.signature(MPIExecutor.__init__).parameters)
    sizing = {"available_accelerators", "cores_per_worker", "max_workers_per_node", "mem_per_worker", "cpu_affinity"}
    assert mpi - htex == {"max_workers_per_block", "mpi_launcher"}
    assert htex - mpi == sizing | {"manager_selector"}
    executor = MPIExecutor(prefetch_capacity=3, provider=LocalProvider(init_blocks=0, launcher=SimpleLauncher()))
    assert executor.options.prefetch_capacity == 3
    assert MPIExecutor.__doc__ is not None and ":param label:" in MPIExecutor.__doc__


def test_a_launcher_other_than_simple_is_a_type_error_for_mpi() -> None:
    from flowlib.errors import ConfigurationError, UnsuitableLauncherError
    from flowlib.launchers import AprunLauncher, SrunLauncher
    from flowlib.providers import SlurmProvider

    with pytest.raises(TypeError, match="SimpleLauncher") as caught:
        MPIExecutor(provider=SlurmProvider(launcher=SrunLauncher()))
    assert isinstance(caught.value, ConfigurationError)
    # a launcher the provider itself cannot use is refused by the provider, with the same class
    with pytest.raises(UnsuitableLauncherError, match="aprun"):
        MPIExecutor(provider=SlurmProvider(launcher=AprunLauncher()))


def test_the_run_logs_format_reaches_the_executors_logs(tmp_path: Path) -> None:
    from flowlib.logconfigs.file import FileLogging

    token = "TOKEN42"
    config = htex_config(tmp_path, init_blocks=1, max_blocks=1)
    config.initialize_logging = FileLogging(format_string=f"{token} %(message)s")
    with flowlib.load(config) as dfk:
        assert quick(3).result(timeout=60) == 3
        htex = dfk.executors["htex"]
        assert htex.log_format == f"{token} %(message)s"
        (manager,) = htex.connected_managers()
        label_dir = Path(dfk.run_dir) / "htex"
        pool_dir = label_dir / "block-0" / manager["pool_id"]
        try_assert(lambda: (pool_dir / "worker_0.log").is_file(), timeout=10, message="no worker_0.log")
    for log in (label_dir / "interchange.log", pool_dir / "manager.log", pool_dir / "worker_0.log"):
        lines = log.read_text().splitlines()
        assert lines and all(line.startswith(token) for line in lines if line.strip()), log


def test_the_executors_logs_keep_their_format_by_default(tmp_path: Path) -> None:
    with flowlib.load(htex_config(tmp_path, init_blocks=1, max_blocks=1)) as dfk:
        assert quick(4).result(timeout=60) == 4
        assert dfk.executors["htex"].log_format is None
        text = (Path(dfk.run_dir) / "htex" / "interchange.log").read_text()
    assert "flowlib.interchange INFO: " in text


@pytest.mark.parametrize("blocks", [1, 2])
def test_blocks_that_end_before_any_worker_connects_fail_the_executor(tmp_path: Path, blocks: int) -> None:
    from flowlib.executors.errors import BadStateException

    config = htex_config(tmp_path, init_blocks=blocks, min_blocks=0, max_blocks=blocks, worker_init="exit 0")
    config.strategy_period = 0.2
    with flowlib.load(config) as dfk:
        fut = quick(5)
        with pytest.raises(BadStateException, match="EXIT CODE: 0") as caught:
            fut.result(timeout=60)
        assert "before any worker of it connected" in str(caught.value)
        htex = dfk.executors["htex"]
        status = htex.status()
        assert len(status) == blocks and {s.state for s in status.values()} == {JobState.MISSING}
        assert htex.connected_blocks() == []


class _RefusingProvider(LocalProvider):
    def submit(self, *args: Any, **kwargs: Any) -> str:
        raise RuntimeError("no submitting today")


def test_a_block_whose_submit_failed_is_missing_and_fails_the_executor(tmp_path: Path) -> None:
    from flowlib.executors.errors import BadStateException

    executor = HighThroughputExecutor(label="htex", provider=_RefusingProvider(init_blocks=1, max_blocks=1))
    with flowlib.load(Config(executors=[executor], run_dir=str(tmp_path / "run"), strategy="none")):
        with pytest.raises(BadStateException, match="no submitting today"):
            quick(1).result(timeout=60)
        (status,) = executor.status().values()
        assert status.state is JobState.MISSING and "submit failed" in (status.message or "")
