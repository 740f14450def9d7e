"""Simulated worker pools: many DEALER sockets in one process that register with a real
interchange and answer every task at once, to measure the interchange alone.

::

    executor client --> interchange --TASKS--> N simulated pools (one process, one thread)
                                   <--RESULTS-- (a canned result payload per task)

    parent (benchmark)  --stdin: "stop"-->  python -m flowlib.benchmark.simulated_managers
                        <--stdout: JSON lines ("registered", then "done" with counts)--

A simulated pool answers a TASKS message with one RESULTS message carrying the
same ids frame, a status byte per task and the canned payload, without
deserializing anything, so the pools cost as little as the protocol allows.

Also used by tests as a scriptable fake pool (see :class:`SimulatedPool`).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import select
import socket
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import zmq

from flowlib.addresses import tcp_url, zmq_ipv6
from flowlib.executors.high_throughput import protocol as p
from flowlib.executors.high_throughput.zmq_frames import NOBLOCK, recv_frames, send_frames
from flowlib.version import VERSION

FDS_PER_SOCKET = 3
"""File descriptors one connected DEALER socket may use (TCP connection, mailbox, spare)."""


def registration(
    worker_count: int, block_id: str = "sim", pool_id: str | None = None, **overrides: Any
) -> p.Registration:
    """A Registration record as a worker pool would send it."""
    values: dict[str, Any] = dict(
        protocol_version=p.PROTOCOL_VERSION,
        flowlib_version=VERSION,
        python_version=platform.python_version(),
        hostname=socket.gethostname(),
        block_id=block_id,
        pool_id=pool_id or uuid.uuid4().hex[:12],
        worker_count=worker_count,
        prefetch_capacity=0,
        cores=float(worker_count),
        memory_mb=1024.0 * worker_count,
        accelerators=[],
        pid=os.getpid(),
    )
    values.update(overrides)
    return p.Registration(**values)


class SimulatedPool:
    """One fake worker pool: a DEALER socket speaking the protocol."""

    def __init__(
        self,
        context: zmq.Context[Any],
        address: str,
        port: int,
        cert_dir: str | None,
        reg: p.Registration,
    ) -> None:
        self.reg = reg
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.IDENTITY, reg.pool_id.encode())
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.IPV6, zmq_ipv6(address))
        if cert_dir:
            from flowlib.executors.high_throughput.security import apply_client, client_keys

            apply_client(self.socket, client_keys(cert_dir))
        self.socket.connect(tcp_url(address, port))
        self.running: dict[int, Any] = {}

    def register(self, timeout: float = 10.0) -> list[Any]:
        """Send REGISTER and return the interchange's answer frames."""
        self.socket.send_multipart(self.reg.encode())
        if not self.socket.poll(int(timeout * 1000)):
            raise TimeoutError(f"no answer to the registration of {self.reg.pool_id}")
        return self.socket.recv_multipart()

    def send(self, frames: list[Any]) -> None:
        self.socket.send_multipart(frames)

    def close(self) -> None:
        self.socket.close(linger=0)


def raise_socket_limits(context: zmq.Context[Any], sockets: int) -> int:
    """Let this process hold ``sockets`` connected ZeroMQ sockets; return the new fd limit.

    Raises the soft ``RLIMIT_NOFILE`` (up to the hard limit) and the context's
    ``MAX_SOCKETS`` (1,023 by default), which must happen before any socket of
    ``context`` is created. Raises OSError when the hard limit is too low.
    """
    wanted = FDS_PER_SOCKET * sockets + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
        soft = new_soft
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raise OSError(f"{sockets} sockets need about {wanted} file descriptors; the hard limit is {hard}")
    context.set(zmq.MAX_SOCKETS, max(context.get(zmq.MAX_SOCKETS), sockets + 64))
    return wanted if soft == resource.RLIM_INFINITY else int(soft)


@dataclass
class EchoStats:
    """What :meth:`EchoPools.serve` did."""

    pools: int
    """Simulated pools connected."""
    registered: int
    """Pools whose registration the interchange accepted."""
    registration_seconds: float
    """From the first REGISTER sent to the last REGISTERED received."""
    answered: int = 0
    """Tasks answered."""
    task_messages: int = 0
    """TASKS messages received (each answered by one RESULTS message)."""
    heartbeats: int = 0
    """Heartbeats answered."""
    busy_seconds: float = 0.0
    """From the first TASKS message received to the last RESULTS message sent."""
    max_batch: int = 0
    """Largest number of tasks in one TASKS message."""

    @property
    def tasks_per_message(self) -> float:
        """Mean tasks per TASKS message: how well the interchange batches."""
        return self.answered / self.task_messages if self.task_messages else 0.0


class EchoPools:
    """Many simulated pools in one process, answering every task at once."""

    def __init__(
        self,
        address: str,
        port: int,
        cert_dir: str | None,
        pools: int,
        workers_per_pool: int,
        result_payload: bytes,
    ) -> None:
        self.context: zmq.Context[Any] = zmq.Context()
        self.fd_limit = raise_socket_limits(self.context, pools)
        self.sims = [
            SimulatedPool(self.context, address, port, cert_dir, registration(workers_per_pool, block_id=str(i)))
            for i in range(pools)
        ]
        self.result_payload = result_payload
        self.poller = zmq.Poller()
        for sim in self.sims:
            self.poller.register(sim.socket, zmq.POLLIN)
        self.stats = EchoStats(pools=pools, registered=0, registration_seconds=0.0)

    def register(self, timeout: float = 120.0) -> EchoStats:
        """Register every pool; return when all are accepted (TimeoutError after ``timeout`` s)."""
        started = time.perf_counter()
        for sim in self.sims:
            sim.socket.send_multipart(sim.reg.encode())
        pending = {sim.socket for sim in self.sims}
        deadline = started + timeout
        while pending:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError(f"{len(pending)} of {len(self.sims)} pools not registered after {timeout} s")
            for sock, _ in self.poller.poll(int(min(remaining, 1.0) * 1000) + 1):
                frames = sock.recv_multipart()
                _, kind = p.parse_header(frames[0])
                if kind is p.Kind.REGISTERED:
                    pending.discard(sock)
                elif kind is p.Kind.REJECT:
                    raise RuntimeError(f"registration refused: {bytes(frames[1]).decode(errors='replace')}")
        self.stats.registered = len(self.sims)
        self.stats.registration_seconds = time.perf_counter() - started
        return self.stats

    def serve(self, duration: float | None = None, stop_fd: int | None = None) -> EchoStats:
        """Answer tasks until ``duration`` seconds pass or ``stop_fd`` is readable (a line or EOF).

        The sockets are watched through their ``ZMQ_FD`` descriptors in one epoll set,
        so a wait costs in proportion to the sockets that are ready, not to all of them
        (``zmq.Poller`` walks every socket on every wait). A ``ZMQ_FD`` only says
        "look at me", so every socket it names is read until ``zmq.Again``, also
        after each answer sent on it; the first pass reads every socket, for the
        messages that came before the descriptors were watched.
        """
        watch = select.epoll()
        sockets = {}
        for sim in self.sims:
            fd = sim.socket.getsockopt(zmq.FD)
            sockets[fd] = sim.socket
            watch.register(fd, select.EPOLLIN)
        if stop_fd is not None:
            watch.register(stop_fd, select.EPOLLIN)
        stats = self.stats
        ok = bytes([p.TaskStatus.OK])
        results_header = p.header(p.Kind.RESULTS)
        packed_results = functools.lru_cache(maxsize=64)(
            lambda count: p.ResultBatch([0] * count, ok * count, [self.result_payload] * count).encode()[5:]
        )
        first_task = last_result = 0.0
        deadline = None if duration is None else time.perf_counter() + duration
        ready = list(sockets)
        try:
            while deadline is None or time.perf_counter() < deadline:
                stop = False
                for fd in ready:
                    if fd == stop_fd:
                        stop = True
                        continue
                    sock = sockets[fd]
                    while True:
                        try:
                            frames = recv_frames(sock, NOBLOCK)
                        except zmq.Again:
                            break
                        _, kind = p.parse_header(frames[0])
                        if kind is p.Kind.TASKS:
                            ids = frames[1]
                            count = len(ids) // 8
                            if not first_task:
                                first_task = time.perf_counter()
                            # The ids frame of TASKS has the layout of the ids frame of RESULTS.
                            # No worker times, no pools; the payloads packed as a real pool packs them.
                            frames = [results_header, ids, ok * count, b"", b"", *packed_results(count)]
                            send_frames(sock, frames)
                            last_result = time.perf_counter()
                            stats.answered += count
                            stats.task_messages += 1
                            stats.max_batch = max(stats.max_batch, count)
                        elif kind is p.Kind.HEARTBEAT:
                            sock.send_multipart(p.encode_empty(p.Kind.HEARTBEAT))
                            stats.heartbeats += 1
                if stop:
                    break
                ready = [fd for fd, _ in watch.poll(0.1)]
        finally:
            watch.close()
        stats.busy_seconds = last_result - first_task if first_task else 0.0
        return stats

    def close(self) -> None:
        for sim in self.sims:
            sim.close()
        self.context.term()


def run_echo_pools(
    address: str,
    port: int,
    cert_dir: str | None,
    pools: int,
    workers_per_pool: int,
    duration: float,
    result_payload: bytes,
) -> dict[str, float]:
    """Register ``pools`` simulated pools and answer every task until ``duration`` passes.

    Returns counts: tasks answered, messages, pools registered, seconds of registration.
    """
    echo = EchoPools(address, port, cert_dir, pools, workers_per_pool, result_payload)
    try:
        started = time.perf_counter()
        echo.register(timeout=duration)
        stats = echo.serve(duration=max(duration - (time.perf_counter() - started), 0.0))
    finally:
        echo.close()
    return {
        "answered": stats.answered,
        "messages": stats.task_messages,
        "registered": stats.registered,
        "registration_seconds": stats.registration_seconds,
    }


def _emit(event: str, **values: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **values}) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run simulated pools in this process, driven over stdin/stdout by a benchmark.

    Prints ``{"event": "registered", ...}`` once every pool is accepted, answers
    tasks until a line (or EOF) arrives on stdin, then prints
    ``{"event": "done", ...}`` with the counts of :class:`EchoStats`.
    """
    parser = argparse.ArgumentParser(prog="python -m flowlib.benchmark.simulated_managers")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert-dir", default=None)
    parser.add_argument("--pools", type=int, required=True)
    parser.add_argument("--workers-per-pool", type=int, default=32)
    parser.add_argument("--result-hex", required=True, help="the canned result payload, hex-encoded")
    parser.add_argument("--register-timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    echo = EchoPools(
        args.address,
        args.port,
        args.cert_dir,
        args.pools,
        args.workers_per_pool,
        bytes.fromhex(args.result_hex),
    )
    try:
        stats = echo.register(timeout=args.register_timeout)
        _emit("registered", pid=os.getpid(), fd_limit=echo.fd_limit, **asdict(stats))
        stats = echo.serve(stop_fd=sys.stdin.fileno())
        _emit("done", tasks_per_message=stats.tasks_per_message, **asdict(stats))
    finally:
        echo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
