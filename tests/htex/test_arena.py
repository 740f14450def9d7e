"""The shared-memory arena for large arguments: its allocator, its reader's checks, and the executor using it.

The unit tests drive :mod:`flowlib.executors.high_throughput.arena` in this
process, in files under ``tmp_path`` or ``/dev/shm``. The executor tests run a
real interchange, one LocalProvider pool of two workers, and check what a user
relies on: every task sees exactly its own bytes, every slot comes back when
tasks are answered (by a result, a lost worker or a cancellation), a pool that
registered over TCP gets the bytes themselves, and no arena outlives its
executor, even one killed outright. Every wait polls with a deadline.
"""

from __future__ import annotations

import errno
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import REPO_ROOT
from proc_state import process_gone

import flowlib
from flowlib.config import Config
from flowlib.executors.high_throughput import arena as arena_module
from flowlib.executors.high_throughput.arena import (
    ARENA_SIZE,
    REFERENCE_HEADER,
    ArenaError,
    ArenaReader,
    ArenaWriter,
    FreeList,
    is_reference,
    make_arena_dir,
    remove_stale_arenas,
)
from flowlib.executors.high_throughput.client import LARGE_PAYLOAD, InterchangeClient
from flowlib.executors.high_throughput.errors import WorkerLost
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.providers import LocalProvider

from .conftest import wait_for
from .test_large_payloads import fingerprint, fingerprint_app, gated_fingerprint, markers_in, payload
from .test_local_links import WORKER_INIT, LocalHtex

pytestmark = pytest.mark.timeout(30)

MiB = 1 << 20


# ------------------------------------------------------------------------------ FreeList


def test_free_list_allocates_first_fit_and_merges_on_release() -> None:
    free = FreeList(1000)
    assert [free.allocate(100) for _ in range(3)] == [0, 100, 200]
    assert free.free_bytes == 700
    free.release(100, 100)
    assert free.allocate(150) == 300, "the 100-byte hole is too small; the next range is used"
    assert free.allocate(100) == 100, "a range that fits the hole reuses it"
    assert free.allocate(551) is None
    assert free.allocate(550) == 450
    assert free.allocate(1) is None
    for start, length in ((0, 100), (200, 100), (100, 100), (450, 550), (300, 150)):
        free.release(start, length)
    assert free.free_bytes == 1000
    assert free.allocate(1000) == 0, "released neighbours merged back into one range"


@pytest.mark.parametrize("seed", range(5))
def test_free_list_random_allocations_never_overlap_and_all_come_back(seed: int) -> None:
    rng = random.Random(seed)
    free = FreeList(1 << 16)
    held: list[tuple[int, int]] = []
    for _ in range(2000):
        if held and rng.random() < 0.45:
            free.release(*held.pop(rng.randrange(len(held))))
            continue
        length = rng.randint(1, 4096)
        start = free.allocate(length)
        if start is None:
            assert free.free_bytes < length or len(held) > 1, "a request that fits a fresh list was refused"
            continue
        assert 0 <= start and start + length <= 1 << 16
        for other, other_length in held:
            assert start + length <= other or other + other_length <= start, "two live ranges overlap"
        held.append((start, length))
    for start, length in held:
        free.release(start, length)
    assert free.free_bytes == 1 << 16
    assert free.allocate(1 << 16) == 0


def test_free_list_refuses_a_double_or_overlapping_release() -> None:
    free = FreeList(1000)
    start = free.allocate(100)
    assert start == 0
    free.release(0, 100)
    with pytest.raises(ValueError, match="overlaps"):
        free.release(0, 100)
    assert free.allocate(500) == 0
    with pytest.raises(ValueError, match="overlaps"):
        free.release(400, 200)
    with pytest.raises(ValueError, match="already free"):
        free.release(600, 100)


# ------------------------------------------------------------------- writer and reader


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[ArenaWriter]:
    arena = ArenaWriter(str(tmp_path), size=1 * MiB)
    yield arena
    arena.close()


def test_a_payload_round_trips_through_a_slot(writer: ArenaWriter) -> None:
    data = random.Random(1).randbytes(300_000)
    placed = writer.put(data)
    assert placed is not None
    reference, slot = placed
    assert is_reference(reference) and reference.startswith(REFERENCE_HEADER)
    assert len(reference) < 200, "a reference is small"
    info = os.stat(writer.path)
    assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_size == writer.size
    reader = ArenaReader()
    try:
        assert reader.load(reference, bytes) == data
        assert reader.load(memoryview(reference), bytes) == data, "a view of the reference reads the same"
    finally:
        reader.close()
    writer.free(slot)
    assert writer.free_bytes == writer.size
    writer.close()
    assert not os.path.exists(writer.path)
    assert writer.put(data) is None and not os.path.exists(writer.path), "a closed arena is not made again"


def test_only_payloads_up_to_half_the_arena_fit_and_a_full_arena_says_so(writer: ArenaWriter) -> None:
    assert writer.fits(writer.size // 2 - 8)
    assert not writer.fits(writer.size // 2)
    assert writer.put(bytes(writer.size // 2)) is None
    first = writer.put(bytes(400_000))
    second = writer.put(bytes(400_000))
    assert first is not None and second is not None
    assert writer.put(bytes(400_000)) is None, "no room left for a third"
    writer.free(first[1])
    third = writer.put(bytes(400_000))
    assert third is not None, "a freed slot is used again"
    assert third[1][0] == first[1][0]


def test_a_reused_slot_is_not_read_through_an_old_reference(writer: ArenaWriter) -> None:
    first = writer.put(b"a" * 100_000)
    assert first is not None
    old_reference, slot = first
    writer.free(slot)
    second = writer.put(b"b" * 100_000)
    assert second is not None and second[1][0] == slot[0], "the same slot was reused"
    reader = ArenaReader()
    try:
        with pytest.raises(ArenaError, match="replaced in the arena before it was read"):
            reader.load(old_reference, bytes)
        assert reader.load(second[0], bytes) == b"b" * 100_000
    finally:
        reader.close()


def test_a_slot_rewritten_while_it_is_read_fails_the_read(writer: ArenaWriter) -> None:
    placed = writer.put(b"a" * 100_000)
    assert placed is not None
    reference, slot = placed

    def read_while_the_writer_reuses_the_slot(view: memoryview) -> bytes:
        writer.free(slot)
        assert writer.put(b"b" * 100_000) is not None
        return bytes(view)

    reader = ArenaReader()
    try:
        with pytest.raises(ArenaError, match="replaced in the arena while it was read"):
            reader.load(reference, read_while_the_writer_reuses_the_slot)
    finally:
        reader.close()


def test_bad_references_raise_arena_error(writer: ArenaWriter, tmp_path: Path) -> None:
    placed = writer.put(b"x" * 1000)
    assert placed is not None
    reference = placed[0]
    reader = ArenaReader()
    try:
        with pytest.raises(ArenaError, match="malformed"):
            reader.load(REFERENCE_HEADER + b"short", bytes)
        with pytest.raises(ArenaError, match="malformed"):
            reader.load(b"A1\n" + reference[3:], bytes)
        header = len(REFERENCE_HEADER)
        outside = reference[:header] + (writer.size).to_bytes(8, sys.byteorder) + reference[header + 8 :]
        with pytest.raises(ArenaError, match="outside the arena"):
            reader.load(outside, bytes)
        missing = reference[: header + 24] + str(tmp_path / "gone").encode()
        with pytest.raises(ArenaError, match="cannot open the executor's arena .*gone"):
            reader.load(missing, bytes)
    finally:
        reader.close()
    assert isinstance(ArenaError("x"), arena_module.DeserializationError), "a task sees a DeserializationError"


def test_an_arena_that_cannot_be_reserved_is_off_and_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(arena_module.os, "posix_fallocate", no_space)
    arena = ArenaWriter(str(tmp_path), size=MiB)
    assert arena.put(b"x" * 100_000) is None
    assert arena.failed is not None and "No space left" in arena.failed
    assert not os.path.exists(arena.path)
    assert not arena.fits(10), "a failed arena takes nothing any more"


def test_the_client_falls_back_to_the_socket_window_when_the_arena_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = InterchangeClient("t", {"arena_dir": str(tmp_path)}, str(tmp_path), None, *([lambda *a: None] * 4))
    try:
        assert client.arena is not None
        data = bytes(LARGE_PAYLOAD)
        reference = client._claim_window(1, data)
        assert reference is not None and is_reference(reference)
        assert client._slots and not client._large
        monkeypatch.setattr(client.arena, "failed", "no room in /dev/shm")
        assert client._claim_window(2, data) is data, "sent through the socket instead"
        assert client._large == {2: len(data)}
        client._answered([1, 2])
        assert client._slots == {} and client._large == {} and client._inflight_bytes == 0
        assert client.arena.free_bytes == client.arena.size
    finally:
        if client.arena is not None:
            client.arena.close()
        for fd in (client._wake_r, client._wake_w):
            os.close(fd)


# ---------------------------------------------------------------------- arena directories


def test_arena_directories_are_owner_only_and_named_after_the_process(tmp_path: Path) -> None:
    directory = make_arena_dir(str(tmp_path))
    assert directory is not None
    assert os.path.basename(directory).startswith(f"flowlib-arena-{os.getpid()}-")
    info = os.stat(directory)
    assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()
    assert make_arena_dir(str(tmp_path / "missing")) is None


def test_the_default_root_is_dev_shm() -> None:
    directory = make_arena_dir()
    assert directory is not None, "this machine has a writable /dev/shm"
    try:
        assert os.path.dirname(directory) == "/dev/shm"
    finally:
        os.rmdir(directory)


def test_stale_arena_directories_of_dead_processes_are_removed(tmp_path: Path) -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    wait_for(lambda: not psutil.pid_exists(dead_pid), 10, "the finished process did not go away")
    dead = tmp_path / f"flowlib-arena-{dead_pid}-abc"
    live = tmp_path / f"flowlib-arena-{os.getpid()}-def"
    unrelated = tmp_path / f"flowlib-{dead_pid}-ghi"
    for directory in (dead, live, unrelated):
        directory.mkdir()
    (dead / "arena").write_bytes(b"x")
    assert remove_stale_arenas(str(tmp_path)) == [str(dead)]
    assert not dead.exists() and live.exists() and unrelated.exists()


# ----------------------------------------------------------------------- on the executor


def arena_idle(client: Any) -> bool:
    arena = client.arena
    return not client._slots and not client._outbox_large and arena.free_bytes == arena.size


@pytest.mark.timeout(120)
def test_large_arguments_travel_through_the_arena(htex: LocalHtex) -> None:
    executor = htex.start(workers=2)
    client = executor._client
    assert executor.arena_dir is not None and os.path.dirname(executor.arena_dir) == "/dev/shm"
    assert stat.S_IMODE(os.stat(executor.arena_dir).st_mode) == 0o700
    count = 80  # 80 MiB through a 32 MiB arena: slots are freed and reused as tasks are answered
    payloads = [payload(index) for index in range(count)]
    futures = [fingerprint_app(index, data) for index, data in enumerate(payloads)]
    for index, future in enumerate(futures):
        assert future.result(timeout=90) == (index, fingerprint(payloads[index])), f"task {index} saw other bytes"
    assert client.arena.failed is None
    assert client.arena._sequence == count, "every argument went through the arena"
    assert client._large == {} and client._inflight_bytes == 0, "none went through the socket"
    wait_for(lambda: arena_idle(client), 10, "slots were not all freed")
    assert os.stat(client.arena.path).st_size == ARENA_SIZE
    assert "at unix://" in htex.registration()


@pytest.mark.timeout(60)
def test_small_and_huge_arguments_do_not_use_the_arena(htex: LocalHtex) -> None:
    executor = htex.start(workers=2)
    client = executor._client
    small = b"s" * (LARGE_PAYLOAD // 2)
    huge = random.Random(7).randbytes(ARENA_SIZE // 2 + MiB)  # more than half the arena: through the socket
    assert fingerprint_app(0, small).result(timeout=30) == (0, fingerprint(small))
    assert fingerprint_app(1, huge).result(timeout=60) == (1, fingerprint(huge))
    assert client.arena._sequence == 0
    wait_for(lambda: client._inflight_bytes == 0, 10, "the huge payload never left the window")


@pytest.mark.timeout(60)
def test_shared_memory_off_makes_no_arena(htex: LocalHtex) -> None:
    executor = htex.start(workers=2, shared_memory=False)
    assert executor.arena_dir is None and executor._client.arena is None
    data = payload(3)
    assert fingerprint_app(3, data).result(timeout=30) == (3, fingerprint(data))


@pytest.mark.timeout(90)
def test_a_pool_on_tcp_gets_the_bytes_from_the_interchange(htex: LocalHtex) -> None:
    executor = HighThroughputExecutor(
        label="htex",
        max_workers_per_node=2,
        provider=LocalProvider(init_blocks=0, min_blocks=0, max_blocks=1, worker_init=WORKER_INIT),
    )
    htex.executor = executor
    htex.dfk = flowlib.load(Config(executors=[executor], run_dir=htex.run_dir, strategy="none"))
    client = executor._client
    client.pool_socket = None  # so the block's pool registers over TCP, as a pool on another node would
    executor.scale_out(1)
    payloads = [payload(index) for index in range(20)]
    futures = [fingerprint_app(index, data) for index, data in enumerate(payloads)]
    for index, future in enumerate(futures):
        assert future.result(timeout=60) == (index, fingerprint(payloads[index])), f"task {index} saw other bytes"
    assert "registered with the interchange at tcp://" in htex.registration()
    assert client.arena._sequence == 20, "the client still used the arena"
    wait_for(lambda: arena_idle(client), 10, "slots were not all freed")


def kill_own_worker(data: bytes) -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return len(data)


@pytest.mark.timeout(90)
def test_lost_and_cancelled_tasks_give_their_slots_back(htex: LocalHtex, tmp_path: Path) -> None:
    executor = htex.start(workers=2)
    client = executor._client
    lost = executor.submit(kill_own_worker, {}, payload(0))
    with pytest.raises(WorkerLost):
        lost.result(timeout=30)
    wait_for(lambda: arena_idle(client), 10, "the lost task's slot was not freed")

    gate, markers = tmp_path / "gate", tmp_path / "markers"
    markers.mkdir()
    payloads = [payload(index) for index in range(12)]
    futures = [
        executor.submit(gated_fingerprint, {}, index, data, str(gate), str(markers))
        for index, data in enumerate(payloads)
    ]
    wait_for(lambda: markers_in(markers) == {0, 1}, 30, "the first two tasks never started")
    wait_for(lambda: len(client._slots) == 12, 10, "the queued tasks did not all take slots")
    for future in futures[2:]:
        assert future.cancel()
    wait_for(lambda: len(client._slots) == 2, 20, "cancelled tasks kept their slots")
    gate.write_text("open")
    for index in (0, 1):
        assert futures[index].result(timeout=30) == (index, fingerprint(payloads[index]))
    assert markers_in(markers) == {0, 1}, "a cancelled task ran"
    wait_for(lambda: arena_idle(client), 10, "slots were not all freed")
    again = payload(99)
    assert fingerprint_app(99, again).result(timeout=30) == (99, fingerprint(again))


KILLED_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    sys.path[:0] = [{repo!r}]
    import flowlib
    from flowlib import python_app
    from flowlib.config import Config
    from flowlib.executors.high_throughput.executor import HighThroughputExecutor
    from flowlib.providers import LocalProvider

    @python_app
    def size(data):
        return len(data)

    executor = HighThroughputExecutor(label="htex", max_workers_per_node=1, provider=LocalProvider(init_blocks=1))
    flowlib.load(Config(executors=[executor], run_dir={run_dir!r}, strategy="none"))
    print(size(b"x" * (1 << 20)).result(timeout=60), flush=True)
    print(executor.arena_dir, executor._client.process.pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.mark.timeout(90)
def test_an_executor_killed_outright_leaves_no_arena(tmp_path: Path) -> None:
    script = tmp_path / "workflow.py"
    script.write_text(KILLED_SCRIPT.format(repo=REPO_ROOT, run_dir=str(tmp_path / "run")))
    finished = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=80)
    assert finished.returncode == -signal.SIGKILL, finished.stderr
    size, where = finished.stdout.splitlines()
    arena_dir, interchange_pid = where.split()
    assert int(size) == MiB and arena_dir.startswith("/dev/shm/flowlib-arena-")
    # the interchange sees its executor gone, stops its pools and removes the arena
    wait_for(lambda: not os.path.exists(arena_dir), 30, f"{arena_dir} outlived the executor")
    wait_for(lambda: process_gone(int(interchange_pid)), 30, "the interchange outlived the executor")
