"""Simulated worker pools: many DEALER sockets in one process that register with a real
interchange and answer every task at once, to measure the interchange alone.

::

    executor client --> interchange --TASKS--> N simulated pools (one process, one thread)
                                   <--RESULTS-- (a canned result payload per task)

Also used by tests as a scriptable fake pool (see :class:`SimulatedPool`).
"""

from __future__ import annotations

import os
import platform
import socket
import time
import uuid
from typing import Any

import zmq

from flowlib.executors.high_throughput import protocol as p
from flowlib.version import VERSION


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
        if cert_dir:
            from flowlib.executors.high_throughput.security import apply_client, client_keys

            apply_client(self.socket, client_keys(cert_dir))
        self.socket.connect(f"tcp://{address}:{port}")
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

    Returns counts: tasks answered, messages, seconds of registration.
    """
    context: zmq.Context[Any] = zmq.Context()
    started = time.perf_counter()
    sims = [
        SimulatedPool(context, address, port, cert_dir, registration(workers_per_pool, block_id=str(i)))
        for i in range(pools)
    ]
    for sim in sims:
        sim.socket.send_multipart(sim.reg.encode())
    poller = zmq.Poller()
    for sim in sims:
        poller.register(sim.socket, zmq.POLLIN)
    by_socket = {sim.socket: sim for sim in sims}
    registered = 0
    answered = 0
    messages = 0
    registration_seconds = 0.0
    deadline = time.perf_counter() + duration
    ok = bytes([p.TaskStatus.OK])
    while time.perf_counter() < deadline:
        for sock, _ in poller.poll(100):
            sim = by_socket[sock]
            while True:
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                _, kind = p.parse_header(frames[0])
                if kind is p.Kind.REGISTERED:
                    registered += 1
                    if registered == pools:
                        registration_seconds = time.perf_counter() - started
                elif kind is p.Kind.TASKS:
                    ids = p.unpack_ids(frames[1])
                    sock.send_multipart(p.ResultBatch(ids, ok * len(ids), [result_payload] * len(ids)).encode())
                    answered += len(ids)
                    messages += 1
                elif kind is p.Kind.HEARTBEAT:
                    sock.send_multipart(p.encode_empty(p.Kind.HEARTBEAT))
            del sim
    for sim in sims:
        sim.close()
    context.term()
    return {
        "answered": answered,
        "messages": messages,
        "registered": registered,
        "registration_seconds": registration_seconds,
    }
