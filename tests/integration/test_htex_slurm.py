"""A workflow on the high-throughput executor whose workers are real Slurm jobs.

The single Slurm node (tests/services/slurm-up.sh) has 2 CPUs: blocks ask for one
CPU each and share the node (``exclusive=False``), so two blocks run at once.
Each task reports the Slurm job it ran in (``SLURM_JOB_ID``), which is how the
tests know the work really went through Slurm's jobs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from flowlib import python_app
from flowlib.executors.errors import BadStateException
from flowlib.jobs.states import JobState
from flowlib.launchers import SrunLauncher
from flowlib.providers import SlurmProvider

from .conftest import SLURM, WorkflowFactory, squeue_state, wait_until

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("slurm")]


@python_app
def square_in_job(x: int, delay: float = 0.0, gate: str | None = None) -> tuple[int, str | None]:
    """x * x and the job it ran in, after ``delay`` s, or once the file ``gate`` exists (60 s at most)."""
    import os
    import time

    deadline = time.monotonic() + 60
    while gate is not None and not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(delay)
    return x * x, os.environ.get("SLURM_JOB_ID")


def slurm_provider(**kwargs: Any) -> SlurmProvider:
    kwargs.setdefault("max_blocks", 2)
    provider = SlurmProvider(
        partition="debug",
        launcher=SrunLauncher(),
        init_blocks=0,
        min_blocks=0,
        nodes_per_block=1,
        cores_per_node=1,
        exclusive=False,
        walltime="00:05:00",
        **kwargs,
    )
    provider.retry_backoff = 0.1
    return provider


def test_scales_from_zero_to_two_blocks_and_back(workflow: WorkflowFactory, tmp_path: Path) -> None:
    wf = workflow(slurm_provider(), SLURM, max_idletime=2)
    assert wf.executor.block_status() == {}  # init_blocks=0: nothing until there is work

    gate = tmp_path / "gate"
    futures = [square_in_job(i, gate=str(gate)) for i in range(8)]
    # The tasks wait at the gate until both blocks' pools hold one: two Slurm jobs run at once.
    wait_until(lambda: len(wf.busy_blocks()) == 2, 90, lambda: f"not two busy blocks: {wf.describe()}")
    jobs = wf.job_ids()
    assert len(jobs) == 2, wf.describe()
    assert [squeue_state(j) for j in jobs] == ["R", "R"]
    gate.touch()
    results = [f.result(timeout=60) for f in futures]

    assert [value for value, _ in results] == [i * i for i in range(8)]
    assert {job for _, job in results} == set(jobs), "every task ran inside one of the two blocks' Slurm jobs"
    assert wf.job_ids() == jobs, "no third block"

    # Idle for max_idletime: both blocks are drained and released, and leave Slurm's queue.
    wait_until(lambda: set(wf.states().values()) == {"SCALED_IN"}, 30, lambda: f"blocks not scaled in: {wf.describe()}")
    wait_until(lambda: not set(jobs) & SLURM.active_jobs(), 30, lambda: f"jobs still in squeue: {wf.describe()}")
    assert wf.executor.active_blocks() == []


def test_a_block_cancelled_behind_flowlibs_back_is_replaced(workflow: WorkflowFactory) -> None:
    wf = workflow(slurm_provider(max_blocks=1), SLURM, retries=2)
    futures = [square_in_job(i, delay=1.0) for i in range(6)]

    wait_until(lambda: wf.executor.connected_workers > 0, 60, wf.describe)
    (first,) = wf.job_ids()
    wait_until(lambda: any(f.done() for f in futures), 60, lambda: f"no task finished: {wf.describe()}")
    subprocess.run(["scancel", first], check=True, timeout=30)

    wait_until(
        lambda: wf.executor.block_status()["0"].state is JobState.CANCELLED,
        30,
        lambda: f"the scancel'd block was not noticed: {wf.describe()}",
    )
    replacement = wait_until(lambda: wf.job_ids()[1:], 30, lambda: f"no new block: {wf.describe()}")[0]
    assert replacement != first

    results = [f.result(timeout=120) for f in futures]
    assert [value for value, _ in results] == [i * i for i in range(6)]
    retried = [f.task_record["fail_history"] for f in futures if f.task_record["fail_count"]]
    assert retried, "a task was running on the block when it went"
    assert all("WorkerLost" in h or "ManagerLost" in h for history in retried for h in history), retried
    assert {job for _, job in results} <= {first, replacement}
    assert replacement in {job for _, job in results}, "the replacement block ran the rest"
    assert squeue_state(first) in ("CA", ""), "Slurm saw the first job cancelled"


def test_a_job_that_fails_at_start_fails_the_tasks_with_its_stderr(workflow: WorkflowFactory) -> None:
    provider = slurm_provider(max_blocks=1, worker_init="echo boom-marker >&2; exit 7")
    wf = workflow(provider, SLURM)
    future = square_in_job(3)

    error = future.exception(timeout=60)

    assert isinstance(error, BadStateException), repr(error)
    assert "boom-marker" in str(error), str(error)
    assert "exit code 7" in str(error), str(error)
    assert wf.states() == {"0": "FAILED"}
    assert wf.executor.connected_workers == 0
