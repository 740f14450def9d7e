"""LocalProvider with real processes: submit, complete, fail at start, cancel, killed behind its back."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from flowlib.channels.local import LocalChannel
from flowlib.errors import ConfigurationError
from flowlib.jobs.states import JobState, JobStatus
from flowlib.launchers import SingleNodeLauncher
from flowlib.providers import LocalProvider

pytestmark = pytest.mark.timeout(60)


def wait_for(provider: LocalProvider, job_id: str, states: set[JobState], timeout: float = 20) -> JobStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = provider.status([job_id])[0]
        if status.state in states:
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {status} after {timeout} s")
        time.sleep(0.05)


def session_alive(pid: str) -> bool:
    out = subprocess.run(["ps", "-o", "stat=", "-s", pid], capture_output=True, text=True).stdout
    return any(not line.strip().startswith("Z") for line in out.splitlines() if line.strip())


@pytest.fixture
def provider(tmp_path: Path):
    made: list[LocalProvider] = []

    def build(**kwargs) -> LocalProvider:
        p = LocalProvider(**kwargs)
        p.script_dir = str(tmp_path / "scripts")
        made.append(p)
        return p

    yield build
    for p in made:  # leave no process behind
        running = [j for j, r in p.resources.items() if not r["status"].terminal]
        if running:
            p.cancel(running)


def test_a_block_runs_and_completes(provider, tmp_path: Path):
    p = provider()
    marker = tmp_path / "marker"
    job = p.submit(f'echo "rank $FLOWLIB_TASK_RANK" > {marker}; echo to-stdout', 1, "flowlib.htex.block-0")
    status = wait_for(p, job, {JobState.COMPLETED})
    assert status.exit_code == 0
    assert marker.read_text() == "rank 0\n"
    assert "to-stdout" in Path(status.stdout_path or "").read_text()
    record = p.resources[job]
    assert record["job_name"].startswith("flowlib.htex.block-0.") and record["status"] == status


def test_several_tasks_per_node(provider, tmp_path: Path):
    p = provider()
    job = p.submit(f"touch {tmp_path}/task.$FLOWLIB_TASK_RANK", 3)
    wait_for(p, job, {JobState.COMPLETED})
    assert sorted(f.name for f in tmp_path.glob("task.*")) == ["task.0", "task.1", "task.2"]


@pytest.mark.parametrize(
    "worker_init, code, text",
    [
        ("(exit 3)", 3, "worker_init failed"),
        ("echo broken-env >&2; exit 4", 4, "broken-env"),
        ("no_such_cmd_q", 127, "no_such_cmd_q: command not found"),
    ],
)
def test_bad_worker_init_fails_with_its_stderr(provider, tmp_path: Path, worker_init: str, code: int, text: str):
    p = provider(worker_init=worker_init)
    job = p.submit(f"touch {tmp_path}/never", 1)
    status = wait_for(p, job, {JobState.FAILED})
    assert status.exit_code == code
    assert text in (status.message or "")
    assert not (tmp_path / "never").exists()


def test_cancel_ends_the_whole_process_group(provider, tmp_path: Path):
    p = provider()
    job = p.submit("sleep 300 & sleep 300; wait", 2)
    wait_for(p, job, {JobState.RUNNING})
    assert p.cancel([job]) == [True]
    assert p.status([job])[0].state is JobState.CANCELLED
    assert not session_alive(job)


def test_cancel_escalates_to_sigkill(provider, tmp_path: Path):
    p = provider()
    p.cancel_grace = 0.3
    trapped = tmp_path / "trapped"
    job = p.submit(f"trap '' TERM; touch {trapped}; sleep 300", 1)
    wait_for(p, job, {JobState.RUNNING})
    deadline = time.monotonic() + 20
    while not trapped.exists():  # the trap is set: only SIGKILL can end the block now
        assert time.monotonic() < deadline, "the block never set its trap"
        time.sleep(0.01)
    started = time.monotonic()
    assert p.cancel([job]) == [True]
    assert time.monotonic() - started < 10
    assert not session_alive(job)


def test_a_block_killed_behind_the_providers_back_is_noticed(provider):
    p = provider()
    job = p.submit("sleep 300", 1)
    wait_for(p, job, {JobState.RUNNING})
    os.killpg(int(job), signal.SIGKILL)
    status = wait_for(p, job, {JobState.CANCELLED})
    assert "without recording an exit code" in (status.message or "")


def test_unknown_job_is_missing(provider):
    p = provider()
    status = p.status(["999999"])[0]
    assert status.state is JobState.MISSING and "999999" in (status.message or "")


def test_machine_size_is_read_lazily():
    p = LocalProvider()
    assert p._cores is None and p._mem is None
    assert p.cores_per_node == os.cpu_count()
    assert p.mem_per_node is not None and p.mem_per_node > 0.1
    p.cores_per_node = 3
    assert p.cores_per_node == 3


def test_channel_environment_reaches_the_block(provider, tmp_path: Path):
    p = provider(channel=LocalChannel(envs={"FLOWLIB_TEST_VALUE": "from-channel"}))
    job = p.submit(f'echo "$FLOWLIB_TEST_VALUE" > {tmp_path}/env', 1)
    wait_for(p, job, {JobState.COMPLETED})
    assert (tmp_path / "env").read_text() == "from-channel\n"


def test_single_node_launcher_with_two_nodes_is_refused():
    with pytest.raises(ConfigurationError, match="nodes_per_block=2"):
        LocalProvider(nodes_per_block=2, launcher=SingleNodeLauncher())
