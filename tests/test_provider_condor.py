"""CondorProvider against fake condor_submit/condor_q/condor_history/condor_rm (tests/fakebin_condor).

HTCondor's daemons cannot run here. The fakes answer as the HTCondor manual
documents and really run each job (``executable`` + ``arguments`` parsed in the
new syntax, with only the ``environment`` given), so the rendered submit
description, the base64-carried block script, worker_init and the launcher are
exercised for real. When the ``htcondor`` wheel is installed, the submit
description is also parsed by ``htcondor2.Submit``.
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
from flowlib.launchers import SingleNodeLauncher, SrunLauncher
from flowlib.providers import CondorProvider
from flowlib.providers.errors import SchedulerCommandError, SubmitException

pytestmark = pytest.mark.timeout(60)

FAKEBIN = Path(__file__).parent / "fakebin_condor"


def kill_sessions(sessions: set[int]) -> None:
    """SIGKILL every process in these sessions (each fake job runs in a session of its own)."""
    for entry in os.listdir("/proc"):
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            if entry.isdigit() and int(fields[3]) in sessions:
                os.kill(int(entry), signal.SIGKILL)
        except (OSError, IndexError, ValueError):
            continue


@pytest.fixture
def condor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    state = tmp_path / "condor-state"
    state.mkdir()
    monkeypatch.setenv("PATH", f"{FAKEBIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CONDOR_DIR", str(state))
    monkeypatch.setenv("FAKE_CONDOR_PYTHON", sys.executable)
    yield state
    sessions = set()
    for record in state.glob("*.json"):
        pid = record.read_text().split('"pid": ')[1].split(",")[0]
        if pid.isdigit():
            sessions.add(int(pid))
    kill_sessions(sessions)


def _provider(tmp_path: Path, **kwargs: Any) -> CondorProvider:
    kwargs.setdefault("launcher", SingleNodeLauncher(debug=False))
    provider = CondorProvider(**kwargs)
    provider.script_dir = str(tmp_path / "scripts")
    return provider


def _wait(provider: CondorProvider, job_id: str, timeout: float = 20) -> JobStatus:
    deadline = time.monotonic() + timeout
    while not (status := provider.status([job_id])[0]).terminal and time.monotonic() < deadline:
        time.sleep(0.05)
    return status


def test_block_runs_with_environment_inputs_and_launcher(
    condor: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWLIB_TEST_OUTSIDE", "leaked")
    data = tmp_path / "input.txt"
    data.write_text("payload\n")
    provider = _provider(
        tmp_path,
        environment={"GREETING": 'it\'s "quoted" text', "COUNT": "2"},
        transfer_input_files=[str(data)],
        worker_init="export FROM_INIT=yes",
        cores_per_slot=4,
        mem_per_slot=2.5,
        project="MyProject",
        requirements='(OpSys == "LINUX") && (Arch == "X86_64")',
        scheduler_options="+WantFlocking = true",
        walltime="01:00:00",
    )
    out = tmp_path / "out"
    out.mkdir()
    line = '"$GREETING|$COUNT|$FROM_INIT|$(cat input.txt)|${FLOWLIB_TEST_OUTSIDE:-none}"'
    command = f"echo {line} > {out}/rank-$FLOWLIB_TASK_RANK"
    job_id = provider.submit(command, tasks_per_node=2, job_name="block 0")
    assert job_id.isdigit()
    status = _wait(provider, job_id)
    assert status.state is JobState.COMPLETED and status.exit_code == 0, status
    assert sorted(p.name for p in out.iterdir()) == ["rank-0", "rank-1"]
    # only the environment given reaches the job (FLOWLIB_TEST_OUTSIDE of this process does not)
    assert (out / "rank-0").read_text() == 'it\'s "quoted" text|2|yes|payload|none\n'

    description = Path(provider.resources[job_id]["script_path"]).read_text()
    lines = description.splitlines()
    for line in (
        "request_cpus = 4",
        "request_memory = 2560",
        '+ProjectName = "MyProject"',
        'requirements = (OpSys == "LINUX") && (Arch == "X86_64")',
        "periodic_remove = (JobStatus == 2) && ((time() - EnteredCurrentStatus) > 3600)",
        f"transfer_input_files = {data}",
        "+WantFlocking = true",
        "queue 1",
    ):
        assert line in lines
    assert "#   export FROM_INIT=yes" in lines  # the script, readable in the description
    assert provider.cores_per_node == 4 and provider.mem_per_node == 2.5


def test_submit_description_parses_with_htcondor_bindings(condor: Path, tmp_path: Path) -> None:
    htcondor2 = pytest.importorskip("htcondor2")
    provider = _provider(tmp_path, environment={"A": "x y"}, requirements="Memory > 1024", project="p")
    job_id = provider.submit("true", 1)
    submit = htcondor2.Submit(Path(provider.resources[job_id]["script_path"]).read_text())
    assert submit["executable"] == "/bin/bash" and submit["universe"] == "vanilla"
    assert submit["requirements"] == "Memory > 1024" and submit["MY.ProjectName"] == '"p"'
    assert submit["environment"] == "\"A='x y'\"" and submit.getQArgs() == "1"


def test_failures_holds_and_timeouts(condor: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = _provider(tmp_path, max_blocks=4)
    status = _wait(provider, provider.submit("echo 'worker: no route to interchange' >&2; exit 3", 1))
    assert status.state is JobState.FAILED and status.exit_code == 3
    assert "no route to interchange" in (status.message or "")

    provider.worker_init = "source /no/such/env"
    status = _wait(provider, provider.submit("true", 1))
    assert status.state is JobState.FAILED and "worker_init failed" in (status.message or "")
    provider.worker_init = ""

    provider.transfer_input_files = [str(tmp_path / "missing.dat")]
    held = provider.submit("true", 1)
    status = provider.status([held])[0]
    assert status.state is JobState.HELD and "missing.dat" in (status.message or "")
    provider.transfer_input_files = []

    monkeypatch.setenv("FAKE_CONDOR_SECONDS_SCALE", "0.005")  # the walltime's 60 s last 0.3 s
    short = _provider(tmp_path, walltime="00:01:00")
    status = _wait(short, short.submit("sleep 30", 1))
    assert status.state is JobState.TIMEOUT and "PeriodicRemove" in (status.message or "")


def test_cancel_idle_running_and_unknown(condor: Path, tmp_path: Path) -> None:
    provider = _provider(tmp_path, max_blocks=3, requirements="FakeUnsatisfiable")
    idle = provider.submit("true", 1)
    assert provider.status([idle])[0].state is JobState.PENDING
    provider.requirements = ""
    running = provider.submit("sleep 30", 1)
    assert provider.status([running])[0].state is JobState.RUNNING
    assert provider.cancel([idle, running, "999"]) == [True, True, False]
    assert [s.state for s in provider.status([idle, running])] == [JobState.CANCELLED, JobState.CANCELLED]
    seen = provider._resolve_vanished([running])[running]  # HTCondor's own record of it
    assert seen.state is JobState.CANCELLED and "condor_rm" in (seen.message or "")
    assert provider.status(["31337"])[0].state is JobState.MISSING


def test_scheduler_trouble(condor: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = _provider(tmp_path, scheduler_options="this line is not a submit command")
    with pytest.raises(SubmitException, match="Illegal submit description line"):
        provider.submit("true", 1)
    provider = _provider(tmp_path)
    job_id = provider.submit("sleep 30", 1)
    monkeypatch.setenv("FAKE_CONDOR_GARBAGE", "1")
    with pytest.raises(SchedulerCommandError, match="cannot parse condor_q's answer"):
        provider.status([job_id])
    monkeypatch.delenv("FAKE_CONDOR_GARBAGE")
    monkeypatch.setenv("FAKE_CONDOR_SCHEDD_DOWN", "1")
    with pytest.raises(SchedulerCommandError, match="Failed to fetch ads"):
        provider.status([job_id])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    with pytest.raises(SubmitException, match="condor_submit was not found"):
        provider.submit("true", 1)


def test_constructor_checks() -> None:
    provider = CondorProvider()
    assert isinstance(provider.launcher, SingleNodeLauncher) and provider.walltime == "00:10:00"
    assert provider.cmd_timeout == 60 and provider.transfer_input_files == [] and provider.environment == {}
    with pytest.raises(ValueError, match="nodes_per_block must be 1"):
        CondorProvider(nodes_per_block=2)
    with pytest.raises(TypeError, match="'environment'"):
        CondorProvider(environment={"A": 1})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="invalid variable names"):
        CondorProvider(environment={"NOT VALID": "x"})
    with pytest.raises(TypeError, match="'transfer_input_files'"):
        CondorProvider(transfer_input_files="a.txt")
    with pytest.raises(TypeError, match="'cores_per_slot'"):
        CondorProvider(cores_per_slot=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="walltime"):
        CondorProvider(walltime="1 hour")
    with pytest.raises(ConfigurationError, match="cannot use launcher SrunLauncher"):
        CondorProvider(launcher=SrunLauncher())
