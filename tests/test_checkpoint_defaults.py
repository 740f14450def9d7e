"""BasicMemoizer with a checkpoint mode: which earlier checkpoints a run loads by default,
and that a result reused from an earlier run is in the new run's checkpoint too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import flowlib
from flowlib import python_app
from flowlib.config import Config
from flowlib.dataflow.checkpoint import read_checkpoint
from flowlib.dataflow.memoization import BasicMemoizer
from flowlib.executors.threads import ThreadPoolExecutor
from flowlib.utils import get_last_checkpoint

pytestmark = pytest.mark.timeout(30)


@python_app(cache=True)
def token(x, counter):
    with open(counter, "a") as f:
        f.write("run\n")
    return f"token-{x}"


def run_once(run_dir: Path, counter: Path, **memo: Any) -> tuple[str, str]:
    memoizer = BasicMemoizer(checkpoint_mode="task_exit", **memo)
    config = Config(executors=[ThreadPoolExecutor(label="t", max_threads=1)], run_dir=str(run_dir), memoizer=memoizer)
    with flowlib.load(config) as dfk:
        result = token("a", str(counter)).result(timeout=10)
    flowlib.clear()
    return result, dfk.run_dir


def executions(counter: Path) -> int:
    return len(counter.read_text().split()) if counter.exists() else 0


def test_no_checkpoint_files_loads_every_earlier_checkpoint(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    run_once(tmp_path / "runs", counter)
    run_once(tmp_path / "runs", counter)
    assert executions(counter) == 1  # the second run reused the first run's result


def test_an_explicit_empty_list_loads_nothing(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    run_once(tmp_path / "runs", counter, checkpoint_files=[])
    run_once(tmp_path / "runs", counter, checkpoint_files=[])
    assert executions(counter) == 2


def test_without_a_mode_nothing_is_loaded(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    run_once(tmp_path / "runs", counter)
    config = Config(executors=[ThreadPoolExecutor(label="t")], run_dir=str(tmp_path / "runs"), memoizer=BasicMemoizer())
    with flowlib.load(config):
        assert token("a", str(counter)).result(timeout=10) == "token-a"
    flowlib.clear()
    assert executions(counter) == 2


def test_a_reused_result_is_in_the_newest_checkpoint(tmp_path: Path) -> None:
    runs, counter = tmp_path / "runs", tmp_path / "counter"
    first, _ = run_once(runs, counter, checkpoint_files=[])
    second, second_dir = run_once(runs, counter, checkpoint_files=get_last_checkpoint(str(runs)))
    assert list(read_checkpoint(str(Path(second_dir) / "checkpoint")).values()) == ["token-a"]
    # so the last checkpoint alone is enough for a third run
    third, _ = run_once(runs, counter, checkpoint_files=get_last_checkpoint(str(runs)))
    assert first == second == third == "token-a"
    assert executions(counter) == 1
