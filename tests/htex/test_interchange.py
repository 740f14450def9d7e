"""The real interchange and executor client, driven by simulated worker pools.

The simulated pools speak the wire protocol from the test process, so each
scenario (refused versions, junk frames, lost pools, placement by resources)
is scripted exactly; the real worker pool has its own tests.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from array import array
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

import flowlib
from flowlib import python_app
from flowlib.benchmark.simulated_managers import SimulatedPool, registration
from flowlib.config import Config
from flowlib.dataflow.dflow import DataFlowKernel
from flowlib.executors.errors import BadStateException, InvalidResourceSpecification
from flowlib.executors.high_throughput import protocol as p
from flowlib.executors.high_throughput.errors import ManagerLost
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.providers import LocalProvider
from flowlib.serialize import deserialize, serialize, unpack_res_spec_apply_message

pytestmark = pytest.mark.timeout(60)


class RunningPool:
    """A simulated pool that runs its tasks in the test process, on a thread."""

    def __init__(self, executor: HighThroughputExecutor, **reg: Any) -> None:
        self.context: zmq.Context[Any] = zmq.Context()
        self.pool = SimulatedPool(
            self.context, "127.0.0.1", executor._client.worker_port, executor.cert_dir, registration(**reg)
        )
        answer = self.pool.register()
        assert p.parse_header(answer[0])[1] is p.Kind.REGISTERED
        self.ran: list[tuple[int, dict[str, Any]]] = []
        self.silent = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        sock = self.pool.socket
        last_beat = time.monotonic()
        while not self.stop.is_set():
            if not self.silent.is_set() and time.monotonic() - last_beat > 0.2:
                sock.send_multipart(p.encode_empty(p.Kind.HEARTBEAT))
                last_beat = time.monotonic()
            if not sock.poll(20):
                continue
            frames = sock.recv_multipart()
            _, kind = p.parse_header(frames[0])
            if kind is not p.Kind.TASKS or self.silent.is_set():
                continue
            batch = p.TaskBatch.decode(frames)
            statuses, payloads = b"", []
            for index, (tid, payload) in enumerate(zip(batch.ids, batch.payloads, strict=True)):
                func, args, kwargs, _ = unpack_res_spec_apply_message(payload)
                self.ran.append((tid, batch.specs.get(index, {})))
                try:
                    payloads.append(serialize(func(*args, **kwargs)))
                    statuses += bytes([p.TaskStatus.OK])
                except Exception as e:
                    from flowlib.app.errors import RemoteExceptionWrapper

                    payloads.append(serialize(RemoteExceptionWrapper(type(e), e, e.__traceback__)))
                    statuses += bytes([p.TaskStatus.EXCEPTION])
            sock.send_multipart(p.ResultBatch(batch.ids, statuses, payloads).encode())

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.pool.close()
        self.context.term()


@pytest.fixture
def bare_htex(tmp_path: Any) -> Iterator[tuple[DataFlowKernel, HighThroughputExecutor]]:
    """A kernel whose executor starts no blocks: the tests bring their own pools."""
    executor = HighThroughputExecutor(
        label="htex",
        provider=LocalProvider(init_blocks=0, min_blocks=0, max_blocks=0),
        heartbeat_period=0.5,
        heartbeat_threshold=2,
    )
    dfk = flowlib.load(Config(executors=[executor], run_dir=str(tmp_path), strategy="none"))
    try:
        yield dfk, executor
    finally:
        dfk.cleanup()


@python_app
def square(x):
    return x * x


@python_app
def fail(msg):
    raise KeyError(msg)


def test_tasks_flow_through_an_encrypted_interchange(bare_htex):
    dfk, executor = bare_htex
    pool = RunningPool(executor, worker_count=2)
    try:
        futures = [square(i) for i in range(200)]
        assert [f.result(timeout=20) for f in futures] == [i * i for i in range(200)]
        with pytest.raises(KeyError, match="remote"):
            fail("remote").result(timeout=20)
    finally:
        pool.close()
    assert oct(os.stat(executor.cert_dir).st_mode)[-3:] == "700"
    assert all(
        oct(os.stat(os.path.join(executor.cert_dir, f)).st_mode)[-3:] == "600" for f in os.listdir(executor.cert_dir)
    )


def test_other_protocol_version_is_refused_naming_both(bare_htex):
    _, executor = bare_htex
    context: zmq.Context[Any] = zmq.Context()
    try:
        pool = SimulatedPool(context, "127.0.0.1", executor._client.worker_port, executor.cert_dir, registration(1))
        future_header = p._HEADER.pack(p.MAGIC, p.PROTOCOL_VERSION + 98, p.Kind.REGISTER)
        pool.send([future_header, *pool.reg.encode()[1:]])
        assert pool.socket.poll(5000)
        frames = pool.socket.recv_multipart()
        assert p.parse_header(frames[0])[1] is p.Kind.REJECT
        reason = frames[1].decode()
        assert (
            "VersionMismatch" in reason and str(p.PROTOCOL_VERSION + 98) in reason and str(p.PROTOCOL_VERSION) in reason
        )
        pool.close()
    finally:
        context.term()


def test_other_patch_releases_are_accepted(bare_htex):
    _, executor = bare_htex
    pool = RunningPool(executor, worker_count=1, flowlib_version="0.1.99", python_version="3.11.0")
    try:
        assert square(3).result(timeout=20) == 9
    finally:
        pool.close()


def test_unknown_resource_key_names_the_key(bare_htex):
    dfk, _ = bare_htex
    with pytest.raises(InvalidResourceSpecification, match="bogus"):
        square(2, parsl_resource_specification={"bogus": 1}).result(timeout=10)


def test_tasks_are_placed_where_they_fit(bare_htex):
    dfk, executor = bare_htex

    @python_app
    def where(tag, parsl_resource_specification=None):
        return tag

    small = RunningPool(executor, worker_count=1, cores=1.0, memory_mb=1000.0, block_id="small")
    big = RunningPool(executor, worker_count=4, cores=8.0, memory_mb=64000.0, accelerators=["0"], block_id="big")
    try:
        needs_big = [where(i, parsl_resource_specification={"cores": 4}) for i in range(5)]
        needs_gpu = [where(10 + i, parsl_resource_specification={"gpus": 1}) for i in range(3)]
        needs_memory = where(20, parsl_resource_specification={"memory": 32000})
        for f in [*needs_big, *needs_gpu, needs_memory]:
            f.result(timeout=20)
        ran_small = {tid for tid, _ in small.ran}
        assert not ran_small, "a task was placed on a pool without room for it"
        impossible = where(99, parsl_resource_specification={"cores": 64})
        with pytest.raises(InvalidResourceSpecification, match="cores=64"):
            impossible.result(timeout=10)
    finally:
        small.close()
        big.close()


def test_lower_priority_value_runs_first(bare_htex):
    dfk, executor = bare_htex

    @python_app
    def tag(x, parsl_resource_specification=None):
        return x

    futures = [tag(i, parsl_resource_specification={"priority": 10 - i}) for i in range(10)]
    # let every task reach the interchange before a pool exists
    deadline = time.monotonic() + 30
    while executor._client.command("outstanding") < 10:
        assert time.monotonic() < deadline, "the tasks never all reached the interchange"
        time.sleep(0.01)
    pool = RunningPool(executor, worker_count=1)
    try:
        [f.result(timeout=20) for f in futures]
        order = [tid for tid, _ in pool.ran]
        assert order == sorted(order, reverse=True), order
    finally:
        pool.close()


def test_silent_pool_is_lost_and_task_retried_elsewhere(tmp_path):
    executor = HighThroughputExecutor(
        label="htex", provider=LocalProvider(init_blocks=0, max_blocks=0), heartbeat_period=0.3, heartbeat_threshold=1.5
    )
    dfk = flowlib.load(Config(executors=[executor], run_dir=str(tmp_path), strategy="none", retries=1))
    try:
        doomed = RunningPool(executor, worker_count=1, block_id="doomed")
        doomed.silent.set()  # takes tasks, never answers, sends no heartbeats
        fut = square(7)
        deadline = time.monotonic() + 30
        while not doomed_got_task(executor):
            assert time.monotonic() < deadline, "the silent pool never got the task"
            time.sleep(0.01)
        healthy = RunningPool(executor, worker_count=1, block_id="healthy")
        try:
            assert fut.result(timeout=20) == 49
            assert fut.task_record.fail_count == 1
            assert "ManagerLost" in fut.task_record.fail_history[0] and "doomed" in fut.task_record.fail_history[0]
        finally:
            healthy.close()
            doomed.close()
    finally:
        dfk.cleanup()


def doomed_got_task(executor: HighThroughputExecutor) -> bool:
    return any(m["outstanding"] for m in executor.connected_managers)


def test_lost_pool_without_retries_fails_with_manager_lost(tmp_path):
    executor = HighThroughputExecutor(
        label="htex", provider=LocalProvider(init_blocks=0, max_blocks=0), heartbeat_period=0.3, heartbeat_threshold=1.0
    )
    dfk = flowlib.load(Config(executors=[executor], run_dir=str(tmp_path), strategy="none"))
    try:
        doomed = RunningPool(executor, worker_count=1, block_id="7")
        doomed.silent.set()
        with pytest.raises(ManagerLost, match="block 7"):
            square(2).result(timeout=20)
        doomed.close()
    finally:
        dfk.cleanup()


def test_killed_interchange_fails_outstanding_tasks_promptly(bare_htex):
    dfk, executor = bare_htex
    futures = [square(i) for i in range(5)]
    pid = executor._client.process.pid
    os.kill(pid, signal.SIGKILL)
    for f in futures:
        with pytest.raises(BadStateException, match=f"interchange .* \\(pid {pid}\\) exited"):
            f.result(timeout=10)
    with pytest.raises(BadStateException, match="interchange"):
        square(1).result(timeout=10)


def test_junk_from_peers_never_stops_the_interchange(bare_htex):
    """Thousands of random, truncated, unknown and unauthenticated frames while tasks run."""
    dfk, executor = bare_htex
    pool = RunningPool(executor, worker_count=2)
    rng = random.Random(1234)
    context: zmq.Context[Any] = zmq.Context()
    port = executor._client.worker_port
    stop = threading.Event()

    def fuzz() -> None:
        keyed = SimulatedPool(context, "127.0.0.1", port, executor.cert_dir, registration(1)).socket
        unkeyed = context.socket(zmq.DEALER)
        unkeyed.setsockopt(zmq.LINGER, 0)
        unkeyed.connect(f"tcp://127.0.0.1:{port}")
        valid = registration(1).encode()
        sent = 0
        while not stop.is_set() and sent < 5000:
            choice = rng.randrange(7)
            if choice == 0:
                frames = [rng.randbytes(rng.randrange(0, 64)) for _ in range(rng.randrange(1, 5))]
            elif choice == 1:
                frames = [p.header(p.Kind.RESULTS), rng.randbytes(13), b"\x09", b"x"]
            elif choice == 2:
                frames = [p._HEADER.pack(p.MAGIC, p.PROTOCOL_VERSION, 99)]
            elif choice == 3:
                frames = [valid[0], valid[1][: rng.randrange(len(valid[1]))]]
            elif choice == 4:
                frames = [p.header(p.Kind.FAILURES), b"{not json"]
            elif choice == 5:
                frames = [p.header(p.Kind.TASKS), b"", b""]
            else:
                frames = [p.header(p.Kind.RESULTS), p.pack_ids([1, 2]), b"\x00"]
            try:
                (unkeyed if sent % 10 == 0 else keyed).send_multipart(frames, zmq.NOBLOCK)
            except zmq.Again:  # the unauthenticated socket never gets a peer
                pass
            sent += 1
        keyed.close(0)
        unkeyed.close(0)

    fuzzer = threading.Thread(target=fuzz)
    fuzzer.start()
    try:
        futures = [square(i) for i in range(500)]
        assert [f.result(timeout=30) for f in futures] == [i * i for i in range(500)]
    finally:
        stop.set()
        fuzzer.join(10)
        context.term()
    assert executor._client.process.poll() is None
    assert square(12).result(timeout=10) == 144
    pool.close()
    with open(os.path.join(executor.logdir, "interchange.log")) as f:
        log = f.read()
    assert "dropped a malformed message" in log


def test_results_are_not_deserialized_by_the_interchange():
    """Payload frames pass through the protocol untouched (opaque bytes)."""
    payload = serialize({"x": 1})
    batch = p.ResultBatch([5], bytes([p.TaskStatus.OK]), [payload])
    decoded = p.ResultBatch.decode(batch.encode())
    assert decoded.payloads[0] is payload and deserialize(decoded.payloads[0]) == {"x": 1}


def test_refused_pools_surface_as_version_mismatch(bare_htex):
    """When every block fails after its pools were refused, tasks fail with VersionMismatch."""
    from flowlib.executors.high_throughput.errors import VersionMismatch
    from flowlib.jobs.states import JobState, JobStatus

    dfk, executor = bare_htex
    fut = square(3)
    context: zmq.Context[Any] = zmq.Context()
    try:
        pool = SimulatedPool(
            context, "127.0.0.1", executor._client.worker_port, executor.cert_dir, registration(1, protocol_version=99)
        )
        pool.send(pool.reg.encode())
        assert pool.socket.poll(5000)
        assert p.parse_header(pool.socket.recv_multipart()[0])[1] is p.Kind.REJECT
        deadline = time.monotonic() + 20
        while not executor._rejections:
            assert time.monotonic() < deadline, "the executor never recorded the refusal"
            time.sleep(0.01)
        pool.close()
    finally:
        context.term()
    # the block whose pool was refused exits; the provider reports it failed
    executor.block_error_handler(executor, {"0": JobStatus(JobState.FAILED, message="pool exited 2")})
    with pytest.raises(VersionMismatch, match=f"protocol version 99.*interchange {p.PROTOCOL_VERSION}"):
        fut.result(timeout=5)


def test_result_batches_carry_worker_times_and_pools() -> None:
    times = array("d", [1.0, 2.0, 3.0, 4.0]).tobytes()
    batch = p.ResultBatch([5, 6], bytes([0, 1]), [b"a", b"b"], times, [["pool-a", 1], ["pool-b", 1]])
    decoded = p.ResultBatch.decode(batch.encode())
    assert decoded.task_times() == [1.0, 2.0, 3.0, 4.0]
    assert decoded.pools == [["pool-a", 1], ["pool-b", 1]]
    plain = p.ResultBatch.decode(p.ResultBatch([5], b"\x00", [b"a"]).encode())
    assert plain.task_times() == [] and plain.pools == []
    frames = batch.encode()
    with pytest.raises(p.ProtocolError, match="bytes of times for 2 tasks"):
        p.ResultBatch.decode([*frames[:3], times[:8], *frames[4:]])
    with pytest.raises(p.ProtocolError, match="cover 1 tasks, not 2"):
        p.ResultBatch.decode([*frames[:4], p.pack_json([["pool-a", 1]]), *frames[5:]])


def test_interchange_keeps_nothing_per_task_once_tasks_are_done(bare_htex):
    dfk, executor = bare_htex

    @python_app
    def tag(x, parsl_resource_specification=None):
        return x

    plain = [square(i) for i in range(300)]
    ranked = [tag(i, parsl_resource_specification={"priority": i % 3 - 1}) for i in range(30)]
    deadline = time.monotonic() + 30
    while executor._client.command("outstanding") < 330:
        assert time.monotonic() < deadline, "the tasks never all reached the interchange"
        time.sleep(0.01)
    queued = executor._client.command("sizes")
    assert queued["queued"] == 330 and queued["heap_entries"] == 20 and queued["fifo_entries"] == 310
    pool = RunningPool(executor, worker_count=4)
    try:
        assert [f.result(timeout=20) for f in plain] == [i * i for i in range(300)]
        assert [f.result(timeout=20) for f in ranked] == list(range(30))
    finally:
        pool.close()
    sizes = executor._client.command("sizes")
    sizes.pop("pools")  # the closed pool is forgotten after the heartbeat threshold
    assert sizes == {
        "queued": 0,
        "fifo_entries": 0,
        "heap_entries": 0,
        "held_by_pools": 0,
        "early_messages": 0,
        "results_pending": 0,
    }, sizes
