"""Large payloads in parts: frames of at most PART_BYTES, never joined by the sender (parts.py, protocol 3).

* units: the serializer's chunks become parts that are views of the chunks
  (a large ``bytes`` argument is not copied), small chunks are joined in runs,
  TASKS/SUBMIT/RESULTS carry parts and give them back, ``write_message`` hands a
  worker the parts as one message;
* end to end over encrypted TCP (``unix_sockets=False``): a 64 MiB argument and
  a 64 MiB result arrive intact, and both travelled in parts;
* malformed parts (one missing, counts that do not add up), at the interchange
  from the client and from a pool, at a real pool from the interchange, and at
  the client: the tasks fail with MalformedPayload naming the mismatch, the
  receiver keeps working, nothing hangs.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

import flowlib
from flowlib.benchmark.simulated_managers import SimulatedPool, registration
from flowlib.config import Config
from flowlib.executors.high_throughput import links
from flowlib.executors.high_throughput import protocol as p
from flowlib.executors.high_throughput.client import InterchangeClient
from flowlib.executors.high_throughput.errors import MalformedPayload
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.executors.high_throughput.parts import (
    PART_BYTES,
    Parts,
    flatten,
    from_chunks,
    group,
    joined,
    nbytes,
    split,
)
from flowlib.executors.high_throughput.worker import PipeReader, write_message
from flowlib.providers import LocalProvider
from flowlib.serialize import pack_res_spec_apply_message, serialize, unpack_res_spec_apply_message
from flowlib.serialize.facade import pack_res_spec_apply_chunks

from . import pool_tasks
from .conftest import FakeInterchange, PoolProcess, wait_for
from .test_local_links import LocalHtex

pytestmark = pytest.mark.timeout(60)

MiB = 1 << 20


def random_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def digest_and_reverse(data: bytes) -> tuple[int, str, bytes]:
    """What the end-to-end task returns: the argument's length and hash, and a result as large as the argument."""
    return len(data), hashlib.sha256(data).hexdigest(), data[::-1]


# ------------------------------------------------------------------------------ units


def test_large_chunks_become_views_and_small_ones_are_joined_in_runs() -> None:
    big = random_bytes(3 * PART_BYTES + 123, seed=1)
    small = [random_bytes(1000, seed=i) for i in range(5)]
    chunks = [b"R1\n", b"\x00\x00\x00\x10", *small, big, b"tail"]
    expected = b"".join(chunks)
    payload = from_chunks(list(chunks))
    assert isinstance(payload, Parts)
    assert joined(payload) == expected
    assert nbytes(payload) == len(expected)
    assert all(nbytes(part) <= PART_BYTES for part in payload)
    assert len(payload) == 1 + 4 + 1  # the small run, the big chunk in four views, the tail
    views = payload[1:5]
    assert all(isinstance(v, memoryview) and v.obj is big for v in views), "the large chunk was copied"
    assert payload[0] == b"".join(chunks[:7])


def test_from_chunks_consumes_the_list_and_keeps_small_payloads_in_one_frame() -> None:
    chunks = [b"a", b"bc", b"def"]
    assert from_chunks(chunks) == b"abcdef"
    assert chunks == []
    assert from_chunks([]) == b""
    only = random_bytes(PART_BYTES, seed=2)
    assert from_chunks([only]) is only  # exactly one part's worth: the chunk itself


def test_runs_of_small_chunks_stop_at_the_part_size() -> None:
    chunks = [random_bytes(60_000, seed=i) for i in range(200)]  # 12 MB of pickle-frame-sized chunks
    expected = b"".join(chunks)
    payload = from_chunks(list(chunks))
    assert joined(payload) == expected
    assert all(nbytes(part) <= PART_BYTES for part in payload)
    assert len(payload) == -(-len(expected) // (PART_BYTES // 60_000 * 60_000))


def test_split_gives_views_of_one_buffer() -> None:
    data = bytearray(random_bytes(2 * PART_BYTES + 1, seed=3))
    parts = split(memoryview(data))
    assert isinstance(parts, Parts) and len(parts) == 3
    assert all(part.obj is data for part in parts)
    assert joined(parts) == data
    small = b"x" * 10
    assert split(small) is small


def test_the_chunks_are_the_apply_message_and_a_large_bytes_argument_is_not_copied() -> None:
    data = random_bytes(2 * MiB, seed=4)
    chunks, size = pack_res_spec_apply_chunks(pool_tasks.add, (data,), {"y": 1}, {"priority": 2})
    assert b"".join(chunks) == pack_res_spec_apply_message(pool_tasks.add, (data,), {"y": 1}, {"priority": 2})
    assert size == sum(len(c) for c in chunks)
    assert any(chunk is data for chunk in chunks), "the argument was copied into the chunks"
    func, args, kwargs, spec = unpack_res_spec_apply_message(b"".join(chunks))
    assert func is pool_tasks.add and args == (data,) and kwargs == {"y": 1} and spec == {"priority": 2}


def test_batches_carry_parts_and_give_them_back() -> None:
    big = from_chunks([random_bytes(PART_BYTES + 10, seed=5)])
    assert isinstance(big, Parts)
    tasks = p.TaskBatch([1, 2, 3], [b"small", big, b""], {1: {"priority": 1}})
    frames = tasks.encode(p.Kind.SUBMIT)
    assert len(frames) == 4 + 1 + len(big) + 1
    decoded = p.TaskBatch.decode(frames)
    assert decoded.ids == [1, 2, 3] and decoded.specs == {1: {"priority": 1}}
    assert decoded.payloads[0] == b"small" and decoded.payloads[2] == b""
    assert isinstance(decoded.payloads[1], Parts) and joined(decoded.payloads[1]) == joined(big)

    results = p.ResultBatch([7, 8], bytes([0, 1]), [big, b"x"], b"", [["pool", 2]])
    decoded_results = p.ResultBatch.decode(results.encode())
    assert isinstance(decoded_results.payloads[0], Parts)
    assert joined(decoded_results.payloads[0]) == joined(big) and decoded_results.payloads[1] == b"x"
    assert decoded_results.pools == [["pool", 2]]

    plain = p.TaskBatch([1, 2], [b"a", b"b"]).encode(p.Kind.TASKS)
    assert plain[3:] == [b"P" + p.pack_parts([1, 1]), b"ab"], "a batch of small payloads travels packed"
    assert flatten([b"a", b"b"]) == ([b"a", b"b"], None)


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda f: f[:-1], "add up to .* frames, but .* payload frames arrived"),  # the last part missing
        (lambda f: [*f, b"extra"], "add up to .* frames, but .* payload frames arrived"),
        (lambda f: [*f[:3], f[3][:-4], *f[4:]], "parts frame of 8 bytes for 3 tasks"),
        (lambda f: [*f[:3], p.pack_parts([1, 0, 4]), *f[4:]], "payload 1 is said to have 0 parts"),
        (lambda f: [*f[:3], b"", *f[4:]], "3 ids but .* payloads"),
    ],
    ids=["part missing", "frame too many", "short parts frame", "zero parts", "parts frame lost"],
)
def test_malformed_parts_name_the_mismatch_and_the_tasks(damage: Callable[[list[Any]], list[Any]], match: str) -> None:
    big = from_chunks([random_bytes(2 * PART_BYTES + 1, seed=6)])
    frames = p.TaskBatch([4, 5, 6], [b"a", big, b"c"]).encode(p.Kind.TASKS)
    with pytest.raises(p.MalformedBatch, match=match) as info:
        p.TaskBatch.decode(damage(frames))
    assert info.value.ids == [4, 5, 6]
    assert isinstance(info.value, p.ProtocolError)


def test_a_result_batch_with_a_missing_part_names_its_tasks() -> None:
    big = from_chunks([random_bytes(2 * PART_BYTES + 1, seed=6)])
    frames = p.ResultBatch([4, 5], bytes(2), [big, b"c"]).encode()
    with pytest.raises(p.MalformedBatch, match="result batch: the parts counts add up to 4 frames, but 3") as info:
        p.ResultBatch.decode(frames[:-1])
    assert info.value.ids == [4, 5]


def test_group_refuses_counts_that_do_not_match() -> None:
    assert group([b"a", b"b", b"c"], [1, 2]) == [b"a", Parts([b"b", b"c"])]
    with pytest.raises(ValueError, match="add up to 2 frames, but 3"):
        group([b"a", b"b", b"c"], [1, 1])


def test_write_message_hands_a_worker_the_parts_as_one_message() -> None:
    import socket

    data = random_bytes(3 * PART_BYTES + 5, seed=7)
    parts = from_chunks([b"head", data])
    ours, theirs = socket.socketpair()
    try:
        received: list[Any] = []
        reader = threading.Thread(target=lambda: received.append(PipeReader(theirs.fileno()).receive()))
        reader.start()
        write_message(ours.fileno(), b"ID", parts)
        reader.join(30)
        assert received and bytes(received[0]) == b"ID" + b"head" + data
        # more pieces than one writev takes
        many = [bytes([i % 256]) * 10 for i in range(1500)]
        received.clear()
        reader = threading.Thread(target=lambda: received.append(PipeReader(theirs.fileno()).receive()))
        reader.start()
        write_message(ours.fileno(), b"", many)
        reader.join(30)
        assert received and bytes(received[0]) == b"".join(many)
    finally:
        ours.close()
        theirs.close()


def test_the_client_fails_the_tasks_of_a_malformed_result_batch(tmp_path: Path) -> None:
    failures: list[dict[str, dict[str, str]]] = []
    results: list[list[int]] = []
    client = InterchangeClient(
        "unit", {}, str(tmp_path), None,
        on_results=lambda ids, *_: results.append(ids),
        on_failures=failures.append,
        on_event=lambda event: None,
        on_lost=lambda reason: None,
    )  # fmt: skip
    try:
        big = from_chunks([random_bytes(PART_BYTES + 1, seed=8)])
        good = p.ResultBatch([1], b"\x00", [big]).encode()
        bad = p.ResultBatch([2, 3], b"\x00\x00", [big, b"x"]).encode()[:-2]

        class Link:
            def receive(self) -> list[list[Any]]:
                return [bad, good]

        client._receive(Link())  # type: ignore[arg-type]
        assert results == [[1]], "the good batch after the bad one was lost"
        assert len(failures) == 1 and set(failures[0]) == {"2", "3"}
        assert failures[0]["2"]["error"] == "MalformedPayload"
        assert "did not arrive whole" in failures[0]["2"]["message"] and "result batch" in failures[0]["2"]["message"]
    finally:
        os.close(client._wake_r)
        os.close(client._wake_w)


# ----------------------------------------------------------------- end to end over TCP


class SentFrames:
    """Records the frame sizes of every message the executor's client sends over ZeroMQ."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.messages: list[tuple[p.Kind, list[int]]] = []
        original = links.ZmqLink.send

        def send(link: links.ZmqLink, frames: Any) -> None:
            self.messages.append((p.parse_header(frames[0])[1], [nbytes(f) for f in frames]))
            original(link, frames)

        monkeypatch.setattr(links.ZmqLink, "send", send)

    def submits(self) -> list[list[int]]:
        return [sizes for kind, sizes in self.messages if kind is p.Kind.SUBMIT]


@pytest.mark.timeout(180)
def test_a_64_mib_argument_and_result_arrive_intact_in_parts_over_encrypted_tcp(
    htex: LocalHtex, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = SentFrames(monkeypatch)
    received: list[Any] = []
    original = HighThroughputExecutor._on_results

    def on_results(
        self: HighThroughputExecutor, ids: list[int], statuses: bytes, payloads: list[Any], batch: Any = None
    ) -> None:
        received.extend(payloads)
        original(self, ids, statuses, payloads, batch)

    monkeypatch.setattr(HighThroughputExecutor, "_on_results", on_results)
    executor = htex.start(workers=1, unix_sockets=False)
    assert executor.cert_dir is not None and executor.unix_dir is None and executor.arena_dir is None
    data = random_bytes(64 * MiB, seed=9)
    future = executor.submit(digest_and_reverse, {}, data)
    size, digest, reverse = future.result(timeout=150)
    assert size == len(data) and digest == hashlib.sha256(data).hexdigest()
    assert reverse == data[::-1]
    (submit,) = [sizes for sizes in sent.submits() if sum(sizes) > 64 * MiB]
    assert len(submit) >= 4 + 16 and max(submit) <= PART_BYTES, "the argument did not travel in parts"
    (result,) = [payload for payload in received if nbytes(payload) > 64 * MiB]
    assert isinstance(result, Parts) and len(result) >= 16
    assert all(nbytes(part) <= PART_BYTES for part in result), "the result did not travel in parts"
    # small tasks still travel in one frame each
    assert executor.submit(pool_tasks.add, {}, 2, 3).result(timeout=30) == 5


@pytest.mark.timeout(120)
def test_a_submit_with_a_missing_part_fails_its_task_and_the_interchange_carries_on(
    htex: LocalHtex, monkeypatch: pytest.MonkeyPatch
) -> None:
    executor = htex.start(workers=1, unix_sockets=False)
    assert executor.submit(pool_tasks.add, {}, 1, 1).result(timeout=60) == 2
    encode = p.TaskBatch.encode

    def lose_a_part(batch: p.TaskBatch, kind: p.Kind) -> list[Any]:
        frames = encode(batch, kind)
        return frames[:-1] if any(isinstance(x, Parts) for x in batch.payloads) else frames

    monkeypatch.setattr(p.TaskBatch, "encode", lose_a_part)
    future = executor.submit(digest_and_reverse, {}, random_bytes(3 * PART_BYTES, seed=10))
    with pytest.raises(MalformedPayload, match="did not arrive whole: task batch: the parts counts add up to"):
        future.result(timeout=30)
    monkeypatch.setattr(p.TaskBatch, "encode", encode)
    data = random_bytes(3 * PART_BYTES, seed=11)
    assert executor.submit(digest_and_reverse, {}, data).result(timeout=60)[1] == hashlib.sha256(data).hexdigest()
    assert executor.outstanding == 0


@pytest.fixture
def bare_htex(tmp_path: Path) -> Iterator[HighThroughputExecutor]:
    """An executor whose interchange serves pools the test simulates (no blocks)."""
    executor = HighThroughputExecutor(
        label="htex", provider=LocalProvider(init_blocks=0, min_blocks=0, max_blocks=0), heartbeat_period=1
    )
    dfk = flowlib.load(Config(executors=[executor], run_dir=str(tmp_path), strategy="none"))
    try:
        yield executor
    finally:
        dfk.cleanup()


def test_a_pool_result_with_a_missing_part_fails_the_task_and_frees_the_pool(bare_htex: HighThroughputExecutor) -> None:
    executor = bare_htex
    context: zmq.Context[Any] = zmq.Context()
    pool = SimulatedPool(context, "127.0.0.1", executor._client.worker_port, executor.cert_dir, registration(1))
    try:
        assert p.parse_header(pool.register()[0])[1] is p.Kind.REGISTERED
        first = executor.submit(pool_tasks.add, {}, 1, 2)
        second = executor.submit(pool_tasks.add, {}, 3, 4)
        big = split(random_bytes(2 * PART_BYTES, seed=12))
        answered = 0
        deadline = time.monotonic() + 30
        while (
            answered < 2 and time.monotonic() < deadline
        ):  # one worker: the second task comes once the first is answered
            if not pool.socket.poll(100):
                continue
            frames = pool.socket.recv_multipart()
            if p.parse_header(frames[0])[1] is not p.Kind.TASKS:
                continue
            batch = p.TaskBatch.decode(frames)
            for tid, payload in zip(batch.ids, batch.payloads, strict=True):
                func, args, kwargs, _ = unpack_res_spec_apply_message(payload)
                if answered == 0:
                    pool.send(p.ResultBatch([tid], b"\x00", [big]).encode()[:-1])  # a part lost
                else:
                    pool.send(p.ResultBatch([tid], b"\x00", [serialize(func(*args, **kwargs))]).encode())
                answered += 1
        assert answered == 2, "the interchange did not give the pool its second task"
        with pytest.raises(MalformedPayload, match="result batch: the parts counts add up to 2 frames, but 1"):
            first.result(timeout=20)
        assert second.result(timeout=20) == 7
        wait_for(
            lambda: [m["outstanding"] for m in executor.connected_managers] == [0], 10, "the pool's tasks were kept"
        )
    finally:
        pool.close()
        context.term()


def test_a_real_pool_fails_a_task_whose_part_is_missing_and_runs_the_next(
    interchange: FakeInterchange, cert_dir: str, start_pool: Callable[..., PoolProcess]
) -> None:
    start_pool(interchange, "--max-workers-per-node", "1", cert_dir=cert_dir)
    identity, _ = interchange.register()
    data = random_bytes(2 * PART_BYTES + 7, seed=13)

    def task_frames(tid: int) -> list[Any]:
        chunks, _ = pack_res_spec_apply_chunks(digest_and_reverse, (data,), {}, {})
        return p.TaskBatch([tid], [from_chunks(chunks)]).encode(p.Kind.TASKS)

    interchange.send(identity, task_frames(1)[:-1])
    interchange.wait_answers([1])
    assert interchange.failures[1]["error"] == "MalformedPayload"
    assert "task batch: the parts counts add up to" in interchange.failures[1]["message"]
    interchange.send(identity, task_frames(2))
    interchange.wait_answers([2], timeout=30)
    status, value = interchange.results[2]
    assert status == p.TaskStatus.OK and value[1] == hashlib.sha256(data).hexdigest() and value[2] == data[::-1]


def test_packed_batches_round_trip_across_several_frames() -> None:
    payloads = [bytes([i]) * 60_000 for i in range(40)] + [b""]
    frames = p.TaskBatch(list(range(41)), payloads).encode(p.Kind.TASKS)
    assert frames[3][:1] == b"P" and len(frames) - 4 == 3, "2.4 MB of small payloads fill three packed frames"
    assert [bytes(x) for x in p.TaskBatch.decode(frames).payloads] == payloads


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda f: [*f[:4], b"abcd"], "packed lengths add up to 3 bytes, not 4"),
        (lambda f: f[:4], "packed but has no payload frame"),
        (lambda f: [*f[:3], f[3][:-4], f[4]], "packed parts frame of 5 bytes for 2 tasks"),
        (lambda f: [*f[:4], b"ab", b"c"], "packed lengths do not fit its 2 payload frames"),
    ],
    ids=["bytes too many", "frame lost", "short lengths", "split wrongly"],
)
def test_malformed_packed_batches_name_the_mismatch_and_the_tasks(
    damage: Callable[[list[Any]], list[Any]], match: str
) -> None:
    frames = p.TaskBatch([1, 2], [b"a", b"bc"]).encode(p.Kind.TASKS)
    with pytest.raises(p.MalformedBatch, match=match) as info:
        p.TaskBatch.decode(damage(frames))
    assert info.value.ids == [1, 2]
