"""The worker pool, driven for real: a pool subprocess against a fake interchange.

Each test starts ``python -m flowlib.executors.high_throughput.worker_pool``,
plays the interchange's side of the protocol from the test, and checks what the
pool does; the ``start_pool`` fixture then makes sure that no process the pool
started outlives it. Pure functions (sizing, affinity, option parsing) are
tested directly at the end.
"""

from __future__ import annotations

import math
import os
import pathlib
import signal
import time

import psutil
import pytest
from proc_state import process_gone

from flowlib.app.errors import RemoteExceptionWrapper
from flowlib.executors.high_throughput import protocol
from flowlib.executors.high_throughput.affinity import (
    AffinityPolicy,
    accelerator_environment,
    parse_cpu_affinity,
    worker_cpus,
)
from flowlib.executors.high_throughput.pool_options import (
    EXIT_BAD_OPTIONS,
    EXIT_INTERCHANGE_LOST,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_UNREACHABLE,
    NodeResources,
    PoolSizeError,
    detect_node,
    parse_args,
    size_pool,
)
from flowlib.executors.high_throughput.protocol import Kind, TaskStatus
from flowlib.serialize.errors import SerializationError

from . import pool_tasks as tasks
from .conftest import wait_for

pytestmark = pytest.mark.timeout(60)

CPUS = sorted(os.sched_getaffinity(0))


def node_workers(cores_per_worker: float = 1.0) -> int:
    return math.floor(detect_node().cores / cores_per_worker + 1e-9)


# --------------------------------------------------------------------------- registration and tasks


@pytest.mark.parametrize("encrypted", [True, False], ids=["curve", "plain"])
def test_registers_and_runs_tasks(encrypted, start_pool, cert_dir, interchange, plain_interchange):
    fake = interchange if encrypted else plain_interchange
    pool = start_pool(
        fake, "--max-workers-per-node", "2", "--prefetch-capacity", "3", cert_dir=cert_dir if encrypted else None
    )
    identity, reg = fake.register()
    assert identity == b"pool0"
    assert reg.protocol_version == protocol.PROTOCOL_VERSION
    assert (reg.block_id, reg.pool_id, reg.pid) == ("7", "pool0", pool.pid)
    assert reg.worker_count == min(2, node_workers())
    assert reg.prefetch_capacity == 3
    assert reg.cores == detect_node().cores
    assert reg.memory_mb > 0 and reg.accelerators == []
    fake.submit(identity, {i: (tasks.add, (i, 1000)) for i in range(1, 51)})
    fake.wait_answers(range(1, 51))
    pool.snapshot()
    assert fake.results == {i: (TaskStatus.OK, i + 1000) for i in range(1, 51)}
    assert not fake.failures


def test_exception_keeps_type_and_traceback(start_pool, cert_dir, interchange):
    start_pool(interchange, cert_dir=cert_dir)
    identity, _ = interchange.register()
    interchange.submit(identity, {5: (tasks.fail, (42,))})
    interchange.wait_answers([5])
    status, wrapper = interchange.results[5]
    assert status == TaskStatus.EXCEPTION
    assert isinstance(wrapper, RemoteExceptionWrapper)
    assert wrapper.e_type is ValueError
    exc = wrapper.get_exception()
    assert isinstance(exc, ValueError) and str(exc) == "bad value 42"
    assert "_inner_failure" in wrapper.formatted and "pool_tasks.py" in wrapper.formatted
    names = []
    tb = exc.__traceback__
    while tb is not None:
        names.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert names == ["fail", "_inner_failure"], "the worker's own frames are left out"


@pytest.mark.parametrize("size", [100, 70_000, 3_000_000], ids=["small", "over-one-read", "large"])
def test_payloads_of_every_size_round_trip(start_pool, cert_dir, interchange, size):
    start_pool(interchange, cert_dir=cert_dir)
    identity, _ = interchange.register()
    blobs = {i: os.urandom(size + i) for i in range(1, 4)}
    interchange.submit(identity, {i: (tasks.echo, (blob,)) for i, blob in blobs.items()})
    interchange.wait_answers(list(blobs))
    assert {i: value for i, (_, value) in interchange.results.items()} == blobs


def test_unserializable_result_is_a_serialization_error(start_pool, cert_dir, interchange):
    start_pool(interchange, cert_dir=cert_dir)
    identity, _ = interchange.register()
    interchange.submit(identity, {9: (tasks.unpicklable_result, ())})
    interchange.wait_answers([9])
    status, wrapper = interchange.results[9]
    assert status == TaskStatus.EXCEPTION and wrapper.e_type is SerializationError
    assert "_thread.lock" in str(wrapper.e_value) and "result" in str(wrapper.e_value)
    # the pool goes on working
    assert interchange.run(identity, tasks.add, 1, 2, tid=10) == 3


def test_malformed_messages_are_dropped(start_pool, cert_dir, interchange):
    pool = start_pool(interchange, cert_dir=cert_dir)
    identity, _ = interchange.register()
    interchange.send(identity, [b"garbage"])
    interchange.send(identity, [protocol.header(Kind.TASKS), b"\x01\x02\x03"])
    interchange.send(identity, [protocol.header(Kind.SUBMIT)])
    assert interchange.run(identity, tasks.add, 2, 3, tid=1) == 5
    assert pool.process.poll() is None


# --------------------------------------------------------------------------- sizing and placement


def test_worker_environment(start_pool, cert_dir, interchange):
    start_pool(interchange, "--max-workers-per-node", "2", cert_dir=cert_dir)
    identity, reg = interchange.register()
    count = reg.worker_count
    interchange.submit(identity, {i: (tasks.environment, (0.3,)) for i in range(count)})
    interchange.wait_answers(range(count))
    envs = [interchange.results[i][1] for i in range(count)]
    assert sorted(e["PARSL_WORKER_RANK"] for e in envs) == [str(r) for r in range(count)]
    for env in envs:
        for prefix in ("PARSL", "FLOWLIB"):
            assert env[f"{prefix}_WORKER_COUNT"] == str(count)
            assert env[f"{prefix}_WORKER_POOL_ID"] == "pool0"
            assert env[f"{prefix}_WORKER_BLOCK_ID"] == "7"
        assert env["FLOWLIB_WORKER_RANK"] == env["PARSL_WORKER_RANK"]
        assert env["CUDA_VISIBLE_DEVICES"] is None


def test_accelerators_one_per_worker(start_pool, cert_dir, interchange):
    start_pool(interchange, "--available-accelerators", "gpu-a,gpu-b", "--cores-per-worker", "0.1", cert_dir=cert_dir)
    identity, reg = interchange.register()
    assert reg.worker_count == 2, "two accelerators limit the pool to two workers"
    assert reg.accelerators == ["gpu-a", "gpu-b"]
    interchange.submit(identity, {0: (tasks.environment, (0.3,)), 1: (tasks.environment, (0.3,))})
    interchange.wait_answers([0, 1])
    seen = {v["PARSL_WORKER_RANK"]: v for _, v in interchange.results.values()}
    for rank, accelerator in (("0", "gpu-a"), ("1", "gpu-b")):
        for name in ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "ZE_AFFINITY_MASK"):
            assert seen[rank][name] == accelerator


@pytest.mark.skipif(len(CPUS) < 2, reason="needs two CPUs")
def test_cpu_affinity_block_and_working_dir(start_pool, cert_dir, interchange, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    start_pool(
        interchange,
        "--max-workers-per-node", "2", "--cpu-affinity", "block", "--working-dir", str(workdir),
        cert_dir=cert_dir,
    )  # fmt: skip
    identity, reg = interchange.register()
    assert reg.worker_count == 2
    interchange.submit(identity, {0: (tasks.placement, (0.3,)), 1: (tasks.placement, (0.3,))})
    interchange.wait_answers([0, 1])
    placements = sorted(v for _, v in interchange.results.values())
    assert placements == [("0", [CPUS[0]], str(workdir)), ("1", [CPUS[1]], str(workdir))]


def test_no_worker_fits_exits_4(start_pool, cert_dir, interchange):
    pool = start_pool(interchange, "--mem-per-worker", "1000000", cert_dir=cert_dir)
    assert pool.wait() == EXIT_BAD_OPTIONS
    assert "no worker fits on this node" in pool.stderr and "--mem-per-worker" in pool.stderr


def test_bad_option_exits_4(start_pool, interchange):
    pool = start_pool(interchange, "--cpu-affinity", "sideways")
    assert pool.wait() == EXIT_BAD_OPTIONS
    assert "unknown cpu affinity 'sideways'" in pool.stderr


# --------------------------------------------------------------------------- faults and cancellation


def test_killed_worker_fails_its_task_and_is_replaced(start_pool, cert_dir, interchange):
    pool = start_pool(interchange, "--max-workers-per-node", "1", cert_dir=cert_dir)
    identity, _ = interchange.register()
    before = interchange.run(identity, tasks.pid, tid=1)
    interchange.submit(identity, {2: (tasks.kill_myself, ())})
    interchange.wait_answers([2])
    failure = interchange.failures[2]
    assert failure["error"] == "WorkerLost"
    assert "task 2" in failure["message"] and f"pid {before}" in failure["message"]
    assert "signal 9 (SIGKILL)" in failure["message"]
    after = interchange.run(identity, tasks.pid, tid=3)
    assert after != before
    assert pool.worker_pids() == {after}


def test_cancel_queued_and_running_tasks(start_pool, cert_dir, interchange, tmp_path):
    pool = start_pool(interchange, "--max-workers-per-node", "1", cert_dir=cert_dir)
    identity, _ = interchange.register()
    marker = tmp_path / "started"
    interchange.submit(identity, {1: (tasks.mark_and_sleep, (str(marker), 60)), 2: (tasks.add, (1, 1))})
    running_pid = int(wait_for(lambda: marker.exists() and marker.read_text(), message="task 1 never started"))
    pool.snapshot()
    interchange.send(identity, protocol.encode_ids(Kind.CANCEL, [2]))
    interchange.wait_answers([2])
    assert interchange.results[2] == (TaskStatus.CANCELLED, None)
    assert psutil.pid_exists(running_pid)
    interchange.send(identity, protocol.encode_ids(Kind.CANCEL, [1, 999]))
    interchange.wait_answers([1])
    assert interchange.results[1] == (TaskStatus.CANCELLED, None)
    assert not interchange.failures, "a cancelled task is not a lost worker"
    wait_for(lambda: process_gone(running_pid))
    replacement = interchange.run(identity, tasks.pid, tid=3)
    assert replacement != running_pid


def test_reject_exits_2_with_reason(start_pool, cert_dir, interchange):
    pool = start_pool(interchange, cert_dir=cert_dir)
    identity, _ = interchange.expect(Kind.REGISTER, 20)
    pool.snapshot()
    interchange.send(identity, protocol.encode_reject("protocol version 1 is not 2"))
    assert pool.wait() == EXIT_REJECTED
    assert "refused this pool: protocol version 1 is not 2" in pool.stderr


def test_wrong_keys_exit_3_within_probe_timeout(start_pool, interchange, tmp_path):
    from flowlib.executors.high_throughput.security import create_keys

    other_keys = create_keys(str(tmp_path / "other-keys"))
    started = time.monotonic()
    pool = start_pool(interchange, "--address-probe-timeout", "1.5", cert_dir=other_keys)
    assert pool.wait() == EXIT_UNREACHABLE
    assert time.monotonic() - started < 1.5 + 10
    url = f"tcp://127.0.0.1:{interchange.port}"
    assert f"could not register with the interchange at {url} within 1.5 s" in pool.stderr
    assert "mismatched keys" in pool.stderr
    assert interchange.receive(0) is None


def test_unreachable_address_is_reported(start_pool):
    pool = start_pool(None, "--address-probe-timeout", "1", addresses="127.0.0.2")
    assert pool.wait() == EXIT_UNREACHABLE
    assert "tcp://127.0.0.2:1: connection refused" in pool.stderr


def test_second_address_is_used_when_the_first_is_dead(start_pool, cert_dir, interchange):
    start_pool(interchange, cert_dir=cert_dir, addresses="127.0.0.2,127.0.0.1")
    identity, _ = interchange.register()
    assert interchange.run(identity, tasks.add, 20, 22, tid=1) == 42


def test_silent_interchange_makes_the_pool_exit_5(start_pool, cert_dir, interchange):
    pool = start_pool(interchange, "--heartbeat-period", "0.2", "--heartbeat-threshold", "1.5", cert_dir=cert_dir)
    interchange.register()
    interchange.expect(Kind.HEARTBEAT, 5)
    pool.snapshot()
    assert pool.wait(20) == EXIT_INTERCHANGE_LOST
    assert "no message from the interchange" in pool.stderr


def test_heartbeats_keep_the_pool_alive(start_pool, cert_dir, interchange):
    pool = start_pool(interchange, "--heartbeat-period", "0.1", "--heartbeat-threshold", "1.5", cert_dir=cert_dir)
    identity, _ = interchange.register()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        interchange.expect(Kind.HEARTBEAT, 2)
        interchange.send(identity, protocol.encode_empty(Kind.HEARTBEAT))
    assert pool.process.poll() is None
    assert interchange.run(identity, tasks.add, 1, 1, tid=1) == 2


def test_drain_finishes_running_task_then_exits_0(start_pool, cert_dir, interchange, tmp_path):
    pool = start_pool(interchange, "--max-workers-per-node", "1", cert_dir=cert_dir)
    identity, _ = interchange.register()
    marker = tmp_path / "started"
    interchange.submit(identity, {1: (tasks.mark_and_sleep, (str(marker), 1.0))})
    wait_for(marker.exists, message="task 1 never started")
    pool.snapshot()
    interchange.send(identity, protocol.encode_empty(Kind.DRAIN))
    interchange.expect(Kind.DRAIN)
    interchange.wait_answers([1])
    assert interchange.results[1][0] == TaskStatus.OK
    assert pool.wait() == EXIT_OK
    assert pool.stderr == ""


def test_drain_period(start_pool, cert_dir, interchange):
    pool = start_pool(interchange, "--drain-period", "0.5", cert_dir=cert_dir)
    identity, _ = interchange.register()
    interchange.expect(Kind.DRAIN)
    assert pool.wait() == EXIT_OK


def test_shutdown_kills_workers_and_exits_0(start_pool, cert_dir, interchange, tmp_path):
    pool = start_pool(interchange, cert_dir=cert_dir)
    identity, _ = interchange.register()
    marker = tmp_path / "started"
    interchange.submit(identity, {1: (tasks.mark_and_sleep, (str(marker), 60))})
    wait_for(marker.exists)
    pool.snapshot()
    interchange.send(identity, protocol.encode_empty(Kind.SHUTDOWN))
    assert pool.wait() == EXIT_OK
    wait_for(lambda: not pool.survivors(), message=f"left behind: {pool.survivors()}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_kills_pool_and_workers(start_pool, cert_dir, interchange, tmp_path, signum):
    pool = start_pool(interchange, cert_dir=cert_dir)
    identity, reg = interchange.register()
    marker = tmp_path / "started"
    interchange.submit(identity, {1: (tasks.mark_and_sleep, (str(marker), 60))})
    wait_for(marker.exists)
    assert len(pool.worker_pids()) == reg.worker_count
    pool.process.send_signal(signum)
    assert pool.wait() == 128 + signum
    wait_for(lambda: not pool.survivors(), message=f"left behind: {pool.survivors()}")


def test_sigkilled_manager_takes_its_workers_along(start_pool, cert_dir, interchange, tmp_path):
    pool = start_pool(interchange, cert_dir=cert_dir)
    identity, _ = interchange.register()
    marker = tmp_path / "started"
    interchange.submit(identity, {1: (tasks.mark_and_sleep, (str(marker), 60))})
    wait_for(marker.exists)
    assert pool.worker_pids()
    pool.process.kill()
    pool.wait()
    wait_for(lambda: not pool.survivors(), message=f"orphans: {pool.survivors()}")


def test_logs(start_pool, cert_dir, interchange):
    pool = start_pool(interchange, "--max-workers-per-node", "1", "--debug", cert_dir=cert_dir)
    identity, _ = interchange.register()
    interchange.run(identity, tasks.add, 1, 2, tid=77)
    interchange.send(identity, protocol.encode_empty(Kind.SHUTDOWN))
    assert pool.wait() == EXIT_OK
    logs = pool.stderr_path.parent / "logs" / "block-7" / "pool0"
    manager = (logs / "manager.log").read_text()
    assert "registered with the interchange at tcp://127.0.0.1:" in manager
    assert "exiting with code 0" in manager
    worker = (logs / "worker_0.log").read_text()
    assert "worker 0 pid" in worker and "task 77 started" in worker and "task 77 finished" in worker


# --------------------------------------------------------------------------- pure functions


def test_affinity_policies():
    cpus = [0, 1, 2, 3]
    block, alternating = AffinityPolicy("block"), AffinityPolicy("alternating")
    assert [worker_cpus(block, r, 4, cpus, 1) for r in range(4)] == [(0,), (1,), (2,), (3,)]
    assert [worker_cpus(block, r, 2, cpus, 2) for r in range(2)] == [(0, 1), (2, 3)]
    assert [worker_cpus(block, r, 4, [0, 1], 0.5) for r in range(4)] == [(0,), (0,), (1,), (1,)]
    assert [worker_cpus(AffinityPolicy("block-reverse"), r, 2, cpus, 2) for r in range(2)] == [(2, 3), (0, 1)]
    assert [worker_cpus(alternating, r, 2, cpus, 2) for r in range(2)] == [(0, 2), (1, 3)]
    assert worker_cpus(AffinityPolicy("none"), 0, 2, cpus, 1) is None
    listed = parse_cpu_affinity("list:0,1:2-3")
    assert listed.lists == ((0, 1), (2, 3)) and listed.max_workers == 2
    assert worker_cpus(listed, 1, 2, cpus, 1) == (2, 3)
    with pytest.raises(ValueError, match="not a CPU number"):
        parse_cpu_affinity("list:0,x")
    assert accelerator_environment("3")["CUDA_VISIBLE_DEVICES"] == "3"


def test_sizing_takes_the_smallest_limit(tmp_path):
    node = NodeResources(cpus=(0, 1, 2, 3), cores=4.0, memory_bytes=8 * 1024**3)

    def size(*args: str) -> int:
        return size_pool(parse_args(["--addresses", "x", "--port", "1", "--logdir", str(tmp_path), *args]), node)

    assert size() == 4
    assert size("--cores-per-worker", "0.5") == 8
    assert size("--cores-per-worker", "0.5", "--max-workers-per-node", "3") == 3
    assert size("--mem-per-worker", "3") == 2
    assert size("--available-accelerators", "a,b,c", "--cores-per-worker", "0.1") == 3
    assert size("--cpu-affinity", "list:0:1") == 2
    with pytest.raises(PoolSizeError, match="--cores-per-worker 5"):
        size("--cores-per-worker", "5")
    with pytest.raises(PoolSizeError, match="outside this pool's CPUs"):
        size("--cpu-affinity", "list:0:9")


def test_option_defaults(monkeypatch):
    monkeypatch.setenv("PARSL_WORKER_BLOCK_ID", "12")
    monkeypatch.delenv("FLOWLIB_WORKER_BLOCK_ID", raising=False)
    options = parse_args(["--addresses", "a,b", "--port", "5"])
    assert options.addresses == ("a", "b") and options.block_id == "12"
    assert len(options.pool_id) == 12 and options.max_workers_per_node == math.inf
    assert options.logdir == os.path.abspath(os.path.join("flowlib_worker_logs", "block-12", options.pool_id))
    assert (options.heartbeat_period, options.heartbeat_threshold, options.poll_period_ms) == (30, 120, 10)
    assert pathlib.Path(options.logdir).is_absolute()
    rooted = parse_args(["--addresses", "a", "--port", "5", "--logdir", "/logs", "--pool-id", "p1", "--block-id", "3"])
    assert rooted.logdir == "/logs/block-3/p1", "pools sharing a --logdir keep apart"


def test_pipe_reader_reassembles_fragments():
    import select
    import socket

    from flowlib.executors.high_throughput.worker import PipeReader, write_message

    a, b = socket.socketpair()
    try:
        reader = PipeReader(b.fileno())
        messages = [b"x" * 10, b"", b"y" * 70_000, b"z" * 5]
        stream = b"".join(len(m).to_bytes(4, "big") + m for m in messages)
        got = []
        for i in range(0, len(stream), 3_001):  # fragments that cut headers and bodies
            a.sendall(stream[i : i + 3_001])
            while select.select([b], [], [], 0)[0]:
                got += [bytes(m) for m in reader.read()]
        assert got == messages
        write_message(a.fileno(), b"head", memoryview(b"body"))
        assert [bytes(m) for m in reader.read()] == [b"headbody"]
        a.close()
        with pytest.raises(EOFError):
            reader.read()
    finally:
        a.close()
        b.close()


def test_a_missing_working_dir_is_made_and_a_file_in_its_place_is_refused(tmp_path, capsys):
    wanted = tmp_path / "not" / "yet"
    options = parse_args(["--addresses", "a", "--port", "5", "--working-dir", str(wanted)])
    assert wanted.is_dir() and options.working_dir == str(wanted)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SystemExit):
        parse_args(["--addresses", "a", "--port", "5", "--working-dir", str(blocker / "sub")])
    assert "cannot be made one" in capsys.readouterr().err
