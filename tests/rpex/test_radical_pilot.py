"""RadicalPilotExecutor on a real local RADICAL-Pilot session (resource local.localhost).

The workflow (rp_driver.py) runs once for the module in a child process with its own
process group, bounded by a deadline and killed as a group past it: RP's session
start was seen to block for good inside the pytest process. A pilot of 4 cores, one
RAPTOR master and one FlowlibWorker of 2 cores; the environment keeps RP on loopback
and away from public NTP hosts (see docs/radical_pilot.rst).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("radical.pilot")  # the radical-pilot extra; CI installs it with the test extra

from conftest import REPO_ROOT

RP_ENV = {
    "RADICAL_DEFAULT_IFACE": "lo",  # advertise 127.0.0.1 for RP's ZMQ bridges, not eth0
    "RADICAL_PROFILE": "FALSE",  # no profilers: they ask a public NTP pool host for the time
    "RADICAL_UTILS_NTPHOST": "127.0.0.1",
    "RADICAL_REPORT": "FALSE",
    "OMPI_ALLOW_RUN_AS_ROOT": "1",  # RP launches multi-rank tasks with Open MPI's mpiexec; CI is root
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
}
DEADLINE = 330

pytestmark = [pytest.mark.slow, pytest.mark.timeout(DEADLINE + 60)]


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("rp")
    env = dict(os.environ, **RP_ENV, RADICAL_BASE=str(root / "base"))
    # local.localhost reuses the active Python environment: its bin directory must come first on PATH.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = os.pathsep.join([REPO_ROOT, os.path.join(REPO_ROOT, "tests")])
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("rp_driver.py")), str(root)],
        cwd=root,  # RP writes its client session directory into the current directory
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        pytest.fail(f"the RP workflow did not finish within {DEADLINE} s; stderr ends:\n{err.decode()[-3000:]}")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever RP left behind in the group
        except ProcessLookupError:
            pass
    lines = out.decode().strip().splitlines()
    assert lines, f"the RP workflow printed nothing (exit {proc.returncode}); stderr ends:\n{err.decode()[-3000:]}"
    result = json.loads(lines[-1])
    assert "driver_failed" not in result, result.get("driver_failed")
    return result


def test_python_apps_run_as_rp_tasks(seen):
    results = [s["result"] for s in seen["squares"]]
    assert [r[2] for r in results] == [0, 1, 4, 9]
    assert all(r[0] and r[0].startswith("flowlib.rp.") for r in results)  # RP's task id, seen in the task
    assert all(r[1] != seen["driver_pid"] for r in results)
    assert seen["chain"] == {"result": 10}


def test_exception_keeps_type_and_remote_traceback(seen):
    assert seen["error"]["error"] == "LookupError" and seen["error"]["message"] == "on the pilot"
    assert "fail_with" in seen["error"]["cause"]


def test_bash_apps(seen):
    assert seen["bash"] == {"result": 0}
    lines = seen["bash_out"].splitlines()
    assert lines[0] == "from the pilot" and lines[1].startswith("task=flowlib.rp.")
    assert seen["bash_exit"]["error"] == "BashExitFailure" and "4" in seen["bash_exit"]["message"]


def test_walltime(seen):
    assert seen["walltime_python"]["error"] == "AppTimeout"
    assert seen["walltime_bash"]["error"] == "AppTimeout"


def test_resource_specification_maps_to_the_task_description(seen):
    assert seen["spec"]["result"][2] == 25
    assert seen["spec_description"] == [2, 64, 1, "task.function"]


def test_bad_resource_specifications_fail_at_once(seen):
    assert seen["too_many_cores"]["error"] == "InvalidResourceSpecification"
    assert "cores_per_rank=3 exceeds what a RAPTOR worker has" in seen["too_many_cores"]["message"]
    assert seen["unknown_key"]["error"] == "InvalidResourceSpecification"
    assert "unknown ['num_nodes']" in seen["unknown_key"]["message"]
