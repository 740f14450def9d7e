"""Fixtures for the end-to-end tests: service gates, a workflow runner, and leak checks.

Every workflow runs in its own run directory under ``tmp_path``. When a test ends,
the kernel is cleaned up, and the test fails if a block's scheduler job or a
worker-pool process outlives the cleanup (after cancelling and killing them, so
that one failure does not spill into the next test).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
from conftest import require_service

import flowlib
from flowlib.config import Config
from flowlib.dataflow.dflow import DataFlowKernel
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.providers.base import ExecutionProvider

SERVICES = Path(__file__).resolve().parents[1] / "services"
SSHD_DIR = Path(os.environ.get("SSHD_DIR", "/tmp/flowlib-sshd"))
SSHD_PORT = int(os.environ.get("SSHD_PORT", "2222"))

T = TypeVar("T")


# ---------------------------------------------------------------- service gates


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def slurm_ready() -> bool:
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return False
    return any(state in _run("sinfo", "-h", "-o", "%t").stdout for state in ("idle", "mix", "alloc"))


def sge_ready() -> bool:
    if shutil.which("qstat") is None or shutil.which("qsub") is None:
        return False
    lines = _run("qstat", "-f", "-q", "all.q").stdout.splitlines()
    # A usable queue instance: "all.q@host BIP 0/0/2 0.01 lx-amd64" with no state flags after it.
    return any(line.startswith("all.q@") and len(line.split()) == 5 for line in lines)


def sshd_ready() -> bool:
    if not (SSHD_DIR / "id_ed25519").exists() or not (SSHD_DIR / "known_hosts").exists():
        return False
    with socket.create_connection(("127.0.0.1", SSHD_PORT), timeout=5) as conn:
        return conn.recv(4).startswith(b"SSH-")


@pytest.fixture
def slurm() -> None:
    require_service("slurm", slurm_ready)


@pytest.fixture
def gridengine() -> None:
    require_service("sge", sge_ready)


@pytest.fixture
def sshd() -> None:
    require_service("sshd", sshd_ready)


# --------------------------------------------------------------------- polling


def wait_until(check: Callable[[], T], timeout: float, message: str | Callable[[], str]) -> T:
    """Poll ``check`` until it returns something true and return it; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"{text} (waited {timeout:g} s)")
        time.sleep(0.1)


# ---------------------------------------------------------------- schedulers


@dataclass(frozen=True)
class Scheduler:
    """How a test sees a scheduler's queue, independently of flowlib."""

    name: str
    list_cmd: tuple[str, ...]
    cancel_cmd: tuple[str, ...]

    def active_jobs(self) -> set[str]:
        """Ids of the jobs the scheduler still lists as queued, running or ending."""
        out = _run(*self.list_cmd).stdout
        ids = set()
        for line in out.splitlines():
            fields = line.split()
            if fields and fields[0].isdigit():
                ids.add(fields[0])
        return ids

    def cancel(self, job_ids: list[str]) -> None:
        if job_ids:
            _run(*self.cancel_cmd, *job_ids)


SLURM = Scheduler("Slurm", ("squeue", "--noheader", "--format=%i"), ("scancel",))
GRID_ENGINE = Scheduler("Grid Engine", ("qstat", "-u", "*"), ("qdel", "-f"))
LOCAL = Scheduler("local", ("true",), ("true",))


def squeue_state(job_id: str) -> str:
    """Slurm's short state of a job (``R``, ``CA``, ...), or '' once it has left squeue."""
    return _run("squeue", "--noheader", "--states=all", "--format=%t", f"--jobs={job_id}").stdout.strip()


# ------------------------------------------------------------------- workflows


@dataclass
class Workflow:
    """A loaded kernel with one high-throughput executor, for one test."""

    dfk: DataFlowKernel
    executor: HighThroughputExecutor
    scheduler: Scheduler
    run_dir: Path

    def job_ids(self) -> list[str]:
        """Scheduler job ids of every block the executor started, in block order."""
        return [self.executor.blocks_to_job_id[b] for b in sorted(self.executor.blocks_to_job_id, key=int)]

    def states(self) -> dict[str, str]:
        """Block id -> state name, as the executor last saw it."""
        return {b: s.state.name for b, s in self.executor.block_status().items()}

    def busy_blocks(self) -> set[str]:
        """Blocks with a registered worker pool that holds at least one task (asks the interchange)."""
        return {str(m["block_id"]) for m in self.executor.connected_managers if m["outstanding"]}

    def describe(self) -> str:
        """What the executor knows, for assertion messages."""
        status = self.executor.block_status()
        blocks = {b: (self.executor.blocks_to_job_id.get(b), s.state.name, s.message) for b, s in status.items()}
        return (
            f"blocks {blocks}; in the scheduler's queue: {sorted(self.scheduler.active_jobs())}; "
            f"connected workers {self.executor.connected_workers}; outstanding {self.executor.outstanding}"
        )


@dataclass
class WorkflowFactory:
    tmp_path: Path
    made: list[Workflow] = field(default_factory=list)

    def __call__(
        self,
        provider: ExecutionProvider,
        scheduler: Scheduler,
        *,
        strategy: str = "htex_auto_scale",
        strategy_period: float = 0.5,
        max_idletime: float = 2.0,
        retries: int = 0,
        **htex: Any,
    ) -> Workflow:
        """Load a kernel whose only executor is a HighThroughputExecutor on ``provider``."""
        htex.setdefault("label", "htex")
        htex.setdefault("max_workers_per_node", 1)
        htex.setdefault("heartbeat_period", 1)
        htex.setdefault("heartbeat_threshold", 5)
        executor = HighThroughputExecutor(provider=provider, **htex)
        run_dir = self.tmp_path / f"runinfo{len(self.made)}"
        config = Config(
            executors=[executor],
            run_dir=str(run_dir),
            strategy=strategy,
            strategy_period=strategy_period,
            max_idletime=max_idletime,
            retries=retries,
        )
        workflow = Workflow(flowlib.load(config), executor, scheduler, run_dir)
        self.made.append(workflow)
        return workflow

    def close(self) -> list[str]:
        """Clean up every kernel; return what outlived it (after removing it)."""
        problems: list[str] = []
        for workflow in self.made:
            if not workflow.dfk.cleanup_called:
                workflow.dfk.cleanup()
        flowlib.clear()
        for workflow in self.made:
            problems += _leftover_jobs(workflow)
        problems += _leftover_processes(str(self.tmp_path))
        return problems


def _leftover_jobs(workflow: Workflow) -> list[str]:
    ours = set(workflow.job_ids())
    if not ours or workflow.scheduler is LOCAL:
        return []
    deadline = time.monotonic() + 20
    left = ours & workflow.scheduler.active_jobs()
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = ours & workflow.scheduler.active_jobs()
    workflow.scheduler.cancel(sorted(left))
    return [f"{workflow.scheduler.name} job {j} still queued or running after cleanup()" for j in sorted(left)]


def _leftover_processes(marker: str) -> list[str]:
    """Processes (worker pools, workers) whose command line names this test's directory."""
    me = os.getpid()

    def ours() -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter(["pid", "cmdline", "status"]):
            try:
                if proc.pid == me or proc.info["status"] == psutil.STATUS_ZOMBIE:
                    continue
                if any(marker in part for part in proc.info["cmdline"] or ()):
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return found

    deadline = time.monotonic() + 20
    left = ours()
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = ours()
    problems = []
    for proc in left:
        try:
            problems.append(f"pid {proc.pid} outlived the workflow: {' '.join(proc.cmdline())[:300]}")
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    return problems


@pytest.fixture
def workflow(tmp_path: Path) -> Iterator[WorkflowFactory]:
    """``workflow(provider, scheduler, **options)`` loads a kernel; everything is checked for leftovers."""
    factory = WorkflowFactory(tmp_path)
    try:
        yield factory
    finally:
        problems = factory.close()
    assert not problems, "\n".join(problems)
