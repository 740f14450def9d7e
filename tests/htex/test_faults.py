"""Fault tolerance with real processes: killed workers, killed pools, and no leftovers.

Every test kills real processes (SIGKILL, SIGINT) and checks what the user sees:
the right exception, retries that succeed elsewhere, and no interchange, pool or
worker process left running afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
from child_signals import default_sigint
from conftest import REPO_ROOT, try_assert

import flowlib
from flowlib import python_app
from flowlib.config import Config
from flowlib.dataflow.dflow import DataFlowKernel
from flowlib.executors.high_throughput.errors import ManagerLost, WorkerLost
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.providers import LocalProvider

pytestmark = pytest.mark.timeout(90)


def htex_config(tmp_path: Any, **kwargs: Any) -> Config:
    blocks = kwargs.pop("blocks", 1)
    executor = HighThroughputExecutor(
        label="htex",
        max_workers_per_node=kwargs.pop("workers", 2),
        heartbeat_period=kwargs.pop("heartbeat_period", 0.5),
        heartbeat_threshold=kwargs.pop("heartbeat_threshold", 3),
        provider=LocalProvider(init_blocks=blocks, min_blocks=0, max_blocks=blocks),
    )
    strategy = kwargs.pop("strategy", "none")
    return Config(executors=[executor], run_dir=str(tmp_path / "run"), strategy=strategy, **kwargs)


@pytest.fixture
def kernel_factory() -> Iterator[Any]:
    made: list[DataFlowKernel] = []

    def make(config: Config) -> DataFlowKernel:
        dfk = flowlib.load(config)
        made.append(dfk)
        return dfk

    yield make
    for dfk in made:
        if not dfk.cleanup_called:
            dfk.cleanup()


@python_app
def kill_own_worker_once(marker: str) -> str:
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"


@python_app
def square(x: int) -> int:
    return x * x


@python_app
def pool_pid_then_wait(path: str, release: str) -> int:

    import psutil

    # a worker's parent is the pool's forkserver; the forkserver's parent is the pool
    pool = psutil.Process(os.getppid()).ppid()
    with open(path, "w") as f:
        f.write(str(pool))
    while not os.path.exists(release):
        time.sleep(0.01)
    return pool


def written(path: Any) -> bool:
    """True once the task has written ``path``: it exists, empty, a moment before its content is written."""
    return path.exists() and path.read_text() != ""


def test_killed_worker_fails_task_with_worker_lost(kernel_factory, tmp_path):
    kernel_factory(htex_config(tmp_path))
    others = [square(i) for i in range(20)]
    fut = kill_own_worker_once(str(tmp_path / "marker"))
    with pytest.raises(WorkerLost, match=r"died with signal 9 \(SIGKILL\) while running task"):
        fut.result(timeout=30)
    assert [f.result(timeout=30) for f in others] == [i * i for i in range(20)]
    assert square(9).result(timeout=30) == 81  # the worker was replaced


def test_killed_worker_is_retried(kernel_factory, tmp_path):
    kernel_factory(htex_config(tmp_path, retries=1))
    fut = kill_own_worker_once(str(tmp_path / "marker"))
    assert fut.result(timeout=30) == "survived"
    assert fut.task_record.fail_count == 1 and "WorkerLost" in fut.task_record.fail_history[0]


def test_killed_pool_is_detected_and_its_task_retried_on_another(kernel_factory, tmp_path):
    dfk = kernel_factory(htex_config(tmp_path, retries=1, blocks=2, workers=1))
    executor = dfk.executors["htex"]
    try_assert(lambda: executor.connected_workers == 2, timeout=30, message="two pools never connected")
    pid_file, release = tmp_path / "pool_pid", tmp_path / "release"
    fut = pool_pid_then_wait(str(pid_file), str(release))
    try_assert(lambda: written(pid_file), timeout=30)
    doomed = int(pid_file.read_text())
    pid_file.unlink()
    os.kill(doomed, signal.SIGKILL)
    try_assert(pid_file.exists, timeout=30, message="the task was not retried on the other pool")
    release.write_text("go")
    assert fut.result(timeout=30) != doomed
    assert "ManagerLost" in fut.task_record.fail_history[0]


def test_killed_pool_without_retries_raises_manager_lost(kernel_factory, tmp_path):
    kernel_factory(htex_config(tmp_path, workers=1))
    pid_file = tmp_path / "pool_pid"
    fut = pool_pid_then_wait(str(pid_file), str(tmp_path / "never"))
    try_assert(lambda: written(pid_file), timeout=30)
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    with pytest.raises(ManagerLost, match="was lost"):
        fut.result(timeout=30)


SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    sys.path[:0] = [{repo!r}, {tests!r}]
    import flowlib
    from flowlib import python_app
    from flowlib.config import Config
    from flowlib.executors.high_throughput.executor import HighThroughputExecutor
    from flowlib.providers import LocalProvider

    @python_app
    def sleepy(path):
        import time
        open(path + "." + str(os.getpid()), "w").close()
        time.sleep(60)

    executor = HighThroughputExecutor(label="htex", max_workers_per_node=2, heartbeat_period=0.5,
                                      heartbeat_threshold=2, provider=LocalProvider(init_blocks=1))
    dfk = flowlib.load(Config(executors=[executor], run_dir={run_dir!r}, strategy="none"))
    futures = [sleepy({marker!r}) for _ in range(4)]
    print("submitted", flush=True)
    if {mode!r} == "cleanup":
        while len([f for f in os.listdir({marker_dir!r}) if f.startswith("started")]) < 2:
            time.sleep(0.05)
        dfk.executors["htex"].shutdown()
        dfk.cleanup()
        print("cleaned", flush=True)
    else:
        time.sleep(120)
    """
)


def run_workflow_script(tmp_path: Any, mode: str) -> tuple[subprocess.Popen[str], set[int]]:
    marker_dir = tmp_path / "markers"
    marker_dir.mkdir()
    script = tmp_path / "workflow.py"
    script.write_text(
        SCRIPT.format(
            repo=REPO_ROOT,
            tests=os.path.join(REPO_ROOT, "tests"),
            run_dir=str(tmp_path / "run"),
            marker=str(marker_dir / "started"),
            marker_dir=str(marker_dir),
            mode=mode,
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,  # noqa: PLW1509 - nothing runs between fork and exec but signal()
    )
    try:
        try_assert(
            lambda: len([f for f in os.listdir(marker_dir) if f.startswith("started")]) >= 2 or proc.poll() is not None,
            timeout=40,
            message="tasks never started",
        )
        assert proc.poll() is None or mode == "cleanup", proc.stderr.read() if proc.stderr else ""
    except BaseException:
        stop(proc)
        raise
    return proc, descendants(proc.pid) if proc.poll() is None else set()


def stop(proc: subprocess.Popen[str]) -> None:
    """Kill the script if it still runs and close its pipes, so that a failed test leaks nothing into the next."""
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def descendants(pid: int) -> set[int]:
    try:
        root = psutil.Process(pid)
        found = {p.pid for p in root.children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()
    # pools live in their own session (LocalProvider); find them by their log directory too
    return found


def living(pids: set[int], marker_dir: str) -> list[str]:
    alive = []
    for p in psutil.process_iter(["pid", "cmdline", "status"]):
        if p.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmd = " ".join(p.info["cmdline"] or [])
        if p.info["pid"] in pids or (marker_dir in cmd and "pytest" not in cmd):
            alive.append(f"{p.info['pid']}: {cmd[:120]}")
    return alive


def worker_pids(marker_dir: str) -> set[int]:
    return {int(name.rsplit(".", 1)[1]) for name in os.listdir(marker_dir) if name.startswith("started.")}


@pytest.mark.parametrize("how", ["sigint", "sigkill"])
def test_no_process_survives_the_submitting_script(tmp_path, how):
    proc, pids = run_workflow_script(tmp_path, "wait")
    try:
        workers = worker_pids(str(tmp_path / "markers"))
        pids |= workers
        assert workers and pids
        os.kill(proc.pid, signal.SIGINT if how == "sigint" else signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        stop(proc)
    run_dir = str(tmp_path / "run")
    try_assert(lambda: not living(pids, run_dir), timeout=30, message=f"left behind: {living(pids, run_dir)}")


def test_cleanup_with_tasks_in_flight_leaves_nothing(tmp_path):
    proc, pids = run_workflow_script(tmp_path, "cleanup")
    try:
        pids |= worker_pids(str(tmp_path / "markers"))
        out, err = proc.communicate(timeout=60)
    finally:
        stop(proc)
    assert "cleaned" in out, err
    run_dir = str(tmp_path / "run")
    try_assert(lambda: not living(pids, run_dir), timeout=30, message=f"left behind: {living(pids, run_dir)}")


@python_app
def wait_for_file(path: str) -> str:
    while not os.path.exists(path):
        time.sleep(0.01)
    return "released"


def test_frozen_interchange_fails_outstanding_tasks_within_the_threshold(kernel_factory, tmp_path):
    from flowlib.executors.errors import BadStateException

    dfk = kernel_factory(htex_config(tmp_path, heartbeat_period=0.3, heartbeat_threshold=1.5))
    executor = dfk.executors["htex"]
    assert square(4).result(timeout=30) == 16
    futures = [wait_for_file(str(tmp_path / "never")) for _ in range(6)]
    interchange = executor._client.process
    os.kill(interchange.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        for fut in futures:
            with pytest.raises(BadStateException, match=rf"interchange .*\(pid {interchange.pid}\).*did not answer"):
                fut.result(timeout=15)
        assert time.monotonic() - stopped < 1.5 + 0.3 + 3.0, "the frozen interchange was noticed late"
        start = time.monotonic()
        with pytest.raises(BadStateException, match="did not answer a ping"):
            square(2).result(timeout=5)
        assert time.monotonic() - start < 1.0
        try_assert(lambda: interchange.poll() is not None, timeout=10, message="the frozen interchange was not killed")
    finally:
        if interchange.poll() is None:
            os.kill(interchange.pid, signal.SIGCONT)
            interchange.kill()


def kill_the_block(executor: HighThroughputExecutor) -> None:
    """SIGKILL the whole process group of block 0 (its job script, pool and workers) after its workers connected."""
    try_assert(lambda: executor.connected_workers == 2, timeout=30, message="the block's workers never connected")
    os.killpg(int(executor.blocks_to_job_id["0"]), signal.SIGKILL)


def test_lost_only_block_fails_outstanding_and_new_tasks_naming_the_block(kernel_factory, tmp_path):
    from flowlib.executors.errors import BadStateException

    dfk = kernel_factory(htex_config(tmp_path))
    executor = dfk.executors["htex"]
    futures = [wait_for_file(str(tmp_path / "never")) for _ in range(20)]
    job = executor.blocks_to_job_id["0"]
    kill_the_block(executor)
    killed = time.monotonic()
    errors = [f.exception(timeout=10) for f in futures]
    assert time.monotonic() - killed < 3, "tasks failed later than the heartbeat threshold"
    held = [e for e in errors if isinstance(e, ManagerLost)]  # those the pool held when it died
    assert len(held) <= 2, errors
    queued = [e for e in errors if not isinstance(e, ManagerLost)]
    assert queued and all(isinstance(e, BadStateException) for e in queued), errors
    message = str(queued[0])
    assert f"block 0 (job {job}) was lost: its job is CANCELLED" in message, message
    assert "strategy 'none' starts no replacement" in message
    start = time.monotonic()
    with pytest.raises(BadStateException, match=rf"block 0 \(job {job}\) was lost"):
        square(3).result(timeout=5)
    assert time.monotonic() - start < 1, "a task submitted after the loss did not fail at once"


def test_lost_block_is_replaced_when_the_strategy_can_scale(kernel_factory, tmp_path):
    dfk = kernel_factory(htex_config(tmp_path, strategy="simple", strategy_period=0.2, retries=1))
    executor = dfk.executors["htex"]
    release = tmp_path / "release"
    futures = [wait_for_file(str(release)) for _ in range(10)]
    kill_the_block(executor)
    try_assert(lambda: "1" in executor.blocks_to_job_id, timeout=15, message="no replacement block was started")
    release.write_text("go")
    assert [f.result(timeout=30) for f in futures] == ["released"] * 10
    assert square(5).result(timeout=30) == 25
    assert executor.block_status()["0"].terminal


def test_hung_block_is_cancelled_and_its_tasks_fail_after_the_threshold(kernel_factory, tmp_path):
    from flowlib.executors.errors import BadStateException

    dfk = kernel_factory(htex_config(tmp_path, heartbeat_period=0.3, heartbeat_threshold=1.5))
    executor = dfk.executors["htex"]
    executor.provider.cancel_grace = 0.5
    futures = [wait_for_file(str(tmp_path / "never")) for _ in range(6)]
    try_assert(lambda: executor.connected_workers == 2, timeout=30, message="the block's workers never connected")
    group = int(executor.blocks_to_job_id["0"])
    os.killpg(group, signal.SIGSTOP)  # the job lives on, but its pool answers nothing
    stopped = time.monotonic()
    try:
        errors = [f.exception(timeout=15) for f in futures]
        assert time.monotonic() - stopped < 2 * 1.5 + 2, "the hung block was noticed late"
        queued = [e for e in errors if not isinstance(e, ManagerLost)]
        assert queued and all(isinstance(e, BadStateException) for e in queued), errors
        assert "no worker pool came back within 1.5 s while its job stayed RUNNING" in str(queued[0])
        try_assert(
            lambda: not any(p.status() != psutil.STATUS_ZOMBIE for p in group_members(group)),
            timeout=15,
            message="the hung block's job was not cancelled",
        )
    finally:
        for member in group_members(group):
            try:
                member.kill()
            except psutil.NoSuchProcess:
                pass


def group_members(group: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == group:
                members.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    return members
