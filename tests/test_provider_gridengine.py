"""GridEngineProvider against the real Grid Engine that tests/services/sge-up.sh starts.

Skipped when Grid Engine is not up, unless CI=true: then a missing Grid Engine fails
the tests. Finished jobs leave qstat and are resolved through qacct.
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
from flowlib.providers import GridEngineProvider
from flowlib.providers.errors import SchedulerCommandError, SubmitException

pytestmark = pytest.mark.timeout(90)

SERVICES = Path(__file__).parent / "services"


def sge_ready() -> bool:
    if shutil.which("qstat") is None or shutil.which("qconf") is None:
        return False
    out = subprocess.run(["qstat", "-f", "-q", "all.q"], capture_output=True, text=True, timeout=20).stdout
    # a queue instance line "all.q@host  BIP  0/0/2  0.01  lx-amd64" has no 6th (state) column when usable
    return any(line.startswith("all.q@") and len(line.split()) == 5 for line in out.splitlines())


@pytest.fixture(scope="module", autouse=True)
def sge_up() -> None:
    require_service("sge", sge_ready)


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., GridEngineProvider]]:
    made: list[GridEngineProvider] = []

    def build(**kwargs: Any) -> GridEngineProvider:
        kwargs.setdefault("walltime", "00:05:00")
        provider = GridEngineProvider(**kwargs)
        provider.script_dir = str(tmp_path / "scripts")
        provider.retry_backoff = 0.05
        made.append(provider)
        return provider

    yield build
    for provider in made:  # no job outlives its test
        left = [j for j, r in provider.resources.items() if not r["status"].terminal]
        if left:
            subprocess.run(["qdel", *left], capture_output=True, timeout=20)


def wait_for(provider: GridEngineProvider, job_id: str, states: set[JobState], timeout: float = 45) -> list[JobStatus]:
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
        time.sleep(0.25)


def test_a_block_runs_to_completion(make, tmp_path: Path):
    provider = make()
    marker = tmp_path / "marker"
    job = provider.submit(f"sleep 1; echo $FLOWLIB_TASK_RANK > {marker}", 1, "flowlib.htex.block-0")
    seen = wait_for(provider, job, {JobState.COMPLETED})
    assert {s.state for s in seen} <= {JobState.PENDING, JobState.RUNNING, JobState.COMPLETED}
    assert seen[-1].exit_code == 0 and "qacct" in (seen[-1].message or "")
    assert marker.read_text() == "0\n"


def test_cancel_a_sleeping_block(make):
    provider = make()
    job = provider.submit("sleep 300", 1)
    wait_for(provider, job, {JobState.RUNNING})
    assert provider.cancel([job]) == [True]
    assert provider.status([job])[0].state is JobState.CANCELLED
    deadline = time.monotonic() + 20
    while (
        job in subprocess.run(["qstat"], capture_output=True, text=True).stdout.split() and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    assert job not in subprocess.run(["qstat"], capture_output=True, text=True).stdout.split()


def test_qdel_behind_the_providers_back_is_noticed(make):
    provider = make()
    job = provider.submit("sleep 300", 1)
    wait_for(provider, job, {JobState.RUNNING})
    subprocess.run(["qdel", job], check=True, capture_output=True, timeout=20)
    status = wait_for(provider, job, {JobState.CANCELLED})[-1]
    assert "qstat state d" in (status.message or "") or "signal" in (status.message or "")


def test_a_block_failing_at_start_reports_its_stderr(make, tmp_path: Path):
    provider = make(worker_init="echo module-load-broke >&2; (exit 3)")
    job = provider.submit(f"touch {tmp_path}/never", 1)
    status = wait_for(provider, job, {JobState.FAILED})[-1]
    assert status.exit_code == 3
    assert "module-load-broke" in (status.message or "") and "worker_init failed" in (status.message or "")
    assert not (tmp_path / "never").exists()


def test_unknown_queue_names_it_and_qsubs_error(make):
    provider = make(queue="nosuchqueue")
    with pytest.raises(SubmitException) as info:
        provider.submit("true", 1)
    assert 'unknown queue "nosuchqueue"' in str(info.value)


def test_garbage_from_qstat_and_an_unknown_job(make, tmp_path: Path):
    fakebin = tmp_path / "fakebin"
    fakebin.mkdir()
    (fakebin / "qstat").write_text("#!/bin/sh\necho 'error: commlib error: got read error'\necho '%%%'\n")
    (fakebin / "qstat").chmod(0o755)
    provider = make(channel=LocalChannel(envs={"PATH": f"{fakebin}{os.pathsep}{os.environ['PATH']}"}))
    with pytest.raises(SchedulerCommandError, match="qstat"):
        provider.status(["1"])
    real = make()
    real.accounting_grace = 0
    status = real.status(["987654"])[0]
    assert status.state is JobState.MISSING and "qacct has no record" in (status.message or "")
