"""Parsl's provider and job API: execute_wait, the resources table, JobStatus.stdout/stderr,
str(JobState), SubmitException.task_name, flowlib.utils.execute_wait, log_utils removers."""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path
from unittest import mock

import pytest

from flowlib.channels.errors import ChannelTimeout
from flowlib.jobs.states import JobState, JobStatus
from flowlib.launchers import SingleNodeLauncher
from flowlib.log_utils import set_file_logger, set_stream_logger
from flowlib.providers import LocalProvider, PBSProProvider, SlurmProvider
from flowlib.providers.errors import SubmitException
from flowlib.utils import execute_wait

pytestmark = pytest.mark.timeout(60)


def test_str_of_a_job_state_is_its_name() -> None:
    assert str(JobState.COMPLETED) == "JobState.COMPLETED"
    assert isinstance(repr(JobState.FAILED), str)
    assert JobState.COMPLETED == 4  # still an IntEnum


def test_submit_exception_task_name_is_deprecated() -> None:
    error = SubmitException("job-1", "no")
    assert error.job_name == "job-1"
    with pytest.deprecated_call():
        assert error.task_name == "job-1"


def test_scheduler_commands_go_through_execute_wait(tmp_path: Path) -> None:
    provider = SlurmProvider(partition="debug")
    provider.script_dir = str(tmp_path)
    with mock.patch.object(provider, "execute_wait", return_value=(0, "Submitted batch job 4242", "")) as run:
        job_id = provider.submit("true", 1)
    assert job_id == "4242"  # sbatch's answer without --parsable is understood too
    assert "sbatch" in run.call_args.args[0]
    record = provider.resources[job_id]
    assert record["job_stdout_path"] == record["stdout_path"]
    assert record["job_stderr_path"] == record["stderr_path"]


def test_pbspro_submit_through_a_replaced_execute_wait(tmp_path: Path) -> None:
    provider = PBSProProvider()
    provider.script_dir = str(tmp_path)
    with mock.patch.object(provider, "execute_wait", return_value=(0, "77.server", "")) as run:
        assert provider.submit("true", 1) == "77.server"
    run.assert_called()


def test_execute_wait_on_a_provider_and_in_utils(tmp_path: Path) -> None:
    provider = LocalProvider()
    assert provider.execute_wait("echo out; echo err >&2; exit 3") == (3, "out\n", "err\n")
    rc, out, err = execute_wait("env", 10)
    assert rc == 0 and "PATH=" in out and err == ""
    rc, out, _ = execute_wait("yes | head -c 200000", walltime=30)  # more than a pipe holds
    assert rc == 0 and len(out) == 200000
    with pytest.raises(ChannelTimeout):
        execute_wait("sleep 5", walltime=0.2)


def wait_terminal(provider: LocalProvider, job_id: str) -> JobStatus:
    deadline = time.monotonic() + 20
    status = provider.status([job_id])[0]
    while not status.terminal:
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
        status = provider.status([job_id])[0]
    return status


def test_local_job_status_output_and_message(tmp_path: Path) -> None:
    provider = LocalProvider(launcher=SingleNodeLauncher(debug=False))
    provider.script_dir = str(tmp_path)
    job = provider.submit("/bin/echo -n magic; /bin/echo -n oops 1>&2", 1)
    assert provider.status([job])[0].state in (JobState.RUNNING, JobState.COMPLETED)  # never PENDING
    done = wait_terminal(provider, job)
    assert done.state is JobState.COMPLETED
    assert done.message is None  # as in Parsl: success has no message
    assert (done.stdout, done.stderr) == ("magic", "oops")
    bad = wait_terminal(provider, provider.submit("exit 4", 1))
    assert bad.state is JobState.FAILED and bad.exit_code == 4
    assert bad.message is not None and "exited with code 4" in bad.message
    assert JobStatus(JobState.PENDING).stdout is None  # no path, nothing to read


def test_set_stream_logger_returns_a_remover() -> None:
    logger = logging.getLogger("flowlib.test_remover")
    first, second = io.StringIO(), io.StringIO()
    remove = set_stream_logger(name="flowlib.test_remover", stream=first)
    logger.info("AAA")
    remove()
    remove_second = set_stream_logger(name="flowlib.test_remover", stream=second)
    logger.info("BBB")
    remove_second()
    logger.info("CCC")
    assert "AAA" in first.getvalue() and "BBB" not in first.getvalue()
    assert "BBB" in second.getvalue() and "AAA" not in second.getvalue()
    assert "CCC" not in first.getvalue() + second.getvalue()
    assert remove.logger is logger and remove.handler not in logger.handlers


def test_set_file_logger_returns_a_remover(tmp_path: Path) -> None:
    logger = logging.getLogger("flowlib.test_file_remover")
    remove = set_file_logger(str(tmp_path / "log"), name="flowlib.test_file_remover")
    logger.info("AAA")
    remove()
    logger.info("BBB")
    text = (tmp_path / "log").read_text()
    assert "AAA" in text and "BBB" not in text
