"""Tasks submitted to an idle executor go straight onto the Unix link, without waking the I/O thread.

The submitting thread sends a small task itself when every earlier task has
been answered (a latency probe, the next link of a chain); tasks submitted
while others are in flight still queue up and travel in batches.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from flowlib import python_app
from flowlib.executors.errors import BadStateException

from .test_local_links import LocalHtex


def add_one(x: int) -> int:
    return x + 1


def wait_for_gate(gate: str, limit: float = 60.0) -> str:
    deadline = time.monotonic() + limit
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate} never opened")
        time.sleep(0.005)
    return "opened"


@python_app
def increment(x: int) -> int:
    return x + 1


def client_of(harness: LocalHtex) -> Any:
    assert harness.executor is not None
    return harness.executor._client


@pytest.mark.timeout(60)
def test_round_trips_one_at_a_time_are_sent_by_the_submitting_thread(htex: LocalHtex) -> None:
    executor = htex.start()
    assert executor.submit(add_one, None, 0).result(timeout=30) == 1  # the pool is up
    client = client_of(htex)
    before = client.direct_sends
    for i in range(40):
        assert executor.submit(add_one, None, i).result(timeout=10) == i + 1
    assert client.direct_sends - before >= 35  # nearly all: a heartbeat ping queued now and then takes one


@pytest.mark.timeout(60)
def test_a_chain_built_from_completion_callbacks_goes_out_directly(htex: LocalHtex) -> None:
    htex.start()
    assert increment(0).result(timeout=30) == 1
    client = client_of(htex)
    before = client.direct_sends
    future = increment(0)
    for _ in range(99):
        future = increment(future)
    assert future.result(timeout=30) == 100
    assert client.direct_sends - before >= 90


@pytest.mark.timeout(90)
def test_a_burst_behind_a_running_task_still_travels_in_batches(htex: LocalHtex, tmp_path: Path) -> None:
    executor = htex.start()
    assert executor.submit(add_one, None, 0).result(timeout=30) == 1
    client = client_of(htex)
    gate = str(tmp_path / "gate")
    blocker = executor.submit(wait_for_gate, None, gate)
    before = client.direct_sends
    futures = [executor.submit(add_one, None, i) for i in range(2000)]
    assert client.direct_sends == before  # the blocker was outstanding all along
    Path(gate).touch()
    assert blocker.result(timeout=60) == "opened"
    assert [f.result(timeout=60) for f in futures] == [i + 1 for i in range(2000)]


@pytest.mark.timeout(60)
def test_a_task_submitted_just_after_the_interchange_was_killed_fails(htex: LocalHtex) -> None:
    executor = htex.start(heartbeat_period=30, heartbeat_threshold=120)
    assert executor.submit(add_one, None, 0).result(timeout=30) == 1
    htex.record()
    pid = htex.interchange.pid
    os.kill(pid, signal.SIGKILL)
    htex.interchange.wait(timeout=10)
    # The I/O thread may not have noticed yet: the direct send meets the closed socket, or the
    # executor is already marked lost; either way the task fails instead of hanging.
    with pytest.raises(BadStateException, match="interchange"):
        executor.submit(add_one, None, 1).result(timeout=10)
