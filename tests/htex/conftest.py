"""A fake interchange and a real worker-pool process, for driving the pool from tests.

The fake interchange is a ZeroMQ ROUTER bound to 127.0.0.1 that speaks
:mod:`flowlib.executors.high_throughput.protocol`. The pool is a subprocess of
``python -m flowlib.executors.high_throughput.worker_pool``; every process it
starts is recorded, and the fixture fails the test if any outlives it.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psutil
import pytest
import zmq

from flowlib.executors.high_throughput import protocol, security
from flowlib.executors.high_throughput.links import make_socket_dir
from flowlib.executors.high_throughput.parts import joined
from flowlib.executors.high_throughput.protocol import Kind, Registration, ResultBatch, TaskBatch, TaskStatus
from flowlib.serialize import deserialize, pack_res_spec_apply_message

TESTS_DIR = pathlib.Path(__file__).resolve().parents[1]
POOL_MODULE = "flowlib.executors.high_throughput.worker_pool"


def make_registration(**changes: Any) -> Registration:
    """A pool's registration with harmless defaults (two workers, this process's pid); ``changes`` override them."""
    fields: dict[str, Any] = {
        "protocol_version": protocol.PROTOCOL_VERSION,
        "flowlib_version": "0",
        "python_version": "3",
        "hostname": "unit",
        "block_id": "0",
        "pool_id": "pool",
        "worker_count": 2,
        "prefetch_capacity": 0,
        "cores": 4.0,
        "memory_mb": 1000.0,
        "accelerators": [],
        "pid": os.getpid(),
    }
    fields.update(changes)
    return Registration(**fields)


def wait_for(check: Callable[[], Any], timeout: float = 10.0, message: str = "") -> Any:
    """Poll ``check`` until it returns something true; return it, or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message or f"condition not met within {timeout} s")
        time.sleep(0.01)


class FakeInterchange:
    """The interchange side of the pool protocol, driven step by step by a test."""

    def __init__(self, cert_dir: str | None, address: str = "127.0.0.1") -> None:
        from flowlib.addresses import tcp_url

        self.context: zmq.Context[Any] = zmq.Context()
        self.router = self.context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.IPV6, 1)
        if cert_dir is not None:
            security.apply_server(self.router, security.server_keys(cert_dir))
        self.port = self.router.bind_to_random_port(tcp_url(address))
        self.heartbeats = 0
        self.results: dict[int, tuple[int, Any]] = {}
        self.failures: dict[int, dict[str, str]] = {}
        self.drains = 0

    def close(self) -> None:
        self.router.close(linger=0)
        self.context.term()

    def receive(self, timeout: float = 10.0) -> tuple[bytes, Kind, list[bytes]] | None:
        """The next message (identity, kind, frames), or None after ``timeout`` s."""
        if not self.router.poll(timeout * 1000):
            return None
        identity, *frames = self.router.recv_multipart()
        _, kind = protocol.parse_header(frames[0])
        return identity, kind, frames

    def expect(self, kind: Kind, timeout: float = 10.0) -> tuple[bytes, list[bytes]]:
        """Wait for a message of ``kind``; heartbeats, results and failures met on the way are recorded."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            got = self.receive(max(remaining, 0)) if remaining > 0 else None
            if got is None:
                raise AssertionError(f"no {kind.name} message within {timeout} s")
            identity, got_kind, frames = got
            self._record(got_kind, frames)
            if got_kind == kind:
                return identity, frames

    def _record(self, kind: Kind, frames: list[bytes]) -> None:
        if kind == Kind.HEARTBEAT:
            self.heartbeats += 1
        elif kind == Kind.DRAIN:
            self.drains += 1
        elif kind == Kind.RESULTS:
            batch = ResultBatch.decode(frames)
            for tid, status, payload in zip(batch.ids, batch.statuses, batch.payloads, strict=True):
                assert tid not in self.results, f"task {tid} answered twice"
                value = deserialize(joined(payload)) if status != TaskStatus.CANCELLED else None
                self.results[tid] = (status, value)
        elif kind == Kind.FAILURES:
            for key, failure in protocol.body_json(frames).items():
                self.failures[int(key)] = failure

    def register(self, timeout: float = 20.0) -> tuple[bytes, Registration]:
        """Wait for a pool's REGISTER and accept it."""
        identity, frames = self.expect(Kind.REGISTER, timeout)
        registration = Registration.decode(frames)
        self.send(identity, protocol.encode_empty(Kind.REGISTERED))
        return identity, registration

    def send(self, identity: bytes, frames: Sequence[Any]) -> None:
        self.router.send_multipart([identity, *frames])

    def submit(self, identity: bytes, tasks: dict[int, tuple[Callable[..., Any], tuple[Any, ...]]]) -> None:
        """Send one TASKS message: task id -> (function, args)."""
        payloads = [pack_res_spec_apply_message(func, args, {}, {}) for func, args in tasks.values()]
        self.send(identity, TaskBatch(list(tasks), payloads).encode(Kind.TASKS))

    def wait_answers(self, ids: Sequence[int], timeout: float = 20.0) -> None:
        """Receive until every id in ``ids`` has a result or a failure."""
        deadline = time.monotonic() + timeout
        while any(tid not in self.results and tid not in self.failures for tid in ids):
            remaining = deadline - time.monotonic()
            got = self.receive(remaining) if remaining > 0 else None
            if got is None:
                missing = [t for t in ids if t not in self.results and t not in self.failures]
                raise AssertionError(f"no answer for tasks {missing} within {timeout} s")
            self._record(got[1], got[2])

    def run(self, identity: bytes, func: Callable[..., Any], *args: Any, tid: int, timeout: float = 20.0) -> Any:
        """Run one task and return its value (asserting it succeeded)."""
        self.submit(identity, {tid: (func, args)})
        self.wait_answers([tid], timeout)
        assert tid not in self.failures, self.failures[tid]
        status, value = self.results[tid]
        assert status == TaskStatus.OK, value.formatted if hasattr(value, "formatted") else value
        return value


class PoolProcess:
    """A real worker pool started as a subprocess; remembers every process it starts."""

    def __init__(self, args: Sequence[str], workdir: pathlib.Path) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS_DIR), env.get("PYTHONPATH")) if p)
        self.stderr_path = workdir / "pool.stderr"
        self.stdout_path = workdir / "pool.stdout"
        with open(self.stderr_path, "wb") as err, open(self.stdout_path, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", POOL_MODULE, *args], stdout=out, stderr=err, env=env, cwd=workdir
            )
        self.seen: dict[int, psutil.Process] = {}

    @property
    def pid(self) -> int:
        return self.process.pid

    def snapshot(self) -> list[psutil.Process]:
        """Record (and return) the pool's descendants as of now."""
        try:
            children = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        for child in children:
            self.seen.setdefault(child.pid, child)
        return children

    def worker_pids(self) -> set[int]:
        """Pids of the worker processes (children of the forkserver)."""
        pids = set()
        for child in self.snapshot():
            try:
                if child.ppid() != self.pid:
                    pids.add(child.pid)
            except psutil.NoSuchProcess:
                pass
        return pids

    def wait(self, timeout: float = 20.0) -> int:
        """Wait for the pool to exit; return its exit code."""
        return self.process.wait(timeout)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def survivors(self) -> list[psutil.Process]:
        alive = []
        for proc in self.seen.values():
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
            except psutil.NoSuchProcess:
                pass
        return alive

    def cleanup(self) -> list[str]:
        """Stop the pool if needed; return descriptions of processes that outlived it (after killing them)."""
        if self.process.poll() is None:
            self.snapshot()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        deadline = time.monotonic() + 10
        while self.survivors() and time.monotonic() < deadline:
            time.sleep(0.02)
        leaked = []
        for proc in self.survivors():
            try:
                leaked.append(f"pid {proc.pid}: {' '.join(proc.cmdline())}")
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        return leaked


@pytest.fixture
def cert_dir(tmp_path: pathlib.Path) -> str:
    return security.create_keys(str(tmp_path / "keys"))


@pytest.fixture
def interchange(cert_dir: str) -> Iterator[FakeInterchange]:
    fake = FakeInterchange(cert_dir)
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def plain_interchange() -> Iterator[FakeInterchange]:
    fake = FakeInterchange(None)
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def start_pool(tmp_path: pathlib.Path) -> Iterator[Callable[..., PoolProcess]]:
    """Start pools: ``start_pool(fake, *extra_args, cert_dir=...)``; all are stopped and leak-checked."""
    pools: list[PoolProcess] = []

    def start(
        fake: FakeInterchange | None, *extra: str, cert_dir: str | None = None, addresses: str = "127.0.0.1"
    ) -> PoolProcess:
        workdir = tmp_path / f"pool{len(pools)}"
        workdir.mkdir()
        args = ["--addresses", addresses, "--port", str(fake.port if fake else 1), "--logdir", str(workdir / "logs")]
        args += ["--block-id", "7", "--pool-id", f"pool{len(pools)}"]
        if cert_dir is not None:
            args += ["--cert-dir", cert_dir]
        pool = PoolProcess([*args, *extra], workdir)
        pools.append(pool)
        return pool

    yield start
    leaks = [leak for pool in pools for leak in pool.cleanup()]
    assert not leaks, f"processes outlived their worker pool: {leaks}"


@pytest.fixture
def htex(tmp_path: pathlib.Path) -> Iterator[Any]:
    """A :class:`~tests.htex.test_local_links.LocalHtex`: ``htex.start(workers=2, **options)`` loads a kernel
    on an htex executor with one LocalProvider pool. Afterwards no process it started, and neither its
    socket directory nor its shared-memory arena (with the workers' result files), may remain."""
    from .test_local_links import harness_in  # not at import: that module imports this one

    yield from harness_in(tmp_path)


@pytest.fixture
def sock_dir() -> Iterator[str]:
    """A new owner-only directory for Unix sockets (short enough for AF_UNIX), removed afterwards."""
    path = make_socket_dir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
