"""PSIJProvider with PSI/J's real 'local' executor: blocks really run as local processes.

PSI/J's batch executors (slurm, pbs, lsf, ...) take the same Job/JobSpec/JobAttributes
path in flowlib; only PSI/J's executor differs, so the local executor exercises all
of flowlib's side. No batch scheduler is started here for PSI/J.
"""

from __future__ import annotations

import builtins
import importlib
import os
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from flowlib.errors import ConfigurationError, OptionalModuleMissing
from flowlib.jobs.states import JobState, JobStatus
from flowlib.launchers import JsrunLauncher, SingleNodeLauncher, SrunLauncher
from flowlib.providers.errors import SubmitException
from flowlib.providers.psij import PSIJProvider

# psij-python 0.9.11's local executor never closes a job's stdout pipe; see _psij_reaper_settles.
pytestmark = [pytest.mark.timeout(60), pytest.mark.filterwarnings("ignore:unclosed file:ResourceWarning")]


def _need(module: str) -> Any:
    """The optional package these tests need: skipped where it is missing, but in CI
    (``CI`` set) a missing package fails, so that CI cannot go green by skipping."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


psij = _need("psij")


@pytest.fixture(autouse=True)
def _psij_reaper_settles() -> Iterator[None]:
    """Let PSI/J's reaper thread drop the test's finished jobs while ResourceWarnings are ignored.

    psij-python 0.9.11's local executor reads each job's stdout pipe and never closes
    it; the pipe is closed by the garbage collector in PSI/J's reaper thread, which
    with ``-W error`` would surface as an unraisable warning in whatever test runs then.
    The module's filterwarnings mark covers the tests; this fixture covers the moments after.
    """
    yield
    from psij.executors.local import _ProcessReaper

    reaper = _ProcessReaper.get_instance()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        deadline = time.monotonic() + 10
        while reaper._jobs and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # one more pass of the reaper (every 0.1 s) releases its last "done" list


def _wait(provider: PSIJProvider, job_id: str, timeout: float = 20) -> JobStatus:
    deadline = time.monotonic() + timeout
    while not (status := provider.status([job_id])[0]).terminal and time.monotonic() < deadline:
        time.sleep(0.05)
    return status


def test_block_runs_with_the_launcher_and_worker_init(tmp_path: Any) -> None:
    provider = PSIJProvider(
        worker_init="export GREETING=hello",
        environment={"FLOWLIB_TEST_VALUE": "42"},
        launcher=SingleNodeLauncher(debug=False),
        queue="debug",
        account="abc123",
        custom_attributes={"slurm.constraint": "knl"},
    )
    provider.script_dir = str(tmp_path / "scripts")
    out = tmp_path / "out"
    out.mkdir()
    command = f'echo "$GREETING $FLOWLIB_TEST_VALUE" > {out}/rank-$FLOWLIB_TASK_RANK'
    job_id = provider.submit(command, tasks_per_node=3, job_name="block 0")
    status = _wait(provider, job_id)
    assert status.state is JobState.COMPLETED, status
    assert status.exit_code == 0 and status.stderr_path and status.stderr_path.startswith(str(tmp_path))
    assert sorted(p.name for p in out.iterdir()) == ["rank-0", "rank-1", "rank-2"]
    assert (out / "rank-2").read_text() == "hello 42\n"

    job = provider.resources[job_id]["job"]
    assert job.spec.resources.processes_per_node == 3 and job.spec.resources.node_count == 1
    assert job.spec.attributes.duration.total_seconds() == 600
    assert job.spec.attributes.queue_name == "debug" and job.spec.attributes.account == "abc123"
    assert job.spec.attributes.custom_attributes == {"slurm.constraint": "knl"}
    assert job.spec.executable == "/bin/bash" and job.spec.name.startswith("block_0.")


def test_failed_blocks_report_exit_code_and_stderr(tmp_path: Any) -> None:
    provider = PSIJProvider(launcher=SingleNodeLauncher(debug=False), max_blocks=2)
    provider.script_dir = str(tmp_path)
    job_id = provider.submit("echo 'worker: cannot bind' >&2; exit 7", tasks_per_node=1)
    status = _wait(provider, job_id)
    assert status.state is JobState.FAILED and status.exit_code == 7
    assert "worker: cannot bind" in (status.message or "")

    provider.worker_init = "echo 'module: command not found' >&2; false"
    marker = tmp_path / "started"
    job_id = provider.submit(f"touch {marker}", tasks_per_node=1)
    status = _wait(provider, job_id)
    assert status.state is JobState.FAILED and status.exit_code == 1
    assert "module: command not found" in (status.message or "") and "worker_init failed" in (status.message or "")
    assert not marker.exists()


def test_cancel_and_unknown_jobs(tmp_path: Any) -> None:
    provider = PSIJProvider(launcher=SingleNodeLauncher(debug=False), max_blocks=2)
    provider.script_dir = str(tmp_path)
    job_id = provider.submit("sleep 30", tasks_per_node=1)
    deadline = time.monotonic() + 10
    while provider.status([job_id])[0].state is not JobState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.02)
    assert provider.cancel([job_id, "no-such-job"]) == [True, False]
    assert provider.status([job_id])[0].state is JobState.CANCELLED
    provider.resources[job_id]["job"].wait()  # PSI/J really stopped it
    assert str(provider.resources[job_id]["job"].status.state) == "CANCELED"
    assert provider.status(["no-such-job"])[0].state is JobState.MISSING


def test_configuration_errors(tmp_path: Any) -> None:
    provider = PSIJProvider(launcher=SingleNodeLauncher())
    with pytest.raises(ConfigurationError, match="script_dir is not set"):
        provider.submit("true", 1)
    unknown = PSIJProvider(executor="no_such_executor", launcher=SingleNodeLauncher())
    unknown.script_dir = str(tmp_path)
    with pytest.raises(ConfigurationError, match="no executor 'no_such_executor'.*local"):
        unknown.submit("true", 1)
    with pytest.raises(ConfigurationError, match="cannot use launcher JsrunLauncher.*PSI/J's 'local' executor"):
        PSIJProvider(launcher=JsrunLauncher())
    with pytest.raises(ConfigurationError, match="nodes_per_block=2 cannot use launcher SingleNodeLauncher"):
        PSIJProvider(executor="slurm", nodes_per_block=2)
    assert isinstance(PSIJProvider(executor="slurm", nodes_per_block=2, launcher=SrunLauncher()).launcher, SrunLauncher)
    with pytest.raises(TypeError, match="'queue'"):
        PSIJProvider(queue=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="walltime"):
        PSIJProvider(walltime="10 minutes")
    with pytest.raises(ValueError, match="'executor'"):
        PSIJProvider(executor="slurm; rm -rf /")


def test_refused_submit_is_a_submit_exception(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = PSIJProvider(launcher=SingleNodeLauncher())
    provider.script_dir = str(tmp_path)
    executor = provider._job_executor()

    def refuse(job: Any) -> None:
        raise psij.SubmitException("sbatch: error: Batch job submission failed: Invalid account")

    monkeypatch.setattr(executor, "submit", refuse)
    with pytest.raises(SubmitException, match="Invalid account"):
        provider.submit("true", 1)


def test_missing_psij_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    real_import = builtins.__import__

    def no_psij(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "psij" or name.startswith("psij."):
            raise ImportError("No module named 'psij'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_psij)
    provider = PSIJProvider(launcher=SingleNodeLauncher())
    provider.script_dir = str(tmp_path)
    with pytest.raises(OptionalModuleMissing, match=r"psij-python.*flowlib\[psij\]"):
        provider.submit("true", 1)
