"""SlurmProvider against the real single-node Slurm that tests/services/slurm-up.sh starts.

Skipped when Slurm is not up, unless CI=true: then a missing Slurm fails the tests.
Slurm runs without accounting here (no slurmdbd), so a job that leaves squeue is
resolved through ``scontrol show job``; with ``SLURM_ACCOUNTING=1`` the same tests
go through ``sacct``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import require_service

from flowlib.channels.local import LocalChannel
from flowlib.jobs.states import JobState, JobStatus
from flowlib.providers import SlurmProvider
from flowlib.providers.errors import SchedulerCommandError, SubmitException

pytestmark = pytest.mark.timeout(90)

SERVICES = Path(__file__).parent / "services"


def slurm_idle() -> bool:
    if shutil.which("sinfo") is None:
        return False
    out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20).stdout
    return any(state in out for state in ("idle", "mix", "alloc"))


@pytest.fixture(scope="module", autouse=True)
def slurm_up() -> None:
    require_service("slurm", slurm_idle)


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., SlurmProvider]]:
    made: list[SlurmProvider] = []

    def build(**kwargs: Any) -> SlurmProvider:
        kwargs.setdefault("partition", "debug")
        kwargs.setdefault("exclusive", False)  # one 2-core node: let blocks share it
        kwargs.setdefault("walltime", "00:05:00")
        provider = SlurmProvider(**kwargs)
        provider.script_dir = str(tmp_path / "scripts")
        provider.retry_backoff = 0.05
        made.append(provider)
        return provider

    yield build
    for provider in made:  # no job outlives its test
        left = [j for j, r in provider.resources.items() if not r["status"].terminal]
        if left:
            subprocess.run(["scancel", *left], timeout=20)


def wait_for(provider: SlurmProvider, job_id: str, states: set[JobState], timeout: float = 45) -> list[JobStatus]:
    """Poll until the job is in one of ``states``; return every status seen."""
    seen: list[JobStatus] = []
    deadline = time.monotonic() + timeout
    while True:
        status = provider.status([job_id])[0]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status.state in states:
            return seen
        if time.monotonic() > deadline or status.terminal:
            raise AssertionError(f"job {job_id} went through {seen}, not to {states}")
        time.sleep(0.2)


def squeue_state(job_id: str) -> str:
    cmd = ["squeue", "-h", "-t", "all", "-o", "%t", "-j", job_id]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()


def test_blocks_run_to_completion_through_srun(make, tmp_path: Path):
    provider = make()
    markers = [tmp_path / f"marker{i}" for i in range(2)]
    jobs = [
        provider.submit(f"sleep 3; echo $SLURM_PROCID > {m}", 1, f"flowlib.htex.block-{i}")
        for i, m in enumerate(markers)
    ]
    seen = wait_for(provider, jobs[0], {JobState.COMPLETED})
    assert {s.state for s in seen} <= {JobState.PENDING, JobState.RUNNING, JobState.COMPLETED}
    assert JobState.RUNNING in {s.state for s in seen} or JobState.PENDING in {s.state for s in seen}
    wait_for(provider, jobs[1], {JobState.COMPLETED})
    assert [s.state for s in provider.status(jobs)] == [JobState.COMPLETED] * 2  # one squeue for both
    assert [m.read_text() for m in markers] == ["0\n", "0\n"]
    assert provider.resources[jobs[0]]["job_name"].startswith("flowlib.htex.block-0.")


def test_cancel_a_sleeping_block(make):
    provider = make()
    job = provider.submit("sleep 300", 1)
    wait_for(provider, job, {JobState.RUNNING})
    assert provider.cancel([job]) == [True]
    assert provider.status([job])[0].state is JobState.CANCELLED
    deadline = time.monotonic() + 20
    while squeue_state(job) not in ("CA", "") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert squeue_state(job) in ("CA", "")


def test_scancel_behind_the_providers_back_is_noticed(make):
    provider = make()
    job = provider.submit("sleep 300", 1)
    wait_for(provider, job, {JobState.RUNNING})
    subprocess.run(["scancel", job], check=True, timeout=20)
    status = wait_for(provider, job, {JobState.CANCELLED})[-1]
    assert "CA" in (status.message or "")


@pytest.mark.parametrize(
    "worker_init, code, text",
    [
        ("echo loading-env-failed >&2; (exit 3)", 3, "loading-env-failed"),
        ("no_such_module_cmd", 127, "command not found"),
    ],
)
def test_a_block_failing_at_start_reports_its_stderr(make, tmp_path: Path, worker_init: str, code: int, text: str):
    provider = make(worker_init=worker_init)
    job = provider.submit(f"touch {tmp_path}/never", 1)
    status = wait_for(provider, job, {JobState.FAILED})[-1]
    assert status.exit_code == code
    assert text in (status.message or "") and "worker_init failed" in (status.message or "")
    assert not (tmp_path / "never").exists()


def test_unknown_partition_names_it_and_sbatchs_error(make):
    provider = make(partition="nosuchpartition")
    with pytest.raises(SubmitException) as info:
        provider.submit("true", 1)
    text = str(info.value)
    assert "nosuchpartition" in text and "invalid partition" in text.lower()
    assert provider.resources == {}


def fake_command(tmp_path: Path, name: str, body: str) -> LocalChannel:
    """A channel whose PATH starts with a directory holding a fake ``name``."""
    fakebin = tmp_path / "fakebin"
    fakebin.mkdir(exist_ok=True)
    (fakebin / name).write_text(f"#!/bin/sh\n{body}\n")
    (fakebin / name).chmod(0o755)
    return LocalChannel(envs={"PATH": f"{fakebin}{os.pathsep}{os.environ['PATH']}"})


def test_a_job_that_vanishes_from_squeue_is_resolved(make, tmp_path: Path):
    provider = make(channel=fake_command(tmp_path, "squeue", "exit 0"))  # squeue that lists nothing
    job = provider.submit("true", 1)
    status = wait_for(provider, job, {JobState.COMPLETED})[-1]
    assert "scontrol JobState=COMPLETED" in (status.message or "") or "sacct State=COMPLETED" in (status.message or "")
    missing = provider.status(["987654321"])[0]
    assert missing.state is JobState.MISSING and "no longer knows job 987654321" in (missing.message or "")


def test_garbage_from_squeue(make, tmp_path: Path):
    provider = make(channel=fake_command(tmp_path, "squeue", "echo 'Segmentation fault (core dumped)'"))
    job = provider.submit("sleep 30", 1)
    with pytest.raises(SchedulerCommandError, match="cannot parse squeue"):
        provider.status([job])
    assert provider.resources[job]["status"].state is JobState.PENDING  # the table keeps the job


def test_scheduler_command_missing_from_path(make, tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    provider = make(channel=LocalChannel(envs={"PATH": str(empty)}))
    with pytest.raises(SubmitException, match="sbatch was not found on the PATH"):
        provider.submit("true", 1)
