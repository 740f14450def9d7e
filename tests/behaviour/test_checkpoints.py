"""Checkpoints: results written by each mode and reused by a later kernel, even after a crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import try_assert

import flowlib
from flowlib import python_app
from flowlib.dataflow.checkpoint import MAGIC, read_checkpoint
from flowlib.dataflow.errors import BadCheckpoint
from flowlib.dataflow.memoization import BasicMemoizer
from flowlib.utils import get_all_checkpoints, get_last_checkpoint

pytestmark = pytest.mark.timeout(60)

TESTS_DIR = str(Path(__file__).resolve().parent.parent)


def runs(counter):
    if not os.path.exists(counter):
        return []
    with open(counter) as f:
        return f.read().split()


@python_app(cache=True)
def cube(counter, x):
    with open(counter, "a") as f:
        f.write(f"{x}\n")
    return x**3


def run_cubes(counter, values):
    return [cube(counter, x).result(timeout=10) for x in values]


def checkpointed(dfk):
    return read_checkpoint(os.path.join(dfk.run_dir, "checkpoint"))


def test_task_exit_checkpoint_is_reused_by_a_later_run(make_config, tmp_path):
    run_dir = str(tmp_path / "runinfo")
    counter = str(tmp_path / "counter")
    memoizer = BasicMemoizer(checkpoint_mode="task_exit")
    with flowlib.load(make_config(memoizer=memoizer)) as dfk:
        assert run_cubes(counter, [1, 2, 3]) == [1, 8, 27]
        # task_exit: each result is in the store as soon as its task is done
        assert sorted(checkpointed(dfk).values()) == [1, 8, 27]
        first_run_dir = dfk.run_dir
    assert runs(counter) == ["1", "2", "3"]
    assert get_all_checkpoints(run_dir) == [os.path.join(first_run_dir, "checkpoint")]

    resumed = BasicMemoizer(checkpoint_files=get_all_checkpoints(run_dir))
    with flowlib.load(make_config(memoizer=resumed)) as dfk:
        assert dfk.run_dir != first_run_dir
        futs = [cube(counter, x) for x in (1, 2, 3, 4)]
        assert [f.result(timeout=10) for f in futs] == [1, 8, 27, 64]
        assert [f.task_status() for f in futs[:3]] == ["memo_done"] * 3
    assert runs(counter) == ["1", "2", "3", "4"]  # only the new value ran


@python_app(cache=True)
def fails_in_first_run(counter, marker, x):
    with open(counter, "a") as f:
        f.write(f"{x}\n")
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("transient failure")
    return x


def test_failures_are_not_checkpointed(make_config, tmp_path):
    run_dir = str(tmp_path / "runinfo")
    counter, marker = str(tmp_path / "counter"), str(tmp_path / "marker")
    with flowlib.load(make_config(memoizer=BasicMemoizer(checkpoint_mode="task_exit"))):
        with pytest.raises(RuntimeError):
            fails_in_first_run(counter, marker, 9).result(timeout=10)
    resumed = BasicMemoizer(checkpoint_files=get_all_checkpoints(run_dir))
    with flowlib.load(make_config(memoizer=resumed)):
        # the failure was not replayed: the task ran again and succeeded
        assert fails_in_first_run(counter, marker, 9).result(timeout=10) == 9
    assert runs(counter) == ["9", "9"]


def test_torn_last_record_is_skipped(make_config, tmp_path):
    run_dir = str(tmp_path / "runinfo")
    counter = str(tmp_path / "counter")
    with flowlib.load(make_config(memoizer=BasicMemoizer(checkpoint_mode="task_exit"))) as dfk:
        run_cubes(counter, [1, 2, 3])
        path = os.path.join(dfk.run_dir, "checkpoint", "tasks.ckpt")
    before = set(read_checkpoint(path).values())
    with open(path, "r+b") as f:  # a crash tore the last record
        f.truncate(os.path.getsize(path) - 3)
    after = set(read_checkpoint(path).values())
    assert before == {1, 8, 27} and len(after) == 2 and after < before
    lost = round(next(iter(before - after)) ** (1 / 3))
    resumed = BasicMemoizer(checkpoint_files=get_all_checkpoints(run_dir))
    with flowlib.load(make_config(memoizer=resumed)):
        assert run_cubes(counter, [1, 2, 3]) == [1, 8, 27]
    assert runs(counter) == ["1", "2", "3", str(lost)]


def test_get_last_checkpoint_picks_the_newest_run(make_config, tmp_path):
    run_dir = str(tmp_path / "runinfo")
    counter = str(tmp_path / "counter")
    for values in ([1], [2]):
        with flowlib.load(make_config(memoizer=BasicMemoizer(checkpoint_mode="task_exit"))):
            run_cubes(counter, values)
    last = get_last_checkpoint(run_dir)
    assert len(last) == 1 and last[0] == get_all_checkpoints(run_dir)[-1]
    with flowlib.load(make_config(memoizer=BasicMemoizer(checkpoint_files=last))):
        assert run_cubes(counter, [1, 2]) == [1, 8]
    assert runs(counter) == ["1", "2", "1"]  # 2 came from the last run, 1 was not in it


def test_dfk_exit_checkpoint(make_config, tmp_path):
    counter = str(tmp_path / "counter")
    with flowlib.load(make_config(memoizer=BasicMemoizer(checkpoint_mode="dfk_exit"))) as dfk:
        assert run_cubes(counter, [2, 3]) == [8, 27]
        assert checkpointed(dfk) == {}  # nothing written before the kernel exits
    assert sorted(checkpointed(dfk).values()) == [8, 27]


def test_manual_checkpoint(make_config, tmp_path):
    counter = str(tmp_path / "counter")
    with flowlib.load(make_config(memoizer=BasicMemoizer(checkpoint_mode="manual"))) as dfk:
        assert run_cubes(counter, [4]) == [64]
        assert checkpointed(dfk) == {}
        dfk.checkpoint()
        assert sorted(checkpointed(dfk).values()) == [64]
        assert run_cubes(counter, [5]) == [125]
        assert sorted(checkpointed(dfk).values()) == [64]
        dfk.checkpoint()
        assert sorted(checkpointed(dfk).values()) == [64, 125]


def test_periodic_checkpoint(make_config, tmp_path):
    counter = str(tmp_path / "counter")
    memoizer = BasicMemoizer(checkpoint_mode="periodic", checkpoint_period="00:00:01")
    with flowlib.load(make_config(memoizer=memoizer)) as dfk:
        path = os.path.join(dfk.run_dir, "checkpoint", "tasks.ckpt")
        assert run_cubes(counter, [1, 2]) == [1, 8]
        try_assert(
            lambda: os.path.getsize(path) > len(MAGIC),
            timeout=10,
            message="the periodic checkpoint never wrote the results",
        )
        assert sorted(checkpointed(dfk).values()) == [1, 8]


def test_missing_checkpoint_is_bad_checkpoint(make_config, tmp_path):
    missing = str(tmp_path / "no-such-run" / "checkpoint")
    config = make_config(memoizer=BasicMemoizer(checkpoint_files=[missing]))
    with pytest.raises(BadCheckpoint, match="no-such-run"):
        flowlib.load(config)
    # a failed load leaves no kernel behind: a good one loads afterwards
    with flowlib.load(make_config()) as dfk:
        assert not dfk.cleanup_called


def test_corrupt_checkpoint_is_bad_checkpoint(make_config, tmp_path):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(os.urandom(64) + b"\x00not a checkpoint\xff" * 10)
    config = make_config(memoizer=BasicMemoizer(checkpoint_files=[str(garbage)]))
    with pytest.raises(BadCheckpoint, match="garbage.ckpt"):
        flowlib.load(config)


WORKFLOW = textwrap.dedent(
    """
    import json
    import sys
    from pathlib import Path

    import flowlib
    from flowlib import python_app
    from flowlib.config import Config
    from flowlib.dataflow.memoization import BasicMemoizer
    from flowlib.utils import get_all_checkpoints

    tests_dir, executor_name, run_dir, ran_log, results, phase = sys.argv[1:]
    sys.path.insert(0, tests_dir)
    from conftest import EXECUTOR_FACTORIES

    N = 40


    @python_app(cache=True)
    def work(i, ran_log):
        import time

        with open(ran_log, "a") as f:
            f.write(f"{i}\\n")
        time.sleep(0.2)  # the workload
        return {"id": i, "square": i * i}


    files = get_all_checkpoints(run_dir) if phase == "second" else None
    config = Config(
        executors=[EXECUTOR_FACTORIES[executor_name](Path(run_dir).parent)],
        run_dir=run_dir,
        memoizer=BasicMemoizer(checkpoint_mode="task_exit", checkpoint_files=files),
    )
    with flowlib.load(config):
        futures = [work(i, ran_log) for i in range(N)]
        values = [fut.result() for fut in futures]
    with open(results, "w") as f:
        json.dump(values, f)
    """
)


def test_killed_workflow_resumes_from_its_checkpoint(executor_name, tmp_path):
    script = tmp_path / "workflow.py"
    script.write_text(WORKFLOW)
    run_dir = str(tmp_path / "runinfo")
    ran_log = tmp_path / "ran.log"
    results = tmp_path / "results.json"

    def start(phase):
        return subprocess.Popen(
            [sys.executable, str(script), TESTS_DIR, executor_name, run_dir, str(ran_log)] + [str(results), phase],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def ran_lines():
        return ran_log.read_text().splitlines() if ran_log.exists() else []

    first = start("first")
    try:
        checkpoint_dir = os.path.join(run_dir, "000", "checkpoint")

        def ready():
            if first.poll() is not None:
                raise AssertionError(f"the workflow ended early: {first.stdout.read()!r}")
            if len(ran_lines()) < 10 or not os.path.exists(checkpoint_dir):
                return False
            return len(read_checkpoint(checkpoint_dir)) >= 3

        try_assert(ready, timeout=30, message="the first run never got going")
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the whole workflow crashes at once
        first.wait()
        first.stdout.close()
    assert first.returncode == -signal.SIGKILL
    assert not results.exists()

    recorded = {entry["id"]: entry for entry in read_checkpoint(checkpoint_dir).values()}
    assert recorded, "nothing was checkpointed before the crash"
    assert all(entry == {"id": i, "square": i * i} for i, entry in recorded.items())
    first_lines = len(ran_lines())
    assert len(recorded) < 40, "the first run finished before it was killed"

    second = start("second")
    try:
        output, _ = second.communicate(timeout=40)
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
            second.wait()
    assert second.returncode == 0, output.decode(errors="replace")

    values = json.loads(results.read_text())
    assert values == [{"id": i, "square": i * i} for i in range(40)]
    rerun = [int(line) for line in ran_lines()[first_lines:]]
    assert len(rerun) == len(set(rerun))
    # the second run recomputed exactly the tasks whose results were not recorded
    assert set(rerun) == set(range(40)) - set(recorded)
