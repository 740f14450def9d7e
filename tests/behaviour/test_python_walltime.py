"""Python apps with walltime= are stopped when they run too long."""

from __future__ import annotations

import time

import pytest

from flowlib import python_app
from flowlib.app.errors import AppTimeout

pytestmark = pytest.mark.timeout(60)


@python_app
def busy_loop(limit):
    deadline = time.monotonic() + limit
    count = 0
    while time.monotonic() < deadline:  # pure Python work, no sleeping
        count += 1
    return count


@python_app
def quick(x, walltime=None):
    return x * 2


def test_busy_python_loop_times_out(dfk):
    start = time.monotonic()
    fut = busy_loop(30, walltime=0.5)
    with pytest.raises(AppTimeout):
        fut.result(timeout=20)
    assert time.monotonic() - start < 10
    assert fut.task_status() == "failed"


def test_worker_is_usable_after_timeout(dfk):
    timed_out = [busy_loop(30, walltime=0.5) for _ in range(2)]
    for fut in timed_out:
        assert isinstance(fut.exception(timeout=20), AppTimeout)
    assert busy_loop(0.01).result(timeout=10) >= 0


def test_fast_task_with_walltime_completes(dfk):
    assert busy_loop(0.05, walltime=5).result(timeout=10) > 0
    assert quick(21, walltime=5).result(timeout=10) == 42
