"""Large results through shared memory (shared_results.py): per-worker result files in the executor's arena directory.

* unit: a record round-trips, is freed by the reader and reused by the writer;
  a writer waits for room; a result that does not fit returns None (the caller
  sends it through the sockets); the reader refuses names that are not result files, symlinks,
  FIFOs, records outside the file and records of another task;
* real htex: a 24 MiB result comes back through the shared path (the reader's
  counter) and intact; one larger than a worker's budget, or with
  ``shared_memory=False``, without Unix sockets or from a pool registered over
  TCP, takes the sockets; a worker that forges a reference fails its task with
  an error naming the task; no file is left once the executor shut down, also
  after a worker was SIGKILLed halfway through a result, nor once an executor
  killed outright has been noticed by its interchange.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT

import flowlib
from flowlib import python_app
from flowlib.config import Config
from flowlib.executors.high_throughput import shared_results
from flowlib.executors.high_throughput.errors import WorkerLost
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.executors.high_throughput.shared_results import (
    RESULT_BYTES_PER_WORKER,
    RESULT_HEADER,
    SHARED_RESULT_BYTES,
    ResultReader,
    ResultWriter,
    SharedResultError,
    budget_per_worker,
    is_shared_result,
)
from flowlib.providers import LocalProvider
from flowlib.serialize import deserialize
from flowlib.serialize.facade import serialize_chunks

from .conftest import wait_for
from .test_local_links import WORKER_INIT, LocalHtex

pytestmark = pytest.mark.timeout(120)
MiB = 1 << 20


# ------------------------------------------------------------------------ task functions
# Module level, so that workers import them by name (tests/ is on their PYTHONPATH).


def pattern(size: int, seed: int) -> bytes:
    """Reproducible bytes that differ from one seed to the next (cheap to make at 24 MiB)."""
    block = random.Random(seed).randbytes(MiB)
    return (block * (size // MiB + 1))[:size]


@python_app
def make_result(size: int, seed: int) -> bytes:
    return pattern(size, seed)


@python_app
def forge_reference(name: str, size: int) -> bytes:
    """Play a hostile worker: this worker's next large result is sent as a reference to file ``name``."""
    from flowlib.executors.high_throughput import worker

    honest = worker._RESULTS

    class Forger:
        def put(self, task_id: int, chunks: Any, length: int) -> bytes:
            worker._RESULTS = honest
            return RESULT_HEADER + struct.pack("=QQQQ", 0, length, 1, task_id) + name.encode()

    worker._RESULTS = Forger()  # type: ignore[assignment]
    return b"f" * size


@python_app
def die_while_writing(size: int) -> None:
    """Write a record into this worker's result file, then die by SIGKILL before the reference is sent."""
    from flowlib.executors.high_throughput import worker

    assert worker._RESULTS is not None, "this worker has no result file"
    assert worker._RESULTS.put(0, [b"d" * size], size) is not None
    os.kill(os.getpid(), signal.SIGKILL)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------ unit


@pytest.fixture
def shm_dir() -> Iterator[str]:
    root = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - as the arena does
    directory = tempfile.mkdtemp(prefix="flowlib-test-results-", dir=root)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def put(writer: ResultWriter, task_id: int, value: Any) -> bytes | None:
    chunks, size = serialize_chunks(value)
    return writer.put(task_id, chunks, size)


def test_a_result_round_trips_and_its_record_is_reused(shm_dir: str) -> None:
    writer, reader = ResultWriter(shm_dir, 8 * MiB), ResultReader(shm_dir)
    try:
        first = pattern(3 * MiB, 1)
        reference = put(writer, 7, first)
        assert reference is not None and is_shared_result(reference) and len(reference) < 100
        assert oct(os.stat(writer.path).st_mode & 0o777) == "0o600"
        assert reader.load(reference, 7, deserialize) == first
        assert not os.path.exists(writer.path), "the reader unlinks the file once it holds it open"
        assert reader.received == 1 and reader.bytes_received > 3 * MiB
        with pytest.raises(SharedResultError, match="freed, overwritten or never written"):
            reader.load(reference, 7, deserialize)  # its record was freed: a replayed reference is refused
        # the freed record is reused, so eight 3 MiB results pass through an 8 MiB file one after the other
        for task_id in range(8, 16):
            value = pattern(3 * MiB, task_id)
            again = put(writer, task_id, value)
            assert again is not None, f"result {task_id} found no free record"
            assert reader.load(again, task_id, deserialize) == value
        assert writer.written == 9 and reader.received == 9
    finally:
        reader.close()
        writer.close()


def test_a_result_that_does_not_fit_is_left_to_the_sockets(shm_dir: str) -> None:
    writer, reader = ResultWriter(shm_dir, 8 * MiB, wait=0.05), ResultReader(shm_dir)
    try:
        assert put(writer, 1, b"x" * (9 * MiB)) is None, "larger than the file"
        held = [put(writer, task_id, b"y" * (3 * MiB)) for task_id in (2, 3)]
        assert None not in held
        started = time.monotonic()
        assert put(writer, 4, b"z" * (3 * MiB)) is None, "two unread results fill the file"
        assert time.monotonic() - started >= 0.05, "the writer waited for room first"
        assert reader.load(held[0], 2, len) > 3 * MiB
        assert put(writer, 5, b"z" * (3 * MiB)) is not None, "a record read by the executor is taken back"
    finally:
        reader.close()
        writer.close()


def test_a_writer_waits_for_the_reader_to_free_room(shm_dir: str) -> None:
    writer, reader = ResultWriter(shm_dir, 8 * MiB, wait=30), ResultReader(shm_dir)
    try:
        held = [put(writer, task_id, pattern(3 * MiB, task_id)) for task_id in (1, 2)]
        assert None not in held
        read: list[bytes] = []
        # the reader frees the first record while the writer waits for room
        later = threading.Timer(0.2, lambda: read.append(reader.load(held[0], 1, deserialize)))
        later.start()
        try:
            third = put(writer, 3, pattern(3 * MiB, 3))
        finally:
            later.join()
        assert read == [pattern(3 * MiB, 1)]
        assert third is not None, "the writer found room once the first result was read"
        assert reader.load(third, 3, deserialize) == pattern(3 * MiB, 3)
    finally:
        reader.close()
        writer.close()


def test_a_truncated_result_file_fails_the_read(shm_dir: str) -> None:
    writer, reader = ResultWriter(shm_dir, 8 * MiB), ResultReader(shm_dir)
    try:
        reference = put(writer, 3, b"t" * (2 * MiB))
        assert reference is not None
        os.truncate(writer.path, MiB)  # before the reader opened it
        with pytest.raises(SharedResultError, match="outside the result file"):
            reader.load(reference, 3, deserialize)
    finally:
        reader.close()
        writer.close()


def test_the_file_of_a_worker_that_is_gone_is_closed_when_a_new_one_appears(
    shm_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    old, new, reader = ResultWriter(shm_dir, 4 * MiB), ResultWriter(shm_dir, 4 * MiB), ResultReader(shm_dir)
    old.name = f"result-{dead_pid}-{'0' * 16}"  # as if a worker with that pid (now gone) had written it
    old.path = os.path.join(shm_dir, old.name)
    try:
        first = put(old, 1, b"o" * (2 * MiB))
        assert first is not None and reader.load(first, 1, len) > 2 * MiB
        second = put(new, 2, b"n" * (2 * MiB))
        assert second is not None and reader.load(second, 2, len) > 2 * MiB
        assert len(reader._files) == 2, "within the grace period the dead worker's file stays open"
        monkeypatch.setattr(shared_results, "DEAD_FILE_GRACE", 0.0)
        third = ResultWriter(shm_dir, 4 * MiB)
        reference = put(third, 3, b"t" * (2 * MiB))
        assert reference is not None and reader.load(reference, 3, len) > 2 * MiB
        assert sorted(reader._files) == sorted([new.name.encode(), third.name.encode()]), "the dead one was closed"
        third.close()
    finally:
        reader.close()
        old.close()
        new.close()


def test_a_writer_that_cannot_create_its_file_leaves_every_result_to_the_sockets(tmp_path: Path) -> None:
    writer = ResultWriter(str(tmp_path / "gone"), 8 * MiB)
    assert put(writer, 1, b"x" * (2 * MiB)) is None
    assert writer.failed is not None and "cannot create the result file" in writer.failed
    assert put(writer, 2, b"x" * (2 * MiB)) is None, "it does not try again"
    writer.close()


def test_the_budget_is_shared_by_a_pools_workers() -> None:
    assert budget_per_worker(1) == budget_per_worker(2) == RESULT_BYTES_PER_WORKER
    assert budget_per_worker(64) == shared_results.RESULT_BYTES_PER_POOL // 64


def reference_to(name: str, task_id: int = 1, start: int = 0, length: int = 100, sequence: int = 1) -> bytes:
    return RESULT_HEADER + struct.pack("=QQQQ", start, length, sequence, task_id) + name.encode()


VALID_NAME = "result-1-0123456789abcdef"


@pytest.mark.parametrize("name", ["../../../etc/passwd", "/etc/passwd", "result-1-../../x", "arena", ""])
def test_a_reference_to_anything_but_a_result_file_name_is_refused(shm_dir: str, name: str) -> None:
    reader = ResultReader(shm_dir)
    with pytest.raises(SharedResultError, match="not a result file's name|malformed"):
        reader.load(reference_to(name), 1, bytes)


def test_a_symlink_a_fifo_or_a_missing_file_is_refused(shm_dir: str, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"s" * 4096)
    reader = ResultReader(shm_dir)
    with pytest.raises(SharedResultError, match="cannot open the result file .*No such file"):
        reader.load(reference_to(VALID_NAME), 1, bytes)
    os.symlink(secret, os.path.join(shm_dir, VALID_NAME))
    with pytest.raises(SharedResultError, match="cannot open the result file .*(symbolic links|ELOOP|Too many levels)"):
        reader.load(reference_to(VALID_NAME), 1, bytes)
    os.unlink(os.path.join(shm_dir, VALID_NAME))
    os.mkfifo(os.path.join(shm_dir, VALID_NAME))
    with pytest.raises(SharedResultError, match="not a non-empty regular file"):
        reader.load(reference_to(VALID_NAME), 1, bytes)


def test_a_record_outside_the_file_or_of_another_task_is_refused(shm_dir: str) -> None:
    writer, reader = ResultWriter(shm_dir, 4 * MiB), ResultReader(shm_dir)
    try:
        reference = put(writer, 5, b"r" * (2 * MiB))
        assert reference is not None
        name = writer.name
        with pytest.raises(SharedResultError, match="names executor task 5, not 6"):
            reader.load(reference, 6, bytes)
        with pytest.raises(SharedResultError, match="outside the result file"):
            reader.load(reference_to(name, task_id=5, start=0, length=8 * MiB), 5, bytes)
        with pytest.raises(SharedResultError, match="not sequence 9 of task 5"):
            reader.load(reference_to(name, task_id=5, start=0, length=10, sequence=9), 5, bytes)
        assert reader.load(reference, 5, deserialize) == b"r" * (2 * MiB), "the honest reference still reads"
        corrupt = writer.put(8, [b"01\n", b"\xff" * (2 * MiB)], 2 * MiB + 3)  # pickle header, garbage after
        assert corrupt is not None
        with pytest.raises(Exception, match="cannot deserialize"):
            reader.load(corrupt, 8, deserialize)
        with pytest.raises(SharedResultError, match="freed"):
            reader.load(corrupt, 8, deserialize)  # freed all the same: the writer may reuse the room
    finally:
        reader.close()
        writer.close()


# ------------------------------------------------------------------------ real htex


def result_files(executor: Any) -> list[str]:
    return [name for name in os.listdir(executor.arena_dir) if name.startswith("result-")]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("encrypted", [True, False], ids=["curve", "plain"])
def test_a_24_mib_result_comes_back_intact_through_shared_memory(htex: LocalHtex, encrypted: bool) -> None:
    executor = htex.start(workers=2, encrypted=encrypted)
    reader = executor.shared_results
    assert reader is not None and executor.arena_dir is not None
    size = 24 * MiB
    value = make_result(size, 3).result(timeout=120)
    assert len(value) == size and digest(value) == digest(pattern(size, 3))
    assert reader.received == 1 and reader.bytes_received > size
    small = make_result(SHARED_RESULT_BYTES - 4096, 4).result(timeout=60)
    assert len(small) == SHARED_RESULT_BYTES - 4096 and reader.received == 1, "a smaller result takes the sockets"
    many = [make_result(MiB, seed) for seed in range(40)]  # more than one record's worth: records are reused
    for seed, future in enumerate(many):
        assert future.result(timeout=120) == pattern(MiB, seed)
    assert reader.received >= 2
    assert result_files(executor) == [], "the executor unlinked every result file it opened"


@pytest.mark.timeout(180)
def test_a_result_larger_than_a_workers_budget_takes_the_sockets(htex: LocalHtex) -> None:
    executor = htex.start(workers=2)
    size = RESULT_BYTES_PER_WORKER + MiB
    value = make_result(size, 5).result(timeout=150)
    assert len(value) == size and digest(value) == digest(pattern(size, 5))
    assert executor.shared_results is not None and executor.shared_results.received == 0


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    "options",
    [{"shared_memory": False}, {"unix_sockets": False}, {"unix_sockets": False, "encrypted": False}],
    ids=["no-shared-memory", "curve-tcp", "plain-tcp"],
)
def test_without_shared_memory_large_results_take_the_sockets(htex: LocalHtex, options: dict[str, Any]) -> None:
    executor = htex.start(workers=2, **options)
    assert executor.shared_results is None and executor.arena_dir is None
    size = 16 * MiB
    assert make_result(size, 6).result(timeout=150) == pattern(size, 6)


@pytest.mark.parametrize(
    "forged", ["../../../etc/passwd", VALID_NAME + "-symlink"], ids=["outside-the-directory", "symlink"]
)
def test_a_forged_reference_fails_its_task_with_an_error_naming_it(htex: LocalHtex, forged: str) -> None:
    executor = htex.start(workers=1)
    assert executor.arena_dir is not None
    name = forged
    if forged.endswith("-symlink"):
        name = VALID_NAME
        os.symlink("/etc/passwd", os.path.join(executor.arena_dir, name))
    future = forge_reference(name, 2 * MiB)
    with pytest.raises(SharedResultError) as caught:
        future.result(timeout=60)
    text = str(caught.value)
    assert f"of task {future.tid}" in text and "forge_reference" in text, text
    assert "not a result file's name" in text or "cannot open the result file" in text, text
    assert make_result(2 * MiB, 7).result(timeout=60) == pattern(2 * MiB, 7), "the worker goes on honestly"
    assert executor.shared_results is not None and executor.shared_results.received == 1


def test_a_worker_killed_while_it_writes_a_result_leaves_no_file_after_shutdown(htex: LocalHtex) -> None:
    executor = htex.start(workers=1)
    with pytest.raises(WorkerLost):
        die_while_writing(2 * MiB).result(timeout=60)
    assert len(result_files(executor)) == 1, "the dead worker's file, never opened by the executor, is still there"
    assert make_result(2 * MiB, 9).result(timeout=60) == pattern(2 * MiB, 9), "its replacement writes a file of its own"
    assert len(result_files(executor)) == 1, "the executor opened and unlinked the replacement's file"
    arena = executor.arena_dir
    htex.cleanup()
    assert arena is not None and not os.path.exists(arena), "the arena directory went with the executor"


def test_a_pool_registered_over_tcp_sends_large_results_through_the_sockets(htex: LocalHtex) -> None:
    executor = HighThroughputExecutor(
        label="htex",
        max_workers_per_node=1,
        provider=LocalProvider(init_blocks=0, min_blocks=0, max_blocks=1, worker_init=WORKER_INIT),
    )
    htex.executor = executor
    htex.dfk = flowlib.load(Config(executors=[executor], run_dir=htex.run_dir, strategy="none"))
    executor._client.pool_socket = None  # so the block's pool registers over TCP, as a pool on another node would
    executor.scale_out(1)
    assert make_result(4 * MiB, 10).result(timeout=60) == pattern(4 * MiB, 10)
    assert "registered with the interchange at tcp://" in htex.registration()
    assert executor.shared_results is not None and executor.shared_results.received == 0
    assert result_files(executor) == [], "its worker was given no result directory"


KILLED_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    sys.path[:0] = [{repo!r}, {tests!r}]
    import flowlib
    from flowlib.config import Config
    from flowlib.executors.high_throughput.executor import HighThroughputExecutor
    from flowlib.providers import LocalProvider
    from htex.test_shared_results import write_and_wait

    provider = LocalProvider(init_blocks=1, worker_init={worker_init!r})
    executor = HighThroughputExecutor(label="htex", max_workers_per_node=1, provider=provider)
    flowlib.load(Config(executors=[executor], run_dir={run_dir!r}, strategy="none"))
    waiting = write_and_wait({marker!r})
    deadline = time.monotonic() + 60
    while not os.path.exists({marker!r}):
        if waiting.done():
            waiting.result()  # raises what went wrong
        if time.monotonic() > deadline:
            sys.exit("the task never wrote its record")
        time.sleep(0.01)
    print(executor.arena_dir, sorted(os.listdir(executor.arena_dir)), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


@python_app
def write_and_wait(marker: str) -> None:
    """Leave a record in this worker's result file, say so (``marker``), and wait to be killed."""
    from flowlib.executors.high_throughput import worker

    assert worker._RESULTS is not None and worker._RESULTS.put(0, [b"w" * MiB], MiB) is not None
    with open(marker, "w"):
        pass
    time.sleep(120)


@pytest.mark.timeout(90)
def test_an_executor_killed_outright_leaves_no_result_file(tmp_path: Path) -> None:
    marker = str(tmp_path / "written")
    script = tmp_path / "workflow.py"
    script.write_text(
        KILLED_SCRIPT.format(
            repo=REPO_ROOT,
            tests=os.path.join(REPO_ROOT, "tests"),
            worker_init=WORKER_INIT,
            run_dir=str(tmp_path / "run"),
            marker=marker,
        )
    )
    finished = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=80)
    assert finished.returncode == -signal.SIGKILL, finished.stderr
    arena_dir, files = finished.stdout.strip().split(" ", 1)
    assert arena_dir.startswith("/dev/shm/flowlib-arena-") and "result-" in files, files
    # the interchange sees its executor gone, stops its pools and removes the arena with the files in it
    wait_for(lambda: not os.path.exists(arena_dir), 30, f"{arena_dir} outlived the executor")
