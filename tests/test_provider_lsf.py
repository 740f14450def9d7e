"""LSFProvider against fake bsub/bjobs/bkill (tests/fakebin_lsf) that run jobs as local processes.

IBM Spectrum LSF cannot run here. The fakes print the answers the LSF command
reference documents ("Job <ID> is submitted to queue <Q>.", ``bjobs -o`` lines,
"Job <ID> is not found", ...) and really run each submitted script, so the
rendered ``#BSUB`` script, worker_init and the launcher are exercised for real.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowlib.errors import ConfigurationError
from flowlib.jobs.states import JobState, JobStatus
from flowlib.launchers import JsrunLauncher, SingleNodeLauncher, SrunLauncher
from flowlib.providers import LSFProvider
from flowlib.providers.errors import SchedulerCommandError, SubmitException

pytestmark = pytest.mark.timeout(60)

FAKEBIN = Path(__file__).parent / "fakebin_lsf"


@pytest.fixture
def lsf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Fake LSF on PATH; yields its state directory; kills what is left at the end."""
    state = tmp_path / "lsf-state"
    state.mkdir()
    monkeypatch.setenv("PATH", f"{FAKEBIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LSF_DIR", str(state))
    monkeypatch.setenv("FAKE_LSF_PYTHON", sys.executable)
    monkeypatch.setenv("FAKE_LSF_LOG", str(state / "commands.log"))
    yield state
    sessions = {int(record.read_text().split('"pid": ')[1].split(",")[0]) for record in state.glob("*.json")}
    kill_sessions(sessions)


def kill_sessions(sessions: set[int]) -> None:
    """SIGKILL every process in these sessions (each fake job runs in a session of its own)."""
    for entry in os.listdir("/proc"):
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            if entry.isdigit() and int(fields[3]) in sessions:
                os.kill(int(entry), signal.SIGKILL)
        except (OSError, IndexError, ValueError):
            continue


def _provider(tmp_path: Path, **kwargs: Any) -> LSFProvider:
    kwargs.setdefault("launcher", SingleNodeLauncher(debug=False))
    provider = LSFProvider(**kwargs)
    provider.script_dir = str(tmp_path / "scripts")
    return provider


def _wait(provider: LSFProvider, job_id: str, timeout: float = 20) -> JobStatus:
    deadline = time.monotonic() + timeout
    while not (status := provider.status([job_id])[0]).terminal and time.monotonic() < deadline:
        time.sleep(0.05)
    return status


def test_block_runs_with_directives_worker_init_and_launcher(lsf: Path, tmp_path: Path) -> None:
    provider = _provider(
        tmp_path, queue="debug", project="ABC123", walltime="01:30:30", worker_init="export GREETING=hi"
    )
    out = tmp_path / "out"
    out.mkdir()
    job_id = provider.submit(f'echo "$GREETING $LSB_JOBID" > {out}/rank-$FLOWLIB_TASK_RANK', 2, job_name="block 0")
    assert job_id.isdigit()
    status = _wait(provider, job_id)
    assert status.state is JobState.COMPLETED and status.exit_code == 0, status
    assert sorted(p.name for p in out.iterdir()) == ["rank-0", "rank-1"]
    assert (out / "rank-1").read_text() == f"hi {job_id}\n"

    script = Path(provider.resources[job_id]["script_path"]).read_text()
    for line in ("#BSUB -W 1:31", "#BSUB -nnodes 1", "#BSUB -q debug", "#BSUB -P ABC123"):
        assert line in script.splitlines()
    assert f"#BSUB -e {status.stderr_path}" in script and "#BSUB -J block_0." in script
    log = (lsf / "commands.log").read_text().splitlines()
    assert log[0] == f"bsub {provider.resources[job_id]['script_path']}"
    assert log[1].startswith("bjobs -a -noheader -o jobid stat exit_code exit_reason delimiter='|' ")


def test_redirection_and_cores_per_block(lsf: Path, tmp_path: Path) -> None:
    provider = _provider(tmp_path, bsub_redirection=True, request_by_nodes=False, cores_per_block=8, cores_per_node=4)
    job_id = provider.submit("true", 1)
    assert _wait(provider, job_id).state is JobState.COMPLETED
    assert (lsf / "commands.log").read_text().splitlines()[0] == "bsub"  # the script came on stdin
    lines = Path(provider.resources[job_id]["script_path"]).read_text().splitlines()
    assert "#BSUB -n 8" in lines and '#BSUB -R "span[ptile=4]"' in lines and "#BSUB -nnodes 1" not in lines


def test_failures_carry_exit_code_and_stderr(lsf: Path, tmp_path: Path) -> None:
    provider = _provider(tmp_path, max_blocks=2)
    failing = provider.submit("echo 'worker: cannot bind port' >&2; exit 3", 1)
    status = _wait(provider, failing)
    assert status.state is JobState.FAILED and status.exit_code == 3
    assert "bjobs STAT EXIT" in (status.message or "") and "worker: cannot bind port" in (status.message or "")

    provider.worker_init = "module load nothing-here"
    status = _wait(provider, provider.submit("true", 1))
    assert status.state is JobState.FAILED and status.exit_code == 127
    assert "worker_init failed with exit code 127" in (status.message or "")


def test_run_limit_is_a_timeout(lsf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_LSF_SECONDS_PER_MINUTE", "0.3")
    provider = _provider(tmp_path, walltime="00:01:00")
    status = _wait(provider, provider.submit("sleep 30", 1))
    assert status.state is JobState.TIMEOUT and "TERM_RUNLIMIT" in (status.message or "")


def test_cancel_unknown_and_finished_jobs(lsf: Path, tmp_path: Path) -> None:
    provider = _provider(tmp_path, max_blocks=3)
    done = provider.submit("true", 1)
    assert _wait(provider, done).state is JobState.COMPLETED
    running = provider.submit("sleep 30", 1)
    assert provider.status([running])[0].state is JobState.RUNNING
    assert provider.cancel([running, done, "424242"]) == [True, True, False]
    assert provider.status([running, done])[0].state is JobState.CANCELLED
    assert provider.status([done])[0].state is JobState.COMPLETED  # already ended: left as it was
    deadline = time.monotonic() + 10  # LSF itself now reports the kill
    while (seen := provider._query_status([running])[running]).state is JobState.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert seen.state is JobState.CANCELLED and "TERM_OWNER" in (seen.message or "")

    statuses = provider.status([done, "777777"])  # a job LSF does not know
    assert statuses[0].state is JobState.COMPLETED and statuses[1].state is JobState.MISSING


def test_scheduler_refusals_and_garbage(lsf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SubmitException, match=r"queue='gpu-queue'.*gpu-queue: No such queue"):
        _provider(tmp_path, queue="gpu-queue").submit("true", 1)
    provider = _provider(tmp_path)
    job_id = provider.submit("sleep 30", 1)
    monkeypatch.setenv("FAKE_LSF_GARBAGE", "1")
    with pytest.raises(SchedulerCommandError, match="cannot parse bjobs' answer"):
        provider.status([job_id])
    assert provider.resources[job_id]["status"].state is JobState.PENDING  # the table kept its last state
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    with pytest.raises(SubmitException, match="bsub was not found on the PATH"):
        provider.submit("true", 1)


def test_constructor_checks() -> None:
    provider = LSFProvider()
    assert isinstance(provider.launcher, SingleNodeLauncher) and provider.walltime == "00:10:00"
    assert provider.request_by_nodes and not provider.bsub_redirection and provider.cmd_timeout == 120
    assert isinstance(LSFProvider(nodes_per_block=2, launcher=JsrunLauncher()).launcher, JsrunLauncher)
    with pytest.raises(ValueError, match="needs cores_per_block"):
        LSFProvider(request_by_nodes=False)
    with pytest.raises(TypeError, match="'cores_per_node'"):
        LSFProvider(cores_per_node="8")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'queue'"):
        LSFProvider(queue=["normal"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="walltime"):
        LSFProvider(walltime="90")
    with pytest.raises(ConfigurationError, match="LSFProvider cannot use launcher SrunLauncher"):
        LSFProvider(launcher=SrunLauncher())
