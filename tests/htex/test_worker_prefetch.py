"""Prefetch between a pool's manager and its workers, driven for real against a fake interchange.

A worker whose tasks are quick is handed more than one task at a time. These
tests check the fault and fairness rules that come with it: a worker that dies
loses only the task it was running, a task parked behind a long one moves to an
idle worker, and a parked task can still be cancelled.
"""

from __future__ import annotations

import os
import signal

import psutil
import pytest
from proc_state import process_gone

from flowlib.executors.high_throughput import protocol
from flowlib.executors.high_throughput.protocol import Kind, TaskStatus

from . import pool_tasks as tasks
from .conftest import wait_for

pytestmark = pytest.mark.timeout(60)

ATTEMPTS = 5


def _warm_up(interchange, identity, first_tid: int, count: int = 20) -> int:
    """Run quick tasks so that the manager sees quick workers (and prefetches); return the next free id."""
    ids = list(range(first_tid, first_tid + count))
    interchange.submit(identity, {tid: (tasks.noop, ()) for tid in ids})
    interchange.wait_answers(ids)
    assert all(interchange.results[tid][0] == TaskStatus.OK for tid in ids)
    return first_tid + count


def _manager_log(pool) -> str:
    return (pool.stderr_path.parent / "logs" / "block-7" / "pool0" / "manager.log").read_text()


def test_a_worker_killed_with_a_prefetched_task_loses_only_the_running_one(start_pool, cert_dir, interchange):
    pool = start_pool(interchange, "--max-workers-per-node", "1", cert_dir=cert_dir)
    identity, _ = interchange.register()
    tid = 1
    # Prefetch needs the worker's last task to have looked quick; on a loaded machine
    # a round trip can look slow, so try a few times until the worker held both.
    for attempt in range(1, ATTEMPTS + 1):
        tid = _warm_up(interchange, identity, tid)
        victim, parked = tid, tid + 1
        tid += 2
        interchange.submit(identity, {victim: (tasks.kill_myself, ()), parked: (tasks.add, (2, attempt))})
        interchange.wait_answers([victim, parked])
        assert interchange.failures[victim]["error"] == "WorkerLost"
        assert parked not in interchange.failures
        assert interchange.results[parked] == (TaskStatus.OK, 2 + attempt)
        if _manager_log(pool).count("unstarted task(s); they are queued again") >= 1:
            break
    else:
        pytest.fail(f"the worker never held a prefetched task in {ATTEMPTS} attempts")
    assert len(pool.worker_pids()) == 1


def test_a_task_parked_behind_a_long_one_moves_to_an_idle_worker(start_pool, cert_dir, interchange, tmp_path):
    pool = start_pool(interchange, "--max-workers-per-node", "2", cert_dir=cert_dir)
    identity, _ = interchange.register()
    tid = _warm_up(interchange, identity, 1)
    marker = tmp_path / "long"
    long_task, quick = tid, list(range(tid + 1, tid + 6))
    batch = {long_task: (tasks.mark_and_sleep, (str(marker), 50))}
    batch.update({q: (tasks.pid, ()) for q in quick})
    interchange.submit(identity, batch)
    interchange.wait_answers(quick, timeout=30)  # far sooner than the long task's 50 s
    long_pid = int(wait_for(lambda: marker.exists() and marker.read_text()))
    assert all(interchange.results[q][0] == TaskStatus.OK for q in quick)
    assert long_task not in interchange.results and long_task not in interchange.failures
    assert psutil.pid_exists(long_pid)
    log = _manager_log(pool)
    if "asked to give back" in log:  # the long task's worker had quick ones parked: they ran elsewhere
        assert all(interchange.results[q][1] != long_pid for q in quick)
    interchange.send(identity, protocol.encode_ids(Kind.CANCEL, [long_task]))
    interchange.wait_answers([long_task])
    assert interchange.results[long_task] == (TaskStatus.CANCELLED, None)
    wait_for(lambda: process_gone(long_pid))


def test_the_long_task_survives_the_give_back_signal(start_pool, cert_dir, interchange, tmp_path):
    pool = start_pool(interchange, "--max-workers-per-node", "1", cert_dir=cert_dir)
    identity, _ = interchange.register()
    tid = _warm_up(interchange, identity, 1)
    marker = tmp_path / "short-sleep"
    interchange.submit(identity, {tid: (tasks.mark_and_sleep, (str(marker), 1.0)), tid + 1: (tasks.add, (1, 1))})
    worker = int(wait_for(lambda: marker.exists() and marker.read_text()))
    os.kill(worker, signal.SIGUSR1)  # as the manager does: give back what has not started
    interchange.wait_answers([tid, tid + 1])
    assert interchange.results[tid] == (TaskStatus.OK, worker)  # the sleep resumed and finished
    assert interchange.results[tid + 1] == (TaskStatus.OK, 2)  # given back, queued again, run
    assert pool.worker_pids() == {worker}


def test_cancel_a_prefetched_task(start_pool, cert_dir, interchange, tmp_path):
    pool = start_pool(interchange, "--max-workers-per-node", "1", cert_dir=cert_dir)
    identity, _ = interchange.register()
    tid = 1
    for attempt in range(ATTEMPTS):
        tid = _warm_up(interchange, identity, tid)
        marker, side_effect = tmp_path / f"started{attempt}", tmp_path / f"parked-ran{attempt}"
        running, parked = tid, tid + 1
        tid += 2
        interchange.submit(
            identity,
            {
                running: (tasks.mark_and_sleep, (str(marker), 60)),
                parked: (tasks.mark_and_sleep, (str(side_effect), 0)),
            },
        )
        running_pid = int(wait_for(lambda m=marker: m.exists() and m.read_text()))
        interchange.send(identity, protocol.encode_ids(Kind.CANCEL, [parked]))
        interchange.wait_answers([parked])
        assert interchange.results[parked] == (TaskStatus.CANCELLED, None)
        assert psutil.pid_exists(running_pid)
        interchange.send(identity, protocol.encode_ids(Kind.CANCEL, [running]))
        interchange.wait_answers([running])
        assert interchange.results[running] == (TaskStatus.CANCELLED, None)
        assert not interchange.failures
        assert interchange.run(identity, tasks.add, 4, 4, tid=tid) == 8
        tid += 1
        assert not side_effect.exists(), "a cancelled prefetched task must not run"
        assert len(pool.worker_pids()) == 1
        if "cancelled while prefetched" in _manager_log(pool):
            break
    else:
        pytest.fail(f"the worker never held a prefetched task in {ATTEMPTS} attempts")


BLOBS = 20
"""Parked tasks behind the victim: together (18 MB) more than a worker's Pipe buffers, each under PREFETCH_BYTES."""


@pytest.mark.timeout(120)
def test_a_worker_that_dies_while_its_tasks_are_written_runs_none_twice(
    start_pool, cert_dir, interchange, tmp_path, monkeypatch
):
    # A quick worker is handed a long batch [first, victim, parked...]; the parked tasks fill
    # the Pipe, so the manager is still writing when the victim kills the worker and the
    # write fails. Whatever went into the Pipe whole may have run: the victim must fail
    # with WorkerLost (not run again elsewhere), and first's result must not be lost.
    monkeypatch.setenv("FLOWLIB_PREFETCH_DEPTH", "64")
    pool = start_pool(interchange, "--max-workers-per-node", "1", cert_dir=cert_dir)
    identity, _ = interchange.register()
    blob = bytes(900_000)
    tid = 1
    for _ in range(ATTEMPTS):
        tid = _warm_up(interchange, identity, tid)
        first, victim, parked = tid, tid + 1, list(range(tid + 2, tid + 2 + BLOBS))
        tid += 2 + BLOBS
        batch = {
            first: (tasks.run_once, (str(tmp_path / f"ran{first}"),)),
            victim: (tasks.kill_myself_once, (str(tmp_path / f"ran{victim}"),)),
        }
        batch.update({t: (tasks.run_once, (str(tmp_path / f"ran{t}"), blob)) for t in parked})
        interchange.submit(identity, batch)
        interchange.wait_answers([first, victim, *parked], timeout=60)
        assert victim not in interchange.results, f"the victim ran twice: {interchange.results[victim]}"
        assert interchange.failures[victim]["error"] == "WorkerLost"
        assert interchange.results.get(first) == (TaskStatus.OK, 0), interchange.failures.get(first)
        for t in parked:
            assert interchange.results.get(t) == (TaskStatus.OK, len(blob)), interchange.failures.get(t)
        if "while tasks were written to it" in _manager_log(pool):
            break
    else:
        pytest.fail(f"the manager never met a failed write in {ATTEMPTS} attempts")
    assert len(pool.worker_pids()) == 1


@pytest.mark.parametrize(
    ("text", "expected"), [(None, 8), ("1", 1), ("2", 2), ("64", 64), ("0", 8), ("65", 8), ("many", 8), ("", 8)]
)
def test_prefetch_depth_from_the_environment(text, expected):
    from flowlib.executors.high_throughput.pool_manager import _prefetch_depth

    assert _prefetch_depth(text) == expected


def test_depth_1_turns_prefetch_off(start_pool, cert_dir, interchange, tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWLIB_PREFETCH_DEPTH", "1")
    pool = start_pool(interchange, "--max-workers-per-node", "1", cert_dir=cert_dir)
    identity, _ = interchange.register()
    tid = _warm_up(interchange, identity, 1)
    interchange.submit(identity, {tid: (tasks.kill_myself, ()), tid + 1: (tasks.add, (1, 2))})
    interchange.wait_answers([tid, tid + 1])
    assert interchange.failures[tid]["error"] == "WorkerLost"
    assert interchange.results[tid + 1] == (TaskStatus.OK, 3)
    assert "queued again" not in _manager_log(pool)  # the second task was never handed over early
