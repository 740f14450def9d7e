"""The executor's Unix-socket links, end to end with real processes.

With ``unix_sockets=True`` (the default) the executor's client reaches the
interchange on ``<unix_dir>/client.sock`` and the pools of a LocalProvider
register on ``<unix_dir>/pools.sock``. Each test runs a real interchange, real
worker pools and real workers, and checks what a user sees: results, errors,
logs and files; the ``local_htex`` fixture then checks that no interchange,
pool or worker process outlives the kernel. Every wait polls with a deadline.
"""

from __future__ import annotations

import glob
import os
import random
import signal
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import psutil
import pytest
from conftest import REPO_ROOT

import flowlib
from flowlib import python_app
from flowlib.config import Config
from flowlib.dataflow.dflow import DataFlowKernel
from flowlib.executors.errors import BadStateException
from flowlib.executors.high_throughput import protocol as p
from flowlib.executors.high_throughput.errors import ManagerLost
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.executors.high_throughput.links import MAX_FRAMES
from flowlib.executors.high_throughput.pool_options import EXIT_OK
from flowlib.providers import LocalProvider

from . import pool_tasks as tasks
from .conftest import FakeInterchange, PoolProcess, make_registration, wait_for

POOL_MODULE = "flowlib.executors.high_throughput.worker_pool"
# Workers import this module to run its apps: the repository and tests/ go on their path.
WORKER_INIT = f"export PYTHONPATH={REPO_ROOT}:{REPO_ROOT}/tests${{PYTHONPATH:+:$PYTHONPATH}}"
MiB = 1 << 20


# ------------------------------------------------------------------------------------------ apps


@python_app
def square(x: int) -> int:
    return x * x


@python_app
def square_slowly(x: int) -> int:
    import time

    time.sleep(0.01)  # so that a batch of tasks keeps the pool busy for a while
    return x * x


@python_app
def reverse(data: bytes) -> bytes:
    return data[::-1]


@python_app
def pool_pid_then_wait(path: str, release: str, limit: float = 60.0) -> int:
    """Write the pid of this worker's pool to ``path``, then wait for ``release`` (at most ``limit`` s)."""
    import os
    import time

    import psutil

    pool = psutil.Process(os.getppid()).ppid()  # a worker's parent is the forkserver, whose parent is the pool
    with open(path + ".tmp", "w") as f:
        f.write(str(pool))
    os.rename(path + ".tmp", path)
    deadline = time.monotonic() + limit
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.01)
    return pool


# ----------------------------------------------------------------------------------- harness


class LocalHtex:
    """One kernel on an htex executor with a LocalProvider block, and every process it was seen to run."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self.dfk: DataFlowKernel | None = None
        self.executor: HighThroughputExecutor | None = None
        self.seen: dict[int, psutil.Process] = {}

    def start(
        self, workers: int = 2, heartbeat_period: float = 2.0, heartbeat_threshold: float = 10.0, **options: Any
    ) -> HighThroughputExecutor:
        self.executor = HighThroughputExecutor(
            label="htex",
            max_workers_per_node=workers,
            heartbeat_period=heartbeat_period,
            heartbeat_threshold=heartbeat_threshold,
            provider=LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1, worker_init=WORKER_INIT),
            **options,
        )
        self.dfk = flowlib.load(Config(executors=[self.executor], run_dir=self.run_dir, strategy="none"))
        self.record()
        return self.executor

    @property
    def interchange(self) -> Any:
        assert self.executor is not None
        return self.executor._client.process

    def pools(self) -> list[psutil.Process]:
        """The running pool managers of this executor (their --logdir is under its log directory)."""
        assert self.executor is not None
        logdir = str(self.executor.logdir)
        found = []
        for proc in psutil.process_iter(["cmdline", "status"]):
            cmdline = proc.info["cmdline"] or []
            if POOL_MODULE in cmdline and logdir in cmdline and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc)
        return found

    def record(self) -> list[psutil.Process]:
        """Remember the interchange, the pools and their descendants as of now; return the pools."""
        procs = [psutil.Process(self.interchange.pid)] if self.interchange.poll() is None else []
        pools = self.pools()
        for pool in pools:
            procs.append(pool)
            try:
                procs.extend(pool.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
        for proc in procs:
            self.seen.setdefault(proc.pid, proc)
        return pools

    def manager_logs(self) -> list[str]:
        assert self.executor is not None
        return sorted(glob.glob(os.path.join(str(self.executor.logdir), "block-*", "*", "manager.log")))

    def registration(self, timeout: float = 30.0) -> str:
        """The pool's log line saying where it registered (waiting for it); records the processes."""

        def line() -> str | None:
            for path in self.manager_logs():
                with open(path) as f:
                    for text in f:
                        if "registered with the interchange at" in text:
                            return text.strip()
            return None

        found = wait_for(line, timeout, "no pool logged its registration")
        assert self.executor is not None
        wait_for(lambda: self.executor.connected_workers > 0, timeout, "the executor never saw the pool register")
        wait_for(self.record, timeout, "the registered pool's process was not found")
        return str(found)

    def interchange_log(self) -> str:
        assert self.executor is not None
        with open(os.path.join(str(self.executor.logdir), "interchange.log")) as f:
            return f.read()

    def survivors(self) -> list[str]:
        return running(self.seen.values())

    def cleanup(self) -> float:
        """Clean the kernel up; return how long it took."""
        started = time.monotonic()
        if self.dfk is not None and not self.dfk.cleanup_called:
            self.dfk.cleanup()
        flowlib.clear()
        return time.monotonic() - started


def harness_in(tmp_path: Any) -> Iterator[LocalHtex]:
    """Yield a :class:`LocalHtex`; afterwards no process, socket directory or arena it made may remain."""
    harness = LocalHtex(str(tmp_path / "run"))
    try:
        yield harness
    finally:
        harness.cleanup()
        try:
            until(lambda: not harness.survivors(), 15, lambda: f"processes outlived the kernel: {harness.survivors()}")
        finally:
            for proc in harness.seen.values():  # whatever happened, nothing the test started may linger
                try:
                    if proc.is_running():
                        proc.kill()
                except psutil.NoSuchProcess:
                    pass
    executor = harness.executor
    if executor is not None:
        assert executor._client.process.poll() is not None, "the interchange is still running"
        for kind, path in (("socket directory", executor.unix_dir), ("arena", executor.arena_dir)):
            assert path is None or not os.path.exists(path), f"the {kind} {path} was left behind"


@pytest.fixture
def local_htex(tmp_path: Any) -> Iterator[LocalHtex]:
    yield from harness_in(tmp_path)


def until(check: Callable[[], Any], timeout: float, describe: Callable[[], str]) -> None:
    """Like ``wait_for``, with a failure message made when it fails (so it shows the state then)."""
    try:
        wait_for(check, timeout)
    except AssertionError:
        raise AssertionError(f"after {timeout} s: {describe()}") from None


def running(procs: Iterable[psutil.Process]) -> list[str]:
    """Descriptions of the processes among ``procs`` that still run (zombies do not count)."""
    alive = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"pid {proc.pid}: {' '.join(proc.cmdline())[:160]}")
        except psutil.NoSuchProcess:
            pass
    return alive


def file_contents(path: Any, timeout: float = 30.0) -> str:
    """The contents of ``path`` once it exists (apps write it with a rename, so it is whole)."""
    wait_for(lambda: os.path.exists(path), timeout, f"{path} never appeared")
    with open(path) as f:
        return f.read()


def first_difference(got: Any, expected: bytes) -> str | None:
    """None when ``got`` is ``expected``; else a short description (no 8 MiB diffs in the report)."""
    if not isinstance(got, bytes):
        return f"a {type(got).__name__}, not bytes"
    if got == expected:
        return None
    if len(got) != len(expected):
        return f"{len(got)} bytes instead of {len(expected)}"
    index = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
    return f"differs from byte {index} on"


# --------------------------------------------------------------------------- wire format helpers


def encode(frames: Sequence[bytes]) -> bytes:
    """One message in the Unix links' wire format: frame count, each frame's length, the frames."""
    return struct.pack(f"=I{len(frames)}Q", len(frames), *map(len, frames)) + b"".join(frames)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError(f"EOF after {len(data)} of {size} bytes")
        data += chunk
    return data


def read_message(sock: socket.socket) -> list[bytes]:
    """One whole message from a blocking socket (its timeout bounds each read)."""
    (count,) = struct.unpack("=I", recv_exactly(sock, 4))
    lengths = struct.unpack(f"={count}Q", recv_exactly(sock, 8 * count))
    return [recv_exactly(sock, length) for length in lengths]


def wait_closed(sock: socket.socket, timeout: float = 10.0) -> None:
    """Read (and drop) whatever comes until the other end closes; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"the interchange did not close the connection within {timeout} s"
        sock.settimeout(remaining)
        try:
            if not sock.recv(1 << 16):
                return
        except ConnectionResetError:
            return
        except TimeoutError:
            continue


def registration_frames(pool_id: str, version: int = p.PROTOCOL_VERSION) -> list[bytes]:
    """A REGISTER for a pool of no workers: registered, it is never given a task."""
    reg = make_registration(
        protocol_version=version,
        hostname="fuzz",
        block_id="fuzz",
        pool_id=pool_id,
        worker_count=0,
        cores=1.0,
        memory_mb=1.0,
    )
    return [bytes(frame) for frame in reg.encode()]


# ----------------------------------------------------------------------------------- the tests


@pytest.mark.timeout(60)
def test_default_executor_uses_owner_only_unix_sockets(local_htex):
    executor = local_htex.start()
    unix_dir = executor.unix_dir
    assert unix_dir is not None
    client_sock, pools_sock = os.path.join(unix_dir, "client.sock"), os.path.join(unix_dir, "pools.sock")
    assert executor._client.pool_socket == pools_sock
    assert executor._client.client_port is None  # the client did not connect over TCP
    info = os.stat(unix_dir)
    assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700
    assert info.st_uid == os.getuid()
    for path in (client_sock, pools_sock):
        info = os.stat(path)
        assert stat.S_ISSOCK(info.st_mode), path
        assert stat.S_IMODE(info.st_mode) == 0o600, f"{path}: {oct(stat.S_IMODE(info.st_mode))}"
        assert info.st_uid == os.getuid()

    assert [f.result(timeout=30) for f in [square(i) for i in range(20)]] == [i * i for i in range(20)]
    assert f"registered with the interchange at unix://{pools_sock}" in local_htex.registration()
    (pool,) = local_htex.pools()
    cmdline = pool.cmdline()
    assert cmdline[cmdline.index("--unix-socket") + 1] == pools_sock

    assert local_htex.cleanup() < 20
    assert not os.path.exists(unix_dir)


@pytest.mark.timeout(60)
def test_unix_sockets_off_uses_tcp(local_htex):
    executor = local_htex.start(unix_sockets=False)
    assert executor.unix_dir is None
    assert executor._client.pool_socket is None
    assert executor._client.client_port is not None
    assert [f.result(timeout=30) for f in [square(i) for i in range(20)]] == [i * i for i in range(20)]
    assert "registered with the interchange at tcp://127.0.0.1:" in local_htex.registration()
    (pool,) = local_htex.pools()
    assert "--unix-socket" not in pool.cmdline()
    assert "--cert-dir" in pool.cmdline()  # CurveZMQ, as before


@pytest.mark.timeout(60)
def test_8_mib_arguments_and_results_round_trip_in_parallel(local_htex):
    local_htex.start()
    payloads = [random.Random(seed).randbytes(8 * MiB) for seed in range(6)]
    futures = [reverse(payload) for payload in payloads]
    for index, (future, payload) in enumerate(zip(futures, payloads, strict=True)):
        wrong = first_difference(future.result(timeout=40), payload[::-1])
        assert wrong is None, f"result {index}: {wrong}"
    assert "at unix://" in local_htex.registration()


@pytest.mark.timeout(60)
def test_killed_pool_fails_its_task_at_once_not_after_the_heartbeat(local_htex, tmp_path):
    local_htex.start(workers=1, heartbeat_period=30, heartbeat_threshold=120)
    assert "at unix://" in local_htex.registration()
    pid_file = tmp_path / "pool_pid"
    future = pool_pid_then_wait(str(pid_file), str(tmp_path / "release"))
    pool_pid = int(file_contents(pid_file))
    (pool,) = local_htex.record()
    assert pool.pid == pool_pid  # the task runs on the pool we kill
    doomed = [pool, *pool.children(recursive=True)]
    assert len(doomed) >= 3  # the pool, its forkserver, a worker
    started = time.monotonic()
    os.kill(pool_pid, signal.SIGKILL)
    with pytest.raises(ManagerLost, match="was lost: its connection closed"):
        future.result(timeout=15)
    elapsed = time.monotonic() - started
    assert elapsed < 15, f"noticed after {elapsed:.1f} s"
    wait_for(lambda: local_htex.executor.connected_workers == 0, 10, "the lost pool is still counted")
    until(lambda: not running(doomed), 15, lambda: f"the pool's processes live on: {running(doomed)}")


@pytest.mark.timeout(60)
def test_killed_interchange_fails_outstanding_tasks_promptly(local_htex, tmp_path):
    executor = local_htex.start(heartbeat_period=30, heartbeat_threshold=120)
    release = str(tmp_path / "release")
    futures = [pool_pid_then_wait(str(tmp_path / f"pid{i}"), release) for i in range(4)]
    file_contents(tmp_path / "pid0")
    file_contents(tmp_path / "pid1")  # two tasks run, two wait
    local_htex.record()
    pid = local_htex.interchange.pid
    started = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    for future in futures:
        with pytest.raises(BadStateException, match=rf"interchange of executor 'htex' \(pid {pid}\) exited"):
            future.result(timeout=10)
    assert time.monotonic() - started < 10
    with pytest.raises(BadStateException, match="interchange"):
        square(1).result(timeout=10)
    # the pools notice the closed link themselves, long before their heartbeat threshold of 120 s
    wait_for(lambda: not local_htex.pools(), 15, "the pools outlived the interchange")
    assert local_htex.cleanup() < 20
    assert not os.path.exists(str(executor.unix_dir))


@pytest.mark.timeout(60)
def test_second_client_connection_is_refused(local_htex):
    executor = local_htex.start()
    assert square(3).result(timeout=30) == 9
    client_sock = os.path.join(executor.unix_dir, "client.sock")
    for _ in range(3):
        intruder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            intruder.settimeout(10)
            intruder.connect(client_sock)
            try:  # were it read, this would stop the interchange
                intruder.sendall(encode(p.encode_empty(p.Kind.SHUTDOWN)))
            except OSError:  # already closed by the interchange
                pass
            wait_closed(intruder)
        finally:
            intruder.close()
    assert [f.result(timeout=30) for f in [square(i) for i in range(30)]] == [i * i for i in range(30)]
    assert executor._client.process.poll() is None
    assert len(executor.connected_managers) == 1  # commands still answered on the first connection
    assert local_htex.interchange_log().count("refused a second client connection") == 3


class PoolSocketFuzzer:
    """Connections to pools.sock that send junk of every kind, each until the interchange closes it."""

    def __init__(self, path: str, seed: int = 1234) -> None:
        self.path = path
        self.rng = random.Random(seed)
        self.rounds = 0
        self.registered = 0
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name="test-pool-socket-fuzzer")

    def _run(self) -> None:
        try:
            while not self.stop.is_set() or self.rounds < 3:
                for case in self.cases():
                    self.send(case)
                self.send_registered_then_garbage(framed=False)
                self.send_registered_then_garbage(framed=True)
                self.rounds += 1
        except BaseException as e:
            self.errors.append(e)

    def cases(self) -> list[bytes]:
        rng = self.rng
        register = registration_frames("fuzz-unanswered")
        return [
            rng.randbytes(rng.randrange(1, 300)),  # random bytes
            rng.randbytes(3),  # not even a frame count
            encode([b"FL\x01\x03", b"x" * 100])[:-50],  # a truncated frame
            encode([b"a" * 10, b"b" * 200_000])[:100_000],  # truncated inside a message larger than one read
            struct.pack("=I", 2) + struct.pack("=Q", 5),  # truncated inside the lengths
            struct.pack("=I", 0) + rng.randbytes(20),  # a frame count of 0
            struct.pack("=I", MAX_FRAMES + 1) + bytes(64),  # too many frames
            struct.pack("=I", MAX_FRAMES) + bytes(64),  # the most frames, lengths never sent
            struct.pack("=IQ", 1, 1 << 62),  # a huge length
            struct.pack("=I3Q", 3, 1 << 29, 1 << 29, 1 << 29),  # lengths summing above the limit
            struct.pack("=IQ", 1, 64 * MiB) + bytes(1000),  # a large message that never comes
            b"".join(  # valid framing, garbage protocol
                encode(frames)
                for frames in (
                    [b"XX\x01\x03"],
                    [b""],
                    [b"FL\x01\x63", b"unknown kind"],
                    [b"FL\x09\x03", b"other version"],
                    [p.header(p.Kind.RESULTS), p.pack_ids([1, 2]), b"\x00"],
                    [p.header(p.Kind.HEARTBEAT)],  # from a pool that never registered
                    [p.header(p.Kind.SUBMIT), b"", b""],  # a pool may not submit
                    [p.header(p.Kind.REGISTER), b"{not json"],
                    [p.header(p.Kind.REGISTER), b"{}"],
                    registration_frames("fuzz-old", version=p.PROTOCOL_VERSION + 1),  # answered REJECT
                    [rng.randbytes(4), rng.randbytes(rng.randrange(0, 100))],
                )
            ),
            encode(register) + rng.randbytes(50),  # a REGISTER followed by garbage in the same read
        ]

    def connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(self.path)
        return sock

    def send(self, data: bytes) -> None:
        """Send ``data``, close our side, and wait for the interchange to close its side."""
        sock = self.connect()
        try:
            try:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
            except (BrokenPipeError, ConnectionResetError):  # it closed a corrupt stream first
                pass
            wait_closed(sock)
        finally:
            sock.close()

    def send_registered_then_garbage(self, framed: bool) -> None:
        """Register a pool of no workers, then send junk; the interchange must forget the pool."""
        sock = self.connect()
        try:
            self.registered += 1
            sock.sendall(encode(registration_frames(f"fuzz-{self.registered}")))
            answer = read_message(sock)
            assert p.parse_header(answer[0])[1] is p.Kind.REGISTERED, answer
            if framed:  # dropped one by one; the pool stays until its link closes
                junk = [[p.header(p.Kind.RESULTS), b"12345"], [p.header(p.Kind.FAILURES), b"[1]"], [b"FL\x01\x63"]]
                sock.sendall(b"".join(encode(frames) for frames in junk))
                sock.shutdown(socket.SHUT_WR)
            else:
                try:
                    sock.sendall(struct.pack("=I", 0) + self.rng.randbytes(100))
                except (BrokenPipeError, ConnectionResetError):
                    pass
            wait_closed(sock)
        finally:
            sock.close()


@pytest.mark.timeout(60)
def test_junk_on_the_pool_socket_never_stops_the_interchange(local_htex):
    executor = local_htex.start()
    assert square(2).result(timeout=30) == 4
    fuzzer = PoolSocketFuzzer(executor._client.pool_socket)
    fuzzer.thread.start()
    try:
        futures = [square_slowly(i) for i in range(200)]
        assert [f.result(timeout=40) for f in futures] == [i * i for i in range(200)]
    finally:
        fuzzer.stop.set()
        fuzzer.thread.join(30)
    assert not fuzzer.thread.is_alive()
    assert not fuzzer.errors, fuzzer.errors
    assert fuzzer.rounds >= 3
    assert executor._client.process.poll() is None
    assert square(12).result(timeout=10) == 144
    # the junk pools were forgotten when their connections closed; the real one remains
    until(lambda: len(executor.connected_managers) == 1, 10, lambda: f"managers: {executor.connected_managers}")
    (manager,) = executor.connected_managers
    assert not manager["pool_id"].startswith("fuzz")
    log = local_htex.interchange_log()
    assert "dropped a malformed message" in log
    assert "lost pool fuzz-" in log and "its connection closed" in log


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["missing", "stale"])
def test_pool_falls_back_to_tcp_when_the_unix_socket_does_not_answer(
    where, tmp_path, start_pool, cert_dir, interchange: FakeInterchange
):
    if where == "missing":
        path = "/nonexistent/dir/pools.sock"
    else:  # a socket file nobody listens on any more
        path = str(tmp_path / "stale.sock")
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(path)
        stale.close()
    pool: PoolProcess = start_pool(interchange, "--unix-socket", path, "--max-workers-per-node", "1", cert_dir=cert_dir)
    identity, registration = interchange.register()
    assert registration.pid == pool.pid
    assert interchange.run(identity, tasks.add, 1, 2, tid=1) == 3
    interchange.send(identity, p.encode_empty(p.Kind.SHUTDOWN))
    assert pool.wait() == EXIT_OK
    log = (pool.stderr_path.parent / "logs" / "block-7" / "pool0" / "manager.log").read_text()
    assert f"no interchange on the Unix socket {path}" in log
    assert f"registered with the interchange at tcp://127.0.0.1:{interchange.port}" in log
