"""Block scaling with a real LocalProvider: init_blocks at start, scale out under load,
idle blocks drained and released after max_idletime."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from conftest import try_assert

import flowlib
from flowlib import python_app
from flowlib.config import Config
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.jobs.states import JobState
from flowlib.providers import LocalProvider

pytestmark = pytest.mark.timeout(90)


@python_app
def hold(path: str, release: str) -> int:
    import time

    open(f"{path}.{os.getpid()}", "w").close()
    while not os.path.exists(release):
        time.sleep(0.01)
    return os.getpid()


@python_app
def quick(x: int) -> int:
    return x


def config(tmp_path: Any, strategy: str, **provider: Any) -> Config:
    executor = HighThroughputExecutor(
        label="htex",
        max_workers_per_node=1,
        heartbeat_period=0.5,
        heartbeat_threshold=5,
        provider=LocalProvider(**provider),
    )
    return Config(
        executors=[executor], run_dir=str(tmp_path / "run"), strategy=strategy, strategy_period=0.2, max_idletime=1.0
    )


def running_blocks(executor: HighThroughputExecutor) -> list[str]:
    return [b for b, s in executor.block_status().items() if s.state in (JobState.PENDING, JobState.RUNNING)]


def test_first_block_is_requested_at_start(tmp_path):
    started = time.monotonic()
    with flowlib.load(config(tmp_path, "none", init_blocks=1, max_blocks=1)) as dfk:
        assert running_blocks(dfk.executors["htex"]) == ["0"]
        assert quick(1).result(timeout=30) == 1
        # no strategy period (5 s by default) stands between load and the first result
        assert time.monotonic() - started < 5


def test_simple_strategy_scales_out_then_back_in(tmp_path):
    markers = tmp_path / "m"
    markers.mkdir()
    release = tmp_path / "release"
    with flowlib.load(config(tmp_path, "simple", init_blocks=0, min_blocks=0, max_blocks=3)) as dfk:
        executor = dfk.executors["htex"]
        assert running_blocks(executor) == []
        futures = [hold(str(markers / "w"), str(release)) for _ in range(3)]
        try_assert(lambda: len(os.listdir(markers)) == 3, timeout=40, message="three blocks never ran the tasks")
        assert len(running_blocks(executor)) == 3
        release.write_text("go")
        assert len({f.result(timeout=30) for f in futures}) == 3  # one worker per block: three blocks
        try_assert(lambda: running_blocks(executor) == [], timeout=20, message="idle blocks were not released")
        assert {s.state for s in executor.block_status().values()} == {JobState.SCALED_IN}


def test_auto_scale_drains_idle_blocks_but_keeps_min_blocks(tmp_path):
    markers = tmp_path / "m"
    markers.mkdir()
    release = tmp_path / "release"
    cfg = config(tmp_path, "htex_auto_scale", init_blocks=2, min_blocks=1, max_blocks=2)
    with flowlib.load(cfg) as dfk:
        executor = dfk.executors["htex"]
        try_assert(lambda: executor.connected_workers == 2, timeout=30)
        busy = hold(str(markers / "w"), str(release))
        try_assert(lambda: len(os.listdir(markers)) == 1, timeout=30)
        # one block idle for max_idletime while the other works: the idle one is released
        try_assert(lambda: len(running_blocks(executor)) == 1, timeout=20, message="the idle block was kept")
        try_assert(lambda: executor.connected_workers == 1, timeout=10, message="the drained pool is still counted")
        release.write_text("go")
        assert busy.result(timeout=30) > 0
        assert len(running_blocks(executor)) == 1  # min_blocks: the last block stays


def test_parallelism_limits_blocks(tmp_path):
    markers = tmp_path / "m"
    markers.mkdir()
    release = tmp_path / "release"
    cfg = config(tmp_path, "simple", init_blocks=0, min_blocks=0, max_blocks=4, parallelism=0.5)
    with flowlib.load(cfg) as dfk:
        executor = dfk.executors["htex"]
        futures = [hold(str(markers / "w"), str(release)) for _ in range(4)]
        try_assert(lambda: len(os.listdir(markers)) == 2, timeout=40)
        assert len(executor.block_status()) == 2  # 4 tasks x 0.5 = 2 blocks
        release.write_text("go")
        [f.result(timeout=30) for f in futures]
