"""LostBlockWatch decisions, driven with no thread, process or socket (the real thing: tests/htex/test_faults.py)."""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import Any

import pytest

from flowlib.executors.block_provider import BlockProviderExecutor
from flowlib.executors.block_watch import LostBlockWatch
from flowlib.executors.errors import BadStateException
from flowlib.jobs.states import JobState, JobStatus

pytestmark = pytest.mark.timeout(10)


class ScriptedProvider:
    """Answers status() from a table the test sets; records cancels."""

    init_blocks = 1
    min_blocks = 0
    max_blocks = 1
    status_polling_interval = 1.0

    def __init__(self) -> None:
        self.states: dict[str, JobStatus] = {}
        self.cancelled: list[str] = []

    def submit(self, command: str, tasks_per_node: int, job_name: str = "") -> str:
        job_id = str(100 + len(self.states))
        self.states[job_id] = JobStatus(JobState.RUNNING, "running")
        return job_id

    def status(self, job_ids: list[str]) -> list[JobStatus]:
        return [self.states[j] for j in job_ids]

    def cancel(self, job_ids: list[str]) -> list[bool]:
        self.cancelled += job_ids
        return [True] * len(job_ids)


class RecordingExecutor(BlockProviderExecutor):
    label = "fake"

    def __init__(self, strategy: str | None = None) -> None:
        self.scripted = ScriptedProvider()
        super().__init__(provider=self.scripted, block_error_handler=False)  # type: ignore[arg-type]
        self.scaling_strategy = strategy
        self.failed_with: BaseException | None = None

    def start(self) -> None:
        pass

    def submit(self, func: Any, resource_specification: dict[str, Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        raise NotImplementedError

    def shutdown(self) -> None:
        pass

    def launch_command(self, block_id: str) -> str:
        return "true"

    def fail_all_outstanding(self, exc: BaseException) -> None:
        self.failed_with = exc


def one_block(strategy: str | None = None) -> tuple[RecordingExecutor, LostBlockWatch]:
    executor = RecordingExecutor(strategy)
    executor.scale_out(1)
    watch = LostBlockWatch(executor, period=0.5, grace=3.0, stopped=lambda: False)
    watch.pool_registered("0", "pool-a")
    return executor, watch


def test_lost_block_with_ended_job_fails_the_executor_naming_block_job_and_state():
    executor, watch = one_block("none")
    executor.scripted.states["100"] = JobStatus(JobState.CANCELLED, "killed by a signal")
    watch.pool_lost("0", "pool-a", "its connection closed")
    watch.check(time.monotonic())
    exc = executor.failed_with
    assert isinstance(exc, BadStateException) and executor.bad_state_is_set
    assert "block 0 (job 100) was lost: its job is CANCELLED (killed by a signal)" in str(exc)
    assert "its last worker pool (pool-a) was lost: its connection closed" in str(exc)
    assert "strategy 'none' starts no replacement" in str(exc)


def test_a_scaling_strategy_leaves_the_replacement_to_the_strategy():
    executor, watch = one_block("simple")
    executor.scripted.states["100"] = JobStatus(JobState.FAILED, "exit 137")
    watch.pool_lost("0", "pool-a", "gone")
    watch.check(time.monotonic())
    assert executor.failed_with is None and not executor.bad_state_is_set


def test_a_drained_pool_is_not_a_lost_block():
    executor, watch = one_block()
    executor.scripted.states["100"] = JobStatus(JobState.COMPLETED, "exit 0")
    watch.pool_lost("0", "pool-a", "drained")
    watch.check(time.monotonic())
    assert executor.failed_with is None


def test_pools_of_blocks_not_started_by_the_executor_never_fail_it():
    executor, watch = one_block()
    watch.pool_registered("by-hand", "pool-x")
    watch.pool_lost("by-hand", "pool-x", "no heartbeat")
    watch.check(time.monotonic())
    assert executor.failed_with is None


def test_another_pool_of_the_block_keeps_it_alive():
    executor, watch = one_block()
    watch.pool_registered("0", "pool-b")
    executor.scripted.states["100"] = JobStatus(JobState.CANCELLED)
    watch.pool_lost("0", "pool-a", "gone")
    watch.check(time.monotonic())
    assert executor.failed_with is None


def test_a_running_job_without_pools_is_lost_after_the_grace_and_cancelled():
    executor, watch = one_block()
    watch.pool_lost("0", "pool-a", "no heartbeat for 3.1 s")
    now = time.monotonic()
    watch.check(now + 1.0)  # within the grace: the job may be ending, a pool may come back
    assert executor.failed_with is None and executor.scripted.cancelled == []
    watch.check(now + 3.5)
    assert isinstance(executor.failed_with, BadStateException)
    assert "no worker pool came back within 3 s while its job stayed RUNNING" in str(executor.failed_with)
    assert executor.scripted.cancelled == ["100"]
    assert executor.block_status()["0"].state is JobState.FAILED


def test_a_pool_coming_back_within_the_grace_saves_the_block():
    executor, watch = one_block()
    watch.pool_lost("0", "pool-a", "no heartbeat")
    watch.pool_registered("0", "pool-a2")
    watch.check(time.monotonic() + 10)
    assert executor.failed_with is None and executor.scripted.cancelled == []


def test_a_block_released_by_scaling_is_not_lost():
    executor, watch = one_block()
    executor.scale_in(block_ids=["0"], drain=False)
    watch.pool_lost("0", "pool-a", "its connection closed")
    watch.check(time.monotonic())
    assert executor.failed_with is None
