"""Memoization keys, the BasicMemoizer memo table, and checkpoint modes."""

from __future__ import annotations

import enum
import functools
import logging
import os
import pathlib
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pytest

from flowlib.dataflow.checkpoint import read_checkpoint
from flowlib.dataflow.errors import BadCheckpoint
from flowlib.dataflow.memoization import BasicMemoizer, function_identity, id_for_memo
from flowlib.dataflow.taskrecord import TaskRecord
from flowlib.utils import get_all_checkpoints

pytestmark = pytest.mark.timeout(60)


def _noop() -> None:
    return None


def make_task(
    tid: int,
    *args: Any,
    fn_hash: str = "fn-1",
    memoize: bool = True,
    ignore: list[str] | None = None,
    **kwargs: Any,
) -> TaskRecord:
    task = TaskRecord(
        tid,
        _noop,
        "work",
        fn_hash,
        args,
        kwargs,
        "threads",
        memoize=memoize,
        ignore_for_cache=ignore,
    )
    task.app_fu = Future()  # type: ignore[assignment]
    return task


def poll(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        threading.Event().wait(0.02)


@pytest.fixture
def started() -> Any:
    memoizers: list[BasicMemoizer] = []

    def start(run_dir: str, **kwargs: Any) -> BasicMemoizer:
        m = BasicMemoizer(**kwargs)
        m.start(run_dir=run_dir)
        memoizers.append(m)
        return m

    yield start
    for m in memoizers:
        m.close()


# --------------------------------------------------------------------------- keys


class Colour(enum.IntEnum):
    RED = 1


DISTINCT_VALUES: list[Any] = [
    None, 0, 1, -1, 2**100, "1", "", b"1", b"", True, False, 1.0, 0.0, -0.0, float("inf"),
    complex(1, 0), [], (), [1], (1,), [[1], 2], [1, [2]], [1, 2], [[1, 2]], ["ab"], ["a", "b"],
    {1}, frozenset({1}), set(), {1: None}, {"a": 1}, {"a": "1"}, {"a": [1]}, {"b": 1},
    pathlib.PurePosixPath("1"), Colour.RED, [None], [None, None],
]  # fmt: skip


def test_id_for_memo_distinct_values() -> None:
    keys = [id_for_memo(v) for v in DISTINCT_VALUES]
    assert all(isinstance(k, bytes) for k in keys)
    assert len(set(keys)) == len(keys)


def test_id_for_memo_equal_values_equal_keys() -> None:
    assert id_for_memo({"a": 1, "b": 2}) == id_for_memo({"b": 2, "a": 1})
    assert id_for_memo({"x", "y", "z"}) == id_for_memo({"z", "y", "x"})
    assert id_for_memo([1, "a", (2.5, None)]) == id_for_memo([1, "a", (2.5, None)])
    assert id_for_memo(pathlib.Path("a/b")) == id_for_memo(pathlib.PurePosixPath("a/b"))


STABLE_VALUE = "{'b': [1, 2.5, None, True], 'a': {'x', 'y', 'z', 'w'}, 3: (b'q', frozenset({'p', 'q', 'r'}))}"


def test_id_for_memo_stable_across_processes() -> None:
    script = f"from flowlib.dataflow.memoization import id_for_memo\nprint(id_for_memo({STABLE_VALUE}).hex())\n"
    here = id_for_memo(eval(STABLE_VALUE)).hex()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == here


def test_id_for_memo_unknown_type() -> None:
    class Opaque:
        pass

    with pytest.raises(ValueError, match=r"Opaque.*id_for_memo\.register"):
        id_for_memo(Opaque())
    with pytest.raises(ValueError, match="Opaque"):
        id_for_memo([1, {"k": Opaque()}])


def test_id_for_memo_register_custom_type() -> None:
    class Point:
        def __init__(self, x: int, y: int) -> None:
            self.x, self.y = x, y

    @id_for_memo.register(Point)
    def _(p: Point, output_ref: bool = False) -> bytes:
        return id_for_memo((p.x, p.y))

    assert id_for_memo(Point(1, 2)) == id_for_memo(Point(1, 2))
    assert id_for_memo(Point(1, 2)) != id_for_memo(Point(2, 1))
    assert id_for_memo([Point(1, 2)]) != id_for_memo([(1, 2), 3])


def test_id_for_memo_file_by_url() -> None:
    files = pytest.importorskip("flowlib.data_provider.files")
    a1, a2, b = files.File("/tmp/a.txt"), files.File("/tmp/a.txt"), files.File("/tmp/b.txt")
    assert id_for_memo(a1) == id_for_memo(a2)
    assert id_for_memo(a1) != id_for_memo(b)
    assert id_for_memo([a1], output_ref=True) == id_for_memo([a2], output_ref=True)


def _compile(body: str) -> Callable[..., Any]:
    namespace: dict[str, Any] = {}
    exec(compile(f"def work(x):\n    return {body}\n", "<generated>", "exec"), namespace)
    work: Callable[..., Any] = namespace["work"]
    return work


def test_function_identity_changes_with_body() -> None:
    v1, v1_again, v2 = _compile("x + 1"), _compile("x + 1"), _compile("x + 2")
    assert function_identity(v1) == function_identity(v1_again)
    assert function_identity(v1) != function_identity(v2)
    assert function_identity(_compile("x.a")) != function_identity(_compile("x.b"))


def test_function_identity_source_functions() -> None:
    def double(x: int) -> int:
        return 2 * x

    def triple(x: int) -> int:
        return 3 * x

    ident = function_identity(double)
    assert len(ident) == 64 and ident == function_identity(double)
    assert ident != function_identity(triple)
    assert id_for_memo(double) != id_for_memo(triple)
    p1, p2 = functools.partial(double, 1), functools.partial(double, 2)
    assert function_identity(p1) != function_identity(p2)
    assert function_identity(p1) == function_identity(functools.partial(double, 1))
    assert function_identity(len) != function_identity(abs)


# --------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"checkpoint_mode": "sometimes"}, ValueError, "task_exit.*periodic.*dfk_exit.*manual"),
        ({"checkpoint_period": "1:2"}, ValueError, "'1:2'"),
        ({"checkpoint_period": "00:00:00"}, ValueError, "00:00:00"),
        ({"checkpoint_mode": "periodic"}, ValueError, "checkpoint_period"),
        ({"memoize": "yes"}, TypeError, "memoize"),
        ({"checkpoint_files": "runinfo/000/checkpoint"}, TypeError, "checkpoint_files"),
        ({"checkpoint_files": [1]}, TypeError, "checkpoint_files"),
        ({"checkpoint_period": 60}, TypeError, "checkpoint_period"),
    ],
)
def test_basic_memoizer_validation(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        BasicMemoizer(**kwargs)


def test_constructor_does_no_io(tmp_path: pathlib.Path) -> None:
    missing = str(tmp_path / "nope")
    m = BasicMemoizer(checkpoint_files=[missing], checkpoint_mode="task_exit")
    assert not os.listdir(tmp_path)
    assert "checkpoint_mode='task_exit'" in repr(m)
    with pytest.raises(BadCheckpoint, match="nope"):
        m.start(run_dir=str(tmp_path / "000"))
    m.close()


def test_start_rejects_foreign_file(tmp_path: pathlib.Path) -> None:
    foreign = tmp_path / "results.pkl"
    foreign.write_bytes(b"\x80\x04not a checkpoint")
    m = BasicMemoizer(checkpoint_files=[str(foreign)])
    with pytest.raises(BadCheckpoint, match="results.pkl"):
        m.start(run_dir=str(tmp_path))


# ------------------------------------------------------------------ memo table


def test_hit_and_miss(tmp_path: pathlib.Path, started: Any) -> None:
    m = started(str(tmp_path))
    t1 = make_task(1, 2, 3, scale=4)
    assert m.check_memo(t1) is None
    assert t1.hashsum is not None and len(t1.hashsum) == 64
    m.update_memo_result(t1, 42)
    hit = m.check_memo(make_task(2, 2, 3, scale=4))
    assert hit is not None and hit.done() and hit.result() == 42
    assert m.check_memo(make_task(3, 2, 3, scale=5)) is None
    assert m.check_memo(make_task(4, 2, 3, scale=4, fn_hash="fn-2")) is None
    off = make_task(5, 2, 3, scale=4, memoize=False)
    assert m.check_memo(off) is None and off.hashsum is None


def test_memoize_false_disables_everything(tmp_path: pathlib.Path, started: Any) -> None:
    m = started(str(tmp_path), memoize=False)
    t1 = make_task(1, 1)
    assert m.check_memo(t1) is None
    m.update_memo_result(t1, 1)
    assert m.check_memo(make_task(2, 1)) is None


def test_ignore_for_cache_and_resource_keys(tmp_path: pathlib.Path, started: Any) -> None:
    m = started(str(tmp_path))
    t1 = make_task(1, 1, seed=5, walltime=10, ignore=["seed"])
    assert m.check_memo(t1) is None
    m.update_memo_result(t1, "r")
    same = make_task(2, 1, seed=6, walltime=99, parsl_resource_specification={"cores": 2}, ignore=["seed"])
    hit = m.check_memo(same)
    assert hit is not None and hit.result() == "r"
    assert m.check_memo(make_task(3, 1, seed=6)) is None


def test_in_flight_dedup(tmp_path: pathlib.Path, started: Any) -> None:
    m = started(str(tmp_path))
    first, twin = make_task(1, "x"), make_task(2, "x")
    assert m.check_memo(first) is None
    pending = m.check_memo(twin)
    assert pending is not None and not pending.done()
    assert pending is first.app_fu
    assert m.check_memo(first) is None  # a retry of the same task is not its own twin
    m.update_memo_result(first, "done")
    later = m.check_memo(make_task(3, "x"))
    assert later is not None and later is not first.app_fu and later.result() == "done"


def test_unknown_argument_type_propagates(tmp_path: pathlib.Path, started: Any) -> None:
    m = started(str(tmp_path))
    with pytest.raises(ValueError, match="id_for_memo.register"):
        m.check_memo(make_task(1, threading.Lock()))
    assert m.check_memo(make_task(2, threading.Lock(), memoize=False)) is None


def test_exceptions_memoized_in_memory_only(tmp_path: pathlib.Path, started: Any) -> None:
    run = tmp_path / "000"
    m = started(str(run), checkpoint_mode="task_exit")
    t1 = make_task(1, 7)
    m.check_memo(t1)
    boom = RuntimeError("transient")
    m.update_memo_exception(t1, boom)
    hit = m.check_memo(make_task(2, 7))
    assert hit is not None and hit.exception() is boom
    m.close()
    assert read_checkpoint(str(run / "checkpoint")) == {}
    resumed = started(str(tmp_path / "001"), checkpoint_files=[str(run / "checkpoint")])
    assert resumed.check_memo(make_task(3, 7)) is None


def test_from_memo_tasks_are_not_recorded(tmp_path: pathlib.Path, started: Any) -> None:
    m = started(str(tmp_path), checkpoint_mode="task_exit")
    t1 = make_task(1, 1)
    m.check_memo(t1)
    t1.from_memo = True
    m.update_memo_result(t1, 5)
    assert read_checkpoint(str(tmp_path / "checkpoint")) == {}


# ------------------------------------------------------------------ checkpointing


def _run_one(m: BasicMemoizer, tid: int, arg: Any, result: Any) -> TaskRecord:
    task = make_task(tid, arg)
    assert m.check_memo(task) is None
    m.update_memo_result(task, result)
    return task


def _resume_hits(tmp_path: pathlib.Path, expected: dict[Any, Any]) -> None:
    resumed = BasicMemoizer(checkpoint_files=get_all_checkpoints(str(tmp_path)))
    resumed.start(run_dir=str(tmp_path / "001"))
    try:
        for arg, result in expected.items():
            hit = resumed.check_memo(make_task(99, arg))
            assert hit is not None and hit.result() == result
    finally:
        resumed.close()


def test_checkpoint_task_exit(tmp_path: pathlib.Path) -> None:
    m = BasicMemoizer(checkpoint_mode="task_exit")
    m.start(run_dir=str(tmp_path / "000"))
    task = _run_one(m, 1, "a", {"v": 1})
    assert read_checkpoint(str(tmp_path / "000" / "checkpoint")) == {task.hashsum: {"v": 1}}
    m.close()
    m.close()
    _resume_hits(tmp_path, {"a": {"v": 1}})


def test_checkpoint_manual(tmp_path: pathlib.Path) -> None:
    m = BasicMemoizer(checkpoint_mode="manual")
    m.start(run_dir=str(tmp_path / "000"))
    ckpt = str(tmp_path / "000" / "checkpoint")
    _run_one(m, 1, "a", 1)
    assert read_checkpoint(ckpt) == {}
    m.checkpoint()
    assert list(read_checkpoint(ckpt).values()) == [1]
    _run_one(m, 2, "b", 2)
    m.close()
    assert sorted(read_checkpoint(ckpt).values()) == [1, 2]
    _resume_hits(tmp_path, {"a": 1, "b": 2})


def test_checkpoint_dfk_exit(tmp_path: pathlib.Path) -> None:
    m = BasicMemoizer(checkpoint_mode="dfk_exit")
    m.start(run_dir=str(tmp_path / "000"))
    ckpt = str(tmp_path / "000" / "checkpoint")
    _run_one(m, 1, "a", [1, 2])
    assert read_checkpoint(ckpt) == {}
    m.close()
    assert list(read_checkpoint(ckpt).values()) == [[1, 2]]
    _resume_hits(tmp_path, {"a": [1, 2]})


def test_checkpoint_periodic(tmp_path: pathlib.Path) -> None:
    m = BasicMemoizer(checkpoint_mode="periodic", checkpoint_period="00:00:01")
    m.start(run_dir=str(tmp_path / "000"))
    ckpt = str(tmp_path / "000" / "checkpoint")
    try:
        _run_one(m, 1, "a", "first")
        poll(lambda: len(read_checkpoint(ckpt)) == 1)
    finally:
        m.close()
    _resume_hits(tmp_path, {"a": "first"})


def test_periodic_close_is_prompt(tmp_path: pathlib.Path) -> None:
    m = BasicMemoizer(checkpoint_mode="periodic", checkpoint_period="01:00:00")
    m.start(run_dir=str(tmp_path))
    _run_one(m, 1, "a", 3)
    before = time.monotonic()
    m.close()
    assert time.monotonic() - before < 5
    assert not any(t.name == "flowlib-checkpoint-periodic" for t in threading.enumerate())
    assert list(read_checkpoint(str(tmp_path / "checkpoint")).values()) == [3]


def test_unpicklable_result_is_skipped(tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    m = BasicMemoizer(checkpoint_mode="manual")
    m.start(run_dir=str(tmp_path))
    _run_one(m, 7, "lock", threading.Lock())
    _run_one(m, 8, "fine", "ok")
    with caplog.at_level(logging.WARNING, logger="flowlib.dataflow.memoization"):
        m.close()
    assert "task 7" in caplog.text
    assert list(read_checkpoint(str(tmp_path / "checkpoint")).values()) == ["ok"]


def test_checkpoint_files_accepts_file_paths(tmp_path: pathlib.Path, started: Any) -> None:
    m = BasicMemoizer(checkpoint_mode="task_exit")
    m.start(run_dir=str(tmp_path / "000"))
    _run_one(m, 1, 5, 25)
    m.close()
    ckpt_file = str(tmp_path / "000" / "checkpoint" / "tasks.ckpt")
    resumed = started(str(tmp_path / "001"), checkpoint_files=[ckpt_file])
    hit = resumed.check_memo(make_task(2, 5))
    assert hit is not None and hit.result() == 25


def test_concurrent_check_and_update(tmp_path: pathlib.Path, started: Any) -> None:
    m = started(str(tmp_path), checkpoint_mode="task_exit")
    errors: list[BaseException] = []

    def worker(base: int) -> None:
        try:
            for i in range(200):
                task = make_task(base + i, i % 50)
                if m.check_memo(task) is None:
                    m.update_memo_result(task, i % 50)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    m.close()
    assert sorted(set(read_checkpoint(str(tmp_path / "checkpoint")).values())) == list(range(50))
