"""Memoization and checkpoints as Parsl programs use them (Parsl's documented keywords and helpers)."""

from __future__ import annotations

import os
import pickle
from typing import Any

import pytest

import flowlib
from flowlib import bash_app, python_app
from flowlib.config import Config
from flowlib.data_provider.files import File
from flowlib.dataflow.memoization import BasicMemoizer, id_for_memo
from flowlib.executors.threads import ThreadPoolExecutor
from flowlib.utils import get_all_checkpoints, get_last_checkpoint

pytestmark = pytest.mark.timeout(60)

CALLS: list[Any] = []


@python_app(cache=True)
def square(x):
    CALLS.append(x)
    return x * x


@bash_app(cache=True)
def count_lines(source, stdout=None):
    return f"wc -l < {source.filepath}"


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y


@id_for_memo.register(Point)
def _point_key(point: Point, output_ref: bool = False) -> bytes:
    return pickle.dumps((point.x, point.y))  # as Parsl's documentation shows: bytes


class Label:
    def __init__(self, text: str) -> None:
        self.text = text


@id_for_memo.register(Label)
def _label_key(label: Label, output_ref: bool = False) -> str:
    return label.text  # a str key, as many Parsl programs' key functions return


@python_app(cache=True)
def describe(thing):
    CALLS.append(thing)
    return type(thing).__name__


@pytest.fixture(autouse=True)
def _fresh_calls():
    CALLS.clear()


def run(config: Config, *values: int) -> list[int]:
    with flowlib.load(config):
        return [square(v).result(timeout=20) for v in values]


def threads() -> list[ThreadPoolExecutor]:
    return [ThreadPoolExecutor(max_threads=2)]


def test_key_functions_returning_bytes_or_str_memoize(tmp_path):
    with flowlib.load(Config(executors=threads(), run_dir=str(tmp_path))):
        assert describe(Point(1, 2)).result(timeout=20) == "Point"
        assert describe(Point(1, 2)).result(timeout=20) == "Point"
        assert describe(Point(2, 1)).result(timeout=20) == "Point"
        assert describe(Label("a")).result(timeout=20) == "Label"
        assert describe(Label("a")).result(timeout=20) == "Label"
        assert describe(Label("b")).result(timeout=20) == "Label"
    assert [(type(c).__name__, getattr(c, "x", getattr(c, "text", None))) for c in CALLS] == [
        ("Point", 1),
        ("Point", 2),
        ("Label", "a"),
        ("Label", "b"),
    ]


def test_str_and_bytes_keys_do_not_collide():
    assert id_for_memo([Label("ab")]) != id_for_memo([b"ab"])
    assert id_for_memo([Label("ab")]) != id_for_memo(["ab"])


def test_a_key_function_returning_another_type_is_refused():
    class Odd:
        pass

    id_for_memo.register(Odd, lambda obj, output_ref=False: 42)
    with pytest.raises(TypeError, match="Odd returned int, expected bytes"):
        id_for_memo([Odd()])


def test_bash_app_with_a_file_argument_is_cached(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("one\ntwo\n")
    with flowlib.load(Config(executors=threads(), run_dir=str(tmp_path / "runinfo"))):
        first = count_lines(File(str(source)), stdout=str(tmp_path / "first.out"))
        assert first.result(timeout=20) == 0
        second = count_lines(File(str(source)), stdout=str(tmp_path / "first.out"))
        assert second.result(timeout=20) == 0
    assert (tmp_path / "first.out").read_text().strip() == "2"


@pytest.mark.parametrize("mode", ["task_exit", "periodic", "dfk_exit", "manual"])
def test_config_keywords_write_checkpoints_that_a_later_run_loads(tmp_path, mode):
    rundir = str(tmp_path / "runinfo")
    period = "00:00:01" if mode == "periodic" else None
    config = Config(executors=threads(), run_dir=rundir, checkpoint_mode=mode, checkpoint_period=period)
    with flowlib.load(config) as dfk:
        assert [square(v).result(timeout=20) for v in (2, 3)] == [4, 9]
        if mode == "manual":
            assert dfk.checkpoint() == os.path.join(dfk.run_dir, "checkpoint")
    assert CALLS == [2, 3]
    assert len(get_all_checkpoints(rundir)) == 1
    assert run(Config(executors=threads(), run_dir=rundir, checkpoint_files=get_all_checkpoints(rundir)), 2, 3, 4) == [
        4,
        9,
        16,
    ]
    assert CALLS == [2, 3, 4]  # only the new value ran


def test_checkpoint_files_as_a_list_of_get_last_checkpoint(tmp_path):
    rundir = str(tmp_path / "runinfo")
    run(Config(executors=threads(), run_dir=rundir, checkpoint_mode="task_exit"), 5)
    assert run(Config(executors=threads(), run_dir=rundir, checkpoint_files=[get_last_checkpoint(rundir)]), 5) == [25]
    assert CALLS == [5]


def test_checkpoint_keywords_set_as_attributes_in_the_default_run_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # Parsl's layout: ./runinfo/000, ./runinfo/001, ...
    config = Config(executors=threads())
    config.checkpoint_mode = "task_exit"
    run(config, 6)
    later = Config(executors=threads())
    later.checkpoint_files = get_all_checkpoints()
    assert run(later, 6) == [36]
    assert CALLS == [6]
    assert sorted(os.listdir("runinfo")) == ["000", "001"]


def test_app_cache_false_turns_caching_off(tmp_path):
    assert run(Config(executors=threads(), run_dir=str(tmp_path), app_cache=False), 7, 7) == [49, 49]
    assert CALLS == [7, 7]


def test_memoizer_and_checkpoint_keywords_together_are_refused(tmp_path):
    config = Config(executors=threads(), run_dir=str(tmp_path), memoizer=BasicMemoizer(), checkpoint_mode="manual")
    with pytest.raises(ValueError, match=r"memoizer= and also checkpoint_mode"):
        flowlib.load(config)
    assert not os.path.exists(tmp_path / "000")  # refused before a run directory was made


def test_bad_checkpoint_keywords_name_themselves():
    with pytest.raises(TypeError, match="checkpoint_mode"):
        Config(checkpoint_mode="sometimes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="checkpoint_files"):
        Config(checkpoint_files="runinfo/000/checkpoint")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="checkpoint_files must be a list of paths"):
        BasicMemoizer(checkpoint_files=[[3]])  # type: ignore[list-item]


class ParslStyleMemoizer(BasicMemoizer):
    def start(self, *, run_dir: str, config_run_dir: str | None = None) -> None:
        self.seen = (run_dir, config_run_dir)
        super().start(run_dir=run_dir)


def test_a_memoizer_with_parsls_start_signature_gets_config_run_dir(tmp_path):
    memoizer = ParslStyleMemoizer()
    with flowlib.load(Config(executors=threads(), run_dir=str(tmp_path), memoizer=memoizer)) as dfk:
        assert square(8).result(timeout=20) == 64
    assert memoizer.seen == (dfk.run_dir, str(tmp_path))
