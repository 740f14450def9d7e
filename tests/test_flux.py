"""FluxExecutor: construction, resource specifications -> jobspecs, cancellation, the instance's lifecycle.

Flux cannot be installed on this machine, so these tests run against the fake of
tests/fakeflux/ (see its README for what it covers). The tests at the end run on a real
Flux and skip when no ``flux`` command is on PATH.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from concurrent.futures import CancelledError
from typing import Any

import psutil
import pytest
from flux_support import FAKE_FLUX_COMMAND, JOB_PYTHONPATH, make_executor, use_fake_flux

import flowlib
from flowlib import bash_app, python_app
from flowlib.config import Config
from flowlib.errors import OptionalModuleMissing
from flowlib.executors.errors import BadStateException, InvalidResourceSpecification

pytestmark = pytest.mark.timeout(60)


@python_app
def rank_info():
    import os

    return os.environ.get("FLUX_JOB_SIZE"), len(os.sched_getaffinity(0)), os.getcwd()


@python_app
def add(a, b):
    return a + b


@python_app
def sleep_after_writing_pid(path):
    import os
    import time

    with open(path + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(path + ".tmp", path)
    time.sleep(30)
    return "not cancelled"


@python_app
def kill_myself():
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


@bash_app
def each_rank_appends(path):
    return f'echo "rank $FLUX_TASK_RANK of $FLUX_JOB_SIZE" >> {path}'


@pytest.fixture
def flux_dfk(tmp_path):
    kernel = flowlib.load(Config(executors=[make_executor(tmp_path)], run_dir=str(tmp_path / "runinfo")))
    try:
        yield kernel
    finally:
        kernel.cleanup()
        flowlib.clear()


def test_missing_flux_package_names_the_extra(monkeypatch):
    from flowlib.executors.flux import FluxExecutor

    monkeypatch.setitem(sys.modules, "flux", None)
    monkeypatch.setitem(sys.modules, "flux.job", None)
    with pytest.raises(OptionalModuleMissing, match=r"pip install 'flowlib\[flux\]'"):
        FluxExecutor()


def test_import_flowlib_executors_does_not_import_flux():
    import subprocess

    code = "import flowlib, flowlib.executors, sys; flowlib.executors.FluxExecutor; print('flux' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=os.path.dirname(FAKE_FLUX_COMMAND) + "/..")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "False", out.stderr


def test_constructor_checks_types_and_handle_args():
    use_fake_flux()
    from flowlib.executors.flux import FluxExecutor

    with pytest.raises(TypeError, match="launch_cmd"):
        FluxExecutor(launch_cmd=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="handle_args"):
        FluxExecutor(flux_executor_kwargs={"handle_args": ("x",)})


def test_unknown_resource_keys_are_refused_by_name(flux_dfk):
    with pytest.raises(InvalidResourceSpecification, match=r"\['memory', 'ranks'\]") as info:
        add(1, 2, parsl_resource_specification={"num_tasks": 1, "ranks": 2, "memory": 3}).result(timeout=10)
    assert info.value.invalid_keys == {"ranks", "memory"}
    with pytest.raises(InvalidResourceSpecification, match="cores_per_task=0"):
        add(1, 2, parsl_resource_specification={"cores_per_task": 0}).result(timeout=10)


def test_a_request_flux_cannot_satisfy_fails_the_task(flux_dfk):
    with pytest.raises(OSError, match="unsatisfiable request: 2 nodes"):
        add(1, 2, parsl_resource_specification={"num_nodes": 2}).result(timeout=20)
    with pytest.raises(OSError, match="unsatisfiable request: gpus"):
        add(1, 2, parsl_resource_specification={"gpus_per_task": 1}).result(timeout=20)


def test_resource_specification_becomes_the_jobspec(flux_dfk, tmp_path):
    size, cpus, cwd = rank_info().result(timeout=20)
    assert (size, cpus, cwd) == ("1", 1, os.getcwd())
    if len(os.sched_getaffinity(0)) >= 2:
        assert rank_info(parsl_resource_specification={"cores_per_task": 2}).result(timeout=20)[1] == 2
    out = tmp_path / "ranks.txt"
    assert each_rank_appends(str(out), parsl_resource_specification={"num_tasks": 2}).result(timeout=20) == 0
    assert sorted(out.read_text().splitlines()) == ["rank 0 of 2", "rank 1 of 2"]


@bash_app
def write_relative(name):
    return f"echo here > {name}"


def test_working_dir_holds_the_files_and_is_the_jobs_directory(tmp_path):
    work = tmp_path / "shared"
    executor = make_executor(tmp_path, working_dir=str(work))
    with flowlib.load(Config(executors=[executor], run_dir=str(tmp_path / "runinfo"))):
        assert rank_info().result(timeout=20)[2] == str(work)
        assert write_relative("out.txt").result(timeout=20) == 0
        assert (work / "out.txt").read_text() == "here\n"
        assert (work / "flux_tasks").is_dir()


def test_cancel_kills_the_running_flux_job(flux_dfk, tmp_path):
    from conftest import try_assert

    pid_file = tmp_path / "pid"
    fut = sleep_after_writing_pid(str(pid_file))
    try_assert(pid_file.exists, timeout=20, message="the job never started")
    pid = int(pid_file.read_text())
    assert fut.cancel() is True
    with pytest.raises(CancelledError):
        fut.result(timeout=5)

    def gone() -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    try_assert(gone, timeout=10, message=f"the cancelled job's process {pid} still runs")
    assert add(2, 3).result(timeout=20) == 5  # the executor goes on


def test_a_job_killed_by_a_signal_fails_with_its_status(flux_dfk):
    from flowlib.executors.flux import FluxJobFailed

    with pytest.raises(FluxJobFailed, match=f"killed by signal {int(signal.SIGKILL)}") as info:
        kill_myself().result(timeout=20)
    assert info.value.returncode == -signal.SIGKILL


def test_shutdown_stops_the_flux_instance(tmp_path):
    executor = make_executor(tmp_path)
    with flowlib.load(Config(executors=[executor], run_dir=str(tmp_path / "runinfo"))):
        assert add(1, 1).result(timeout=20) == 2
        job = executor.job_id
        assert job is not None and psutil.pid_exists(int(job))
        assert executor.flux_uri is not None and executor.flux_uri.startswith("local://")
    status = executor.provider.status([job])[0]
    assert status.terminal, status
    assert not os.listdir(os.path.join(str(tmp_path), "runinfo", "000", "exec", "flux_tasks"))


def test_a_config_whose_flux_executor_was_shut_down_is_refused(tmp_path):
    from flowlib.errors import ConfigurationError

    config = Config(executors=[make_executor(tmp_path)], run_dir=str(tmp_path / "runinfo"))
    with flowlib.load(config):
        assert add(1, 1).result(timeout=20) == 2
    with pytest.raises(ConfigurationError, match="cannot be started again"):
        flowlib.load(config)


def test_an_instance_that_fails_to_start_fails_the_tasks(tmp_path):
    broken = tmp_path / "flux"
    broken.write_text("#!/bin/sh\necho 'flux-broker: cannot start: no resources' >&2\nexit 1\n")
    broken.chmod(0o755)
    executor = make_executor(tmp_path, flux_path=str(broken))
    with flowlib.load(Config(executors=[executor], run_dir=str(tmp_path / "runinfo"))):
        with pytest.raises(BadStateException, match="ended as FAILED before reporting its address") as info:
            add(1, 1).result(timeout=20)
        assert "no resources" in str(info.value)


def test_flux_path_not_executable_is_an_error_at_start(tmp_path):
    executor = make_executor(tmp_path, flux_path=str(tmp_path / "no-such-flux"))
    with pytest.raises(BadStateException, match="no-such-flux"):
        flowlib.load(Config(executors=[executor], run_dir=str(tmp_path / "runinfo")))
    flowlib.clear()


def test_launch_cmd_placeholders(tmp_path):
    marker = tmp_path / "launched"
    cmd = f"touch {marker} && " + "{flux} start {python} {manager} {protocol} {hostname} {port}"
    executor = make_executor(tmp_path, launch_cmd=cmd)
    with flowlib.load(Config(executors=[executor], run_dir=str(tmp_path / "runinfo"))):
        assert add(2, 2).result(timeout=20) == 4
    assert marker.exists()


def test_an_instance_on_another_host_is_reached_over_ssh(tmp_path):
    """A broker on another node reports local://PATH and its host; the client connects to ssh://HOST/PATH."""
    script = tmp_path / "remote_instance.py"
    script.write_text(
        "import json, sys, zmq\n"
        "protocol, host, port = sys.argv[1:]\n"
        "s = zmq.Context().socket(zmq.REQ)\n"
        "s.connect(f'{protocol}://{host}:{port}')\n"
        "s.send_string(json.dumps({'uri': 'local:///tmp/flux-abc/local-0', 'host': 'node17'}))\n"
        "s.recv()\n"
    )
    cmd = "{flux} start {python} " + str(script) + " {protocol} {hostname} {port}"
    executor = make_executor(tmp_path, launch_cmd=cmd)
    with flowlib.load(Config(executors=[executor], run_dir=str(tmp_path / "runinfo"))):
        assert add(1, 2).result(timeout=20) == 3
        assert executor.flux_uri == "ssh://node17/tmp/flux-abc/local-0"


# --------------------------------------------------------------------------- real Flux

real_flux = pytest.mark.skipif(shutil.which("flux") is None, reason="no real 'flux' command on PATH")


def _real_executor(tmp_path: Any) -> Any:
    from flowlib.executors.flux import FluxExecutor

    return FluxExecutor(label="flux", environment={"PYTHONPATH": JOB_PYTHONPATH})


@real_flux
def test_real_flux_runs_apps_and_bash(tmp_path):
    with flowlib.load(Config(executors=[_real_executor(tmp_path)], run_dir=str(tmp_path / "runinfo"))):
        assert [f.result(timeout=60) for f in [add(i, 1) for i in range(5)]] == [1, 2, 3, 4, 5]
        out = tmp_path / "ranks.txt"
        assert each_rank_appends(str(out), parsl_resource_specification={"num_tasks": 2}).result(timeout=60) == 0
        assert sorted(out.read_text().splitlines()) == ["rank 0 of 2", "rank 1 of 2"]


@real_flux
def test_real_flux_cancels_a_running_job(tmp_path):
    from conftest import try_assert

    with flowlib.load(Config(executors=[_real_executor(tmp_path)], run_dir=str(tmp_path / "runinfo"))):
        pid_file = tmp_path / "pid"
        fut = sleep_after_writing_pid(str(pid_file))
        try_assert(pid_file.exists, timeout=60)
        assert fut.cancel() is True
        pid = int(pid_file.read_text())
        try_assert(lambda: not psutil.pid_exists(pid), timeout=30)
