"""Submission pacing: a main thread far ahead of its executors waits briefly, never for a task that cannot finish."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from typing import Any

import pytest

import flowlib
from flowlib import python_app
from flowlib.config import Config
from flowlib.dataflow import pacing
from flowlib.dataflow.pacing import MIN_LIMIT, SubmissionPacer, executor_slots, resume_level
from flowlib.executors.base import FlowlibExecutor
from flowlib.executors.threads import ThreadPoolExecutor

pytestmark = pytest.mark.timeout(60)


@python_app
def held(i, gate):
    gate.wait()
    return i


@python_app
def brief(i):
    time.sleep(0.0002)
    return i


class Counted:
    """A slot count the test sets, and how often the pacer read it."""

    def __init__(self, slots: int | None) -> None:
        self.slots = slots
        self.reads = 0

    def __call__(self) -> int | None:
        self.reads += 1
        return self.slots


def test_limit_is_sixteen_tasks_per_slot_but_never_below_the_minimum():
    slots = Counted(10)
    pacer = SubmissionPacer(slots)
    assert pacer.limit(0.0) == MIN_LIMIT  # 160 < 2,000
    slots.slots = 1_000
    assert pacer.limit(0.1) == MIN_LIMIT  # not read again before REFRESH_SECONDS
    assert pacer.limit(pacing.REFRESH_SECONDS) == 16_000
    assert slots.reads == 2


def test_an_executor_that_cannot_say_turns_pacing_off():
    pacer = SubmissionPacer(Counted(None))
    assert pacer.limit(0.0) is None


def test_a_wait_that_timed_out_turns_pacing_off_for_the_pause():
    pacer = SubmissionPacer(Counted(4))
    pacer.waited(100.0, timed_out=False)
    assert pacer.limit(100.0) == MIN_LIMIT
    pacer.waited(100.0, timed_out=True)
    assert pacer.limit(100.0 + pacing.PAUSE_SECONDS - 0.01) is None
    assert pacer.limit(100.0 + pacing.PAUSE_SECONDS) == MIN_LIMIT
    assert (pacer.waits, pacer.timeouts) == (2, 1)


def test_resume_level_is_a_tenth_below():
    assert resume_level(2_000) == 1_800
    assert resume_level(5) == 4


class Opaque(FlowlibExecutor):
    """An executor that does not say how many tasks it runs at once (the base class's default)."""

    label = "opaque"

    def start(self) -> None:
        pass

    def submit(self, func: Any, resource_specification: dict[str, Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        fut.set_result(func(*args, **kwargs))
        return fut

    def shutdown(self) -> None:
        pass


def test_slots_add_up_over_executors_and_any_unknown_one_makes_them_unknown():
    assert executor_slots([ThreadPoolExecutor(max_threads=3), ThreadPoolExecutor(label="b", max_threads=5)]) == 8
    assert executor_slots([ThreadPoolExecutor(max_threads=3), Opaque()]) is None


def load(tmp_path, threads: int, **options: Any):
    config = Config(executors=[ThreadPoolExecutor(max_threads=threads)], run_dir=str(tmp_path), **options)
    return flowlib.load(config)


def test_a_loop_of_short_tasks_is_held_near_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr("flowlib.dataflow.dflow.WAIT_SECONDS", 20.0)  # a loaded machine must not time a wait out
    peak = 0
    with load(tmp_path, 4) as dfk:
        futures = []
        for i in range(12_000):
            peak = max(peak, len(dfk.tasks))
            futures.append(brief(i))
        assert [f.result(timeout=30) for f in futures] == list(range(12_000))
        pacer = dfk._pacer
        assert pacer is not None and pacer.waits >= 1 and pacer.timeouts == 0
    assert peak <= MIN_LIMIT  # 4 threads x 16 = 64, so the minimum is the limit


def test_tasks_that_cannot_finish_yet_never_stop_the_loop(tmp_path):
    """Tasks wait for something the loop does after it: one short wait, then pacing stays off."""
    gate = threading.Event()
    with load(tmp_path, 1) as dfk:
        started = time.monotonic()
        futures = [held(i, gate) for i in range(MIN_LIMIT + 3_000)]
        looped = time.monotonic() - started
        gate.set()
        assert [f.result(timeout=30) for f in futures] == list(range(MIN_LIMIT + 3_000))
        pacer = dfk._pacer
        assert pacer is not None and (pacer.waits, pacer.timeouts) == (1, 1)
    assert looped >= pacing.WAIT_SECONDS  # the one wait happened, and only one


def test_other_threads_are_never_paced(tmp_path):
    gate = threading.Event()
    futures: list[Any] = []
    with load(tmp_path, 1) as dfk:
        submitter = threading.Thread(target=lambda: futures.extend(held(i, gate) for i in range(MIN_LIMIT + 500)))
        submitter.start()
        submitter.join(timeout=30)
        assert not submitter.is_alive()
        assert dfk._pacer is not None and dfk._pacer.waits == 0
        gate.set()
        assert [f.result(timeout=30) for f in futures] == list(range(MIN_LIMIT + 500))


def test_pacing_can_be_turned_off(tmp_path):
    gate = threading.Event()
    with load(tmp_path, 1, pace_submissions=False) as dfk:
        futures = [held(i, gate) for i in range(MIN_LIMIT + 500)]
        assert dfk._pacer is None
        gate.set()
        assert [f.result(timeout=30) for f in futures] == list(range(MIN_LIMIT + 500))


def test_pace_submissions_must_be_a_bool():
    with pytest.raises(TypeError, match="pace_submissions"):
        Config(pace_submissions="yes")  # type: ignore[arg-type]
