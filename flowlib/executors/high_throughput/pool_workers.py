"""Starting, tracking, killing and describing the worker processes of one pool.

Workers are made by multiprocessing's ``forkserver`` context: the forkserver
is a clean process started before the manager opens any ZeroMQ socket, and it
preloads :mod:`flowlib.executors.high_throughput.worker`, so a replacement
worker can be forked at any time, cheaply and safely. Each worker gets its own
duplex Pipe; the manager keeps one end and polls its file descriptor, and the
process's ``sentinel`` (readable once the process has exited).
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from flowlib.executors.high_throughput.affinity import accelerator_environment, worker_cpus
from flowlib.executors.high_throughput.pool_options import NodeResources, PoolOptions
from flowlib.executors.high_throughput.shared_results import budget_per_worker
from flowlib.executors.high_throughput.worker import PipeReader, WorkerSetup, run

logger = logging.getLogger("flowlib.executors.high_throughput.worker_pool")

WORKER_MODULE = "flowlib.executors.high_throughput.worker"
PIPE_BUFFER = 4 << 20
"""Bytes asked for each direction of a worker's Pipe: a multi-MiB task then moves in one write."""


@dataclass(eq=False)
class WorkerSlot:
    """One worker process as the manager sees it."""

    rank: int
    """The worker's rank; a replacement gets the same one."""
    process: BaseProcess
    """The process (started)."""
    conn: Connection | None
    """The manager's end of the worker's Pipe (owns the descriptor); None once closed."""
    reader: PipeReader | None = field(default=None)
    """Reads the worker's messages from ``conn``'s descriptor."""
    tasks: deque[int] = field(default_factory=deque)
    """The tasks handed to the worker and not answered, in order: the first runs, the rest wait (prefetch)."""
    broken: bool = False
    """Nothing more is sent to the worker (a write failed, or it was killed); what it wrote is still read."""
    revoking: bool = False
    """A SIGUSR1 was sent and the worker has not answered since: do not send another."""
    service_time: float = math.inf
    """How long the worker's last task took, from its start to its result (seconds); inf before the first."""
    killed_for: int | None = None
    """The task whose cancellation made the manager kill this worker."""
    tasks_done: int = 0
    """Tasks this process has completed."""
    started: float = 0.0
    """When the running task started (``time.time()``): handed to an idle worker, or the previous one answered."""

    def __post_init__(self) -> None:
        if self.conn is not None and self.reader is None:
            self.reader = PipeReader(self.conn.fileno())

    @property
    def task(self) -> int | None:
        """The task the worker is running (the first one handed over and not answered), or None."""
        return self.tasks[0] if self.tasks else None

    @property
    def pid(self) -> int:
        return self.process.pid or -1

    @property
    def fd(self) -> int | None:
        """The descriptor of the manager's end of the Pipe, or None once closed."""
        return self.reader.fd if self.conn is not None and self.reader is not None else None

    @property
    def sentinel(self) -> int:
        return self.process.sentinel

    def drain(self) -> list[Any]:
        """Everything a dead worker wrote and the manager has not read yet (never blocks)."""
        if self.conn is None or self.reader is None:
            return []
        messages: list[Any] = []
        os.set_blocking(self.reader.fd, False)
        try:
            while True:
                messages += self.reader.read()
        except (EOFError, OSError):  # EOF, or nothing more (a child of the worker may hold the Pipe open)
            pass
        return messages

    def close_conn(self) -> None:
        """Close the manager's end of the Pipe (the worker then sees EOF)."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def kill(self) -> None:
        """SIGKILL the worker and every process it started (ignored if already gone).

        A bash app's command runs in its own session, so killing the worker alone
        would leave it running; its process tree is collected first and killed too.
        """
        try:
            import psutil

            descendants = psutil.Process(self.process.pid).children(recursive=True)
        except Exception:  # psutil missing, or the worker is already gone
            descendants = []
        try:
            self.process.kill()
        except (OSError, ValueError, AttributeError):
            pass
        for child in descendants:
            try:
                child.kill()
            except Exception:  # already exited
                pass


def describe_exit(exitcode: int | None) -> str:
    """``"with signal 9 (SIGKILL)"`` or ``"with exit code 1"``."""
    if exitcode is None:
        return "with an unknown status"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown signal"
        return f"with signal {-exitcode} ({name})"
    return f"with exit code {exitcode}"


class WorkerFactory:
    """Knows how to start the worker of each rank (environment, CPUs, accelerator, log)."""

    def __init__(self, options: PoolOptions, node: NodeResources, count: int) -> None:
        self.options = options
        self.node = node
        self.count = count
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload([WORKER_MODULE])
        self.result_dir: str | None = None
        """The executor's arena directory, set once the pool is known to share the executor's machine."""

    def setup(self, rank: int) -> WorkerSetup:
        """The setup of worker ``rank``: its environment, CPUs and log file."""
        o = self.options
        values = {
            "WORKER_RANK": str(rank),
            "WORKER_COUNT": str(self.count),
            "WORKER_POOL_ID": o.pool_id,
            "WORKER_BLOCK_ID": o.block_id,
        }
        env = {f"{prefix}_{name}": value for prefix in ("PARSL", "FLOWLIB") for name, value in values.items()}
        env.update(accelerator_environment(o.accelerators[rank] if o.accelerators else None))
        return WorkerSetup(
            rank=rank,
            environment=env,
            cpus=worker_cpus(o.cpu_affinity, rank, self.count, self.node.cpus, o.cores_per_worker),
            log_path=os.path.join(o.logdir, f"worker_{rank}.log"),
            working_dir=o.working_dir,
            debug=o.debug,
            result_dir=self.result_dir,
            result_bytes=budget_per_worker(self.count) if self.result_dir else 0,
            log_format=o.log_format,
        )

    def start_forkserver(self) -> None:
        """Start the forkserver (it preloads the worker module); returns without waiting for it."""
        from multiprocessing import forkserver

        forkserver.ensure_running()

    def start(self, rank: int) -> WorkerSlot:
        """Start the worker of ``rank`` and return its slot."""
        mine, theirs = self._context.Pipe(duplex=True)
        _widen(mine)
        _widen(theirs)
        process = self._context.Process(target=run, args=(theirs, self.setup(rank)), name=f"flowlib-worker-{rank}")
        try:
            process.start()
        finally:
            theirs.close()  # the child holds its own copy now; ours would hide its EOF
        return WorkerSlot(rank=rank, process=process, conn=mine)


def _widen(conn: Any) -> None:
    """Give a duplex Pipe (a Unix socket pair) buffers that hold a large task whole, where the kernel allows."""
    import socket

    sock = socket.socket(fileno=os.dup(conn.fileno()))
    try:
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            sock.setsockopt(socket.SOL_SOCKET, option, PIPE_BUFFER)
    except OSError:  # capped or refused by the kernel: the default works too, with more wake-ups
        pass
    finally:
        sock.close()


def _wait_exits(slots: list[WorkerSlot], timeout: float) -> None:
    from multiprocessing.connection import wait

    deadline = time.monotonic() + timeout
    pending = [slot.sentinel for slot in slots if slot.process.exitcode is None]
    while pending and time.monotonic() < deadline:
        ready = wait(pending, max(0.0, deadline - time.monotonic()))
        pending = [s for s in pending if s not in ready]


def stop_all(slots: list[WorkerSlot], graceful: float = 0.0, timeout: float = 5.0) -> None:
    """Stop every worker and wait until each has exited.

    With ``graceful`` > 0 the Pipes are closed first, so that idle workers log
    their exit and leave on their own, and only those still there after
    ``graceful`` s are killed. Then SIGKILL, and up to ``timeout`` s of waiting.
    """
    if graceful > 0:
        for slot in slots:
            slot.close_conn()
        _wait_exits(slots, graceful)
    for slot in slots:
        if slot.process.exitcode is None:
            slot.kill()
        slot.close_conn()
    _wait_exits(slots, timeout)
    for slot in slots:
        slot.process.join(0)
        if slot.process.exitcode is None:
            logger.warning("worker %d (pid %d) did not exit after SIGKILL", slot.rank, slot.pid)
