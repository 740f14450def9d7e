"""RadicalPilotExecutor without a session: construction, the extra, the task runner."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from flowlib.errors import OptionalModuleMissing
from flowlib.executors.errors import BadStateException
from flowlib.executors.radical.config import ResourceConfig
from flowlib.executors.remote_call import pack_call, unpack_outcome

pytestmark = pytest.mark.timeout(30)


def test_missing_radical_pilot_names_the_extra(monkeypatch):
    from flowlib.executors.radical.executor import RadicalPilotExecutor

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name.startswith("radical") else real(name)
    )
    with pytest.raises(OptionalModuleMissing, match=r"flowlib\[radical-pilot\]"):
        RadicalPilotExecutor("local.localhost")


def test_constructor_checks_its_arguments():
    pytest.importorskip("radical.pilot")
    from flowlib.executors.radical.executor import RadicalPilotExecutor

    with pytest.raises(TypeError, match="'resource' must be str"):
        RadicalPilotExecutor(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'rpex_cfg' must be"):
        RadicalPilotExecutor("local.localhost", rpex_cfg={"workers": 2})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="worker_type must be 'DefaultWorker'"):
        ResourceConfig(worker_type="MPIWorker")
    with pytest.raises(ValueError, match="workers must be at least 1"):
        ResourceConfig(workers=0)
    ex = RadicalPilotExecutor("local.localhost", label="rp", runtime=5, cores=2)
    assert ex.pilot_kwargs == {"runtime": 5, "cores": 2}
    with pytest.raises(BadStateException, match="not running"):
        ex.submit(print, {})


def scaled(x):
    return 10 * x


def test_task_main_runs_a_call_and_rank_0_writes_the_outcome(tmp_path):
    source, target = tmp_path / "t.in", tmp_path / "t.out"
    source.write_bytes(pack_call(scaled, (4,), {}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), RP_RANK="1")
    cmd = [sys.executable, "-m", "flowlib.executors.radical.task_main", str(source), str(target)]
    subprocess.run(cmd, check=True, env=env, cwd=os.path.dirname(__file__), timeout=20)
    assert not target.exists()  # rank 1 only runs the call
    env["RP_RANK"] = "0"
    subprocess.run(cmd, check=True, env=env, cwd=os.path.dirname(__file__), timeout=20)
    assert unpack_outcome(target.read_bytes()) == 40


class _Pilot:
    uid = "pilot.0000"


def test_a_failed_pilot_fails_pending_tasks_and_refuses_new_ones():
    rp = pytest.importorskip("radical.pilot")
    from concurrent.futures import Future

    from flowlib.executors.radical.executor import RadicalPilotExecutor, _Pending

    ex = RadicalPilotExecutor("local.localhost", label="rp")
    ex._rp = rp
    ex._tmgr = object()  # "started": only the pilot callback is exercised here
    pending: Future[object] = Future()
    ex._pending["flowlib.rp.000000"] = _Pending(pending, None)
    ex._pilot_state(_Pilot(), rp.FAILED)
    with pytest.raises(BadStateException, match="pilot pilot.0000 ended FAILED"):
        pending.result(timeout=1)
    with pytest.raises(BadStateException, match="pilot pilot.0000 ended FAILED"):
        ex.submit(print, {})
