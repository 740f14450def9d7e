"""The Slurm workflow of test_htex_slurm.py, through GridEngineProvider on the real Grid Engine.

Queue all.q (tests/services/sge-up.sh) has one slot per core (2): each block is a
one-slot job, so two blocks run at once. Each task reports the Grid Engine job it
ran in (``JOB_ID``). A job that has left ``qstat`` is resolved through ``qacct``.
"""

from __future__ import annotations

from typing import Any

import pytest

from flowlib import python_app
from flowlib.executors.errors import BadStateException
from flowlib.providers import GridEngineProvider

from .conftest import GRID_ENGINE, WorkflowFactory, wait_until

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("gridengine")]


@python_app
def square_in_job(x: int, delay: float = 0.0) -> tuple[int, str | None]:
    import os
    import time

    time.sleep(delay)
    return x * x, os.environ.get("JOB_ID")


def sge_provider(**kwargs: Any) -> GridEngineProvider:
    kwargs.setdefault("max_blocks", 2)
    provider = GridEngineProvider(init_blocks=0, min_blocks=0, walltime="00:05:00", queue="all.q", **kwargs)
    provider.retry_backoff = 0.1
    return provider


def test_scales_from_zero_to_two_blocks_and_back(workflow: WorkflowFactory) -> None:
    wf = workflow(sge_provider(), GRID_ENGINE, max_idletime=2)

    futures = [square_in_job(i, delay=1.0) for i in range(8)]
    results = [f.result(timeout=120) for f in futures]

    assert [value for value, _ in results] == [i * i for i in range(8)]
    jobs = wf.job_ids()
    assert len(jobs) == 2, wf.describe()
    assert {job for _, job in results} == set(jobs), "every task ran inside one of the two blocks' jobs"

    wait_until(
        lambda: set(wf.states().values()) == {"SCALED_IN"}, 30, lambda: f"blocks not scaled in: {wf.describe()}"
    )
    wait_until(
        lambda: not set(jobs) & GRID_ENGINE.active_jobs(), 30, lambda: f"jobs still in qstat: {wf.describe()}"
    )


def test_a_job_that_fails_at_start_fails_the_tasks_with_its_stderr(workflow: WorkflowFactory) -> None:
    provider = sge_provider(max_blocks=1, worker_init="echo boom-marker >&2; exit 7")
    wf = workflow(provider, GRID_ENGINE)
    future = square_in_job(3)

    error = future.exception(timeout=90)

    assert isinstance(error, BadStateException), repr(error)
    assert "boom-marker" in str(error), str(error)
    assert "exit_status 7" in str(error), str(error)
    assert wf.states() == {"0": "FAILED"}
