"""The Slurm workflow of test_htex_slurm.py, through GridEngineProvider on the real Grid Engine.

Queue all.q (tests/services/sge-up.sh) has one slot per core (2): each block is a
one-slot job, so two blocks run at once. Each task reports the Grid Engine job it
ran in (``JOB_ID``). A job that has left ``qstat`` is resolved through ``qacct``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from flowlib import python_app
from flowlib.executors.errors import BadStateException
from flowlib.jobs.states import JobState
from flowlib.providers import GridEngineProvider

from .conftest import GRID_ENGINE, WorkflowFactory, wait_until

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("gridengine")]


@python_app
def square_in_job(x: int, delay: float = 0.0, gate: str | None = None) -> tuple[int, str | None]:
    """x * x and the job it ran in, after ``delay`` s, or once the file ``gate`` exists (60 s at most)."""
    import os
    import time

    deadline = time.monotonic() + 60
    while gate is not None and not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(delay)
    return x * x, os.environ.get("JOB_ID")


def sge_provider(**kwargs: Any) -> GridEngineProvider:
    kwargs.setdefault("max_blocks", 2)
    provider = GridEngineProvider(init_blocks=0, min_blocks=0, walltime="00:05:00", queue="all.q", **kwargs)
    provider.retry_backoff = 0.1
    return provider


def test_scales_from_zero_to_two_blocks_and_back(workflow: WorkflowFactory, tmp_path: Path) -> None:
    wf = workflow(sge_provider(), GRID_ENGINE, strategy="simple", max_idletime=2)
    assert wf.executor.block_status() == {}

    gate = tmp_path / "gate"
    futures = [square_in_job(i, gate=str(gate)) for i in range(8)]
    wait_until(lambda: len(wf.busy_blocks()) == 2, 90, lambda: f"not two busy blocks: {wf.describe()}")
    jobs = wf.job_ids()
    assert len(jobs) == 2, wf.describe()
    assert set(jobs) <= GRID_ENGINE.active_jobs()
    gate.touch()
    results = [f.result(timeout=60) for f in futures]

    assert [value for value, _ in results] == [i * i for i in range(8)]
    assert {job for _, job in results} == set(jobs), "every task ran inside one of the two blocks' jobs"
    assert wf.job_ids() == jobs, "no third block"

    wait_until(lambda: set(wf.states().values()) == {"SCALED_IN"}, 30, lambda: f"blocks not scaled in: {wf.describe()}")
    wait_until(lambda: not set(jobs) & GRID_ENGINE.active_jobs(), 30, lambda: f"jobs still in qstat: {wf.describe()}")


def test_a_block_deleted_behind_flowlibs_back_is_replaced(workflow: WorkflowFactory) -> None:
    wf = workflow(sge_provider(max_blocks=1), GRID_ENGINE, retries=2)
    futures = [square_in_job(i, delay=1.0) for i in range(6)]

    wait_until(lambda: wf.executor.connected_workers > 0, 60, wf.describe)
    (first,) = wf.job_ids()
    wait_until(lambda: any(f.done() for f in futures), 60, lambda: f"no task finished: {wf.describe()}")
    subprocess.run(["qdel", first], check=True, timeout=30, capture_output=True)

    # qdel'd: the job leaves qstat, and qacct says it was killed by a signal.
    wait_until(
        lambda: wf.executor.block_status()["0"].state is JobState.CANCELLED,
        45,
        lambda: f"the deleted block was not noticed: {wf.describe()}",
    )
    replacement = wait_until(lambda: wf.job_ids()[1:], 30, lambda: f"no new block: {wf.describe()}")[0]

    results = [f.result(timeout=120) for f in futures]
    assert [value for value, _ in results] == [i * i for i in range(6)]
    retried = [f.task_record["fail_history"] for f in futures if f.task_record["fail_count"]]
    assert retried, "a task was running on the block when it went"
    assert all("WorkerLost" in h or "ManagerLost" in h for history in retried for h in history), retried
    assert replacement in {job for _, job in results}, "the replacement block ran the rest"


def test_a_job_that_fails_at_start_fails_the_tasks_with_its_stderr(workflow: WorkflowFactory) -> None:
    provider = sge_provider(max_blocks=1, worker_init="echo boom-marker >&2; exit 7")
    wf = workflow(provider, GRID_ENGINE)
    future = square_in_job(3)

    error = future.exception(timeout=90)

    assert isinstance(error, BadStateException), repr(error)
    assert "boom-marker" in str(error), str(error)
    assert "exit_status 7" in str(error), str(error)
    assert wf.states() == {"0": "FAILED"}
