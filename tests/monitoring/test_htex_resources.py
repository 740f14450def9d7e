"""Resource sampling in high-throughput worker pools: rows in ``resource`` for the right tries."""

from __future__ import annotations

import glob
import os
import socket
import subprocess
import sys

import pytest
from conftest import try_assert

import flowlib
from flowlib.app.app import bash_app, python_app
from flowlib.executors import HighThroughputExecutor
from flowlib.executors.high_throughput.pool_resources import ResourceSampler
from flowlib.monitoring import MonitoringHub
from flowlib.providers import LocalProvider

MB = 1 << 20
ALLOCATION = 150 * MB


@python_app
def burn(stop_file, size):
    """Hold ``size`` bytes (every page touched) and burn CPU until ``stop_file`` exists (at most 30 s)."""
    import os
    import time

    block = bytearray(size)
    for i in range(0, size, 4096):
        block[i] = 1
    deadline = time.monotonic() + 30
    x = 0
    while not os.path.exists(stop_file) and time.monotonic() < deadline:
        for i in range(20000):
            x += i * i
    return len(block)


@bash_app
def burn_in_child(stop_file, size):
    import shlex
    import sys

    code = (
        "import os,time\n"
        f"b=bytearray({size})\n"
        f"for i in range(0,{size},4096): b[i]=1\n"
        "d=time.monotonic()+30\n"
        f"while not os.path.exists({stop_file!r}) and time.monotonic()<d: sum(i*i for i in range(20000))\n"
    )
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"


@python_app
def double(x):
    return 2 * x


def _executor():
    return HighThroughputExecutor(
        label="htex",
        address="127.0.0.1",
        max_workers_per_node=2,
        provider=LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1),
    )


def _samples(query, task_id):
    return query(
        "SELECT try_id, hostname, psutil_process_cpu_percent, psutil_process_memory_resident, "
        "psutil_process_time_user + psutil_process_time_system, psutil_process_children_count, "
        "resource_monitoring_interval, psutil_process_pid, psutil_process_num_threads "
        "FROM resource WHERE task_id = ? ORDER BY timestamp",
        task_id,
    )


def _busy_and_big(rows):
    return (
        len(rows) >= 3
        and max(r[2] for r in rows) > 20
        and max(r[3] for r in rows) > ALLOCATION
        and rows[-1][4] - rows[0][4] > 0.1
    )


@pytest.mark.timeout(90)
def test_busy_tasks_are_sampled_and_attributed(monitored, query, tmp_path, db_path):
    hub = MonitoringHub(flush_period=0.05, resource_monitoring_interval=0.2)
    python_stop, bash_stop = str(tmp_path / "stop-python"), str(tmp_path / "stop-bash")
    with flowlib.load(monitored(hub, executors=[_executor()])) as dfk:
        quick = double(1)
        assert quick.result(timeout=30) == 2
        hot = burn(python_stop, ALLOCATION)
        child = burn_in_child(bash_stop, ALLOCATION)
        try:
            try_assert(
                lambda: _busy_and_big(_samples(query, hot.tid)),
                timeout=40,
                message=f"no busy, big samples for the python task: {_samples(query, hot.tid)}",
            )
            try_assert(
                lambda: _busy_and_big(_samples(query, child.tid)) and max(r[5] for r in _samples(query, child.tid)),
                timeout=40,
                message=f"the bash app's child is not attributed: {_samples(query, child.tid)}",
            )
        finally:
            open(python_stop, "w").close()
            open(bash_stop, "w").close()
        assert hot.result(timeout=30) == ALLOCATION
        assert child.result(timeout=30) == 0
        run_id = dfk.run_id
    rows = _samples(query, hot.tid)
    assert {r[0] for r in rows} == {0}
    assert {r[1] for r in rows} == {socket.gethostname()}
    assert {r[6] for r in rows} == {0.2}
    assert all(r[7] and r[8] >= 1 for r in rows)
    # Only the running tasks are sampled: the quick task finished before sampling found it busy, mostly.
    tasks = {task_id for (task_id,) in query("SELECT DISTINCT task_id FROM resource WHERE run_id = ?", run_id)}
    assert {hot.tid, child.tid} <= tasks <= {hot.tid, child.tid, quick.tid}
    # The pool's node row carries the node's figures.
    ((cpus, memory),) = query("SELECT DISTINCT cpu_count, total_memory FROM node WHERE run_id = ?", run_id)
    import psutil

    assert (cpus, memory) == (psutil.cpu_count(), psutil.virtual_memory().total)
    # The dashboard's JSON: the node series and the task's samples by try.
    import httpx

    from flowlib.monitoring.dashboard.app import create_app

    from .serve import serving

    with serving(create_app(f"sqlite:///{db_path}")) as base, httpx.Client(base_url=base, timeout=10) as client:
        nodes = client.get(f"/api/runs/{run_id}/resources", params={"points": 50}).json()["nodes"]
        (series,) = nodes.values()
        assert 1 <= len(series) <= 50
        assert max(p[1] for p in series) > 20 and max(p[2] for p in series) > ALLOCATION
        tries = client.get(f"/api/runs/{run_id}/tasks/{hot.tid}/resources").json()["tries"]
        assert list(tries) == ["0"] and len(tries["0"]) == len(rows)
        assert max(s["memory_resident"] for s in tries["0"]) > ALLOCATION
        assert client.get(f"/api/runs/{run_id}/tasks/{quick.tid + 1000}/resources").json() == {"tries": {}}


def test_disabled_means_no_rows_and_no_sampler(monitored, query, tmp_path):
    hub = MonitoringHub(flush_period=0.05, resource_monitoring_enabled=False)
    stop = str(tmp_path / "stop")
    with flowlib.load(monitored(hub, executors=[_executor()])) as dfk:
        hot = burn(stop, 10 * MB)
        try_assert(
            lambda: (
                query("SELECT count(*) FROM status WHERE task_id = ? AND task_status_name = 'launched'", hot.tid)
                == [(1,)]
            ),
            message="the task never launched",
        )
        open(stop, "w").close()
        assert hot.result(timeout=30) == 10 * MB
        run_id = dfk.run_id
        logs = glob.glob(os.path.join(dfk.run_dir, "**", "manager.log"), recursive=True)
    assert query("SELECT count(*) FROM resource WHERE run_id = ?", run_id) == [(0,)]
    assert logs
    for log in logs:
        with open(log) as f:
            text = f.read()
        assert "registered with the interchange" in text
        assert "resource sampling" not in text


def test_the_sampler_reads_a_process_tree(tmp_path):
    # A parent whose child burns CPU and holds memory: the parent's sample includes the child.
    stop = tmp_path / "stop"
    child = tmp_path / "child.py"
    child.write_text(
        "import os\n"
        "b = bytearray(80 << 20)\n"
        "for i in range(0, len(b), 4096):\n    b[i] = 1\n"
        f"while not os.path.exists({str(stop)!r}):\n    sum(i * i for i in range(20000))\n"
    )
    code = (
        "import subprocess, sys\n"
        f"c = subprocess.Popen([sys.executable, {str(child)!r}])\n"
        "print(c.pid, flush=True)\n"
        "c.wait()\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        sampler = ResourceSampler(0.1, lambda: {7: parent.pid})
        assert sampler._thread is None  # sample_once() needs no thread

        def big():
            (sample,) = sampler.sample_once()
            return sample if sample["memory_resident"] > 80 * MB and sample["children_count"] == 1 else None

        try_assert(lambda: big() is not None, timeout=20, message="the child's memory is not in the sample")
        first = big()
        assert first is not None and first["task_id"] == 7 and first["pid"] == parent.pid

        def busier():
            sample = big()
            return sample is not None and sample["time_user"] + sample["time_system"] > first["time_user"] + 0.05

        try_assert(busier, timeout=20, message="the child's CPU time is not counted")
        assert child_pid != parent.pid
    finally:
        stop.touch()
        parent.wait(20)
        if parent.stdout is not None:
            parent.stdout.close()
