"""Memoization with cache=True: results and exceptions reused, keys and their limits.

Whether a task body ran is counted in a file, so the proof holds wherever tasks run.
"""

from __future__ import annotations

import os

import pytest

import flowlib
from flowlib import python_app
from flowlib.dataflow.memoization import BasicMemoizer, id_for_memo

pytestmark = pytest.mark.timeout(60)


def runs(counter):
    if not os.path.exists(counter):
        return []
    with open(counter) as f:
        return f.read().split()


def note_run(counter, tag):
    with open(counter, "a") as f:
        f.write(f"{tag}\n")


@python_app(cache=True)
def cached_square(counter, x):
    note_run(counter, x)
    return x * x


@python_app(cache=True, ignore_for_cache=["note"])
def cached_with_note(counter, x, note=""):
    note_run(counter, f"{x}:{note}")
    return f"{x}:{note}"


@python_app(cache=True)
def cached_failure(counter, x):
    note_run(counter, x)
    raise ValueError(f"failed for {x}")


@python_app
def uncached(counter, x):
    note_run(counter, x)
    return x + 1


@python_app(cache=True)
def cached_describe(counter, thing):
    note_run(counter, "describe")
    return repr(thing.value) if hasattr(thing, "value") else repr(thing)


@python_app(cache=True)
def fails_once_cached(counter, marker_dir, x):
    note_run(counter, x)
    os.makedirs(marker_dir, exist_ok=True)
    if not os.listdir(marker_dir):
        open(os.path.join(marker_dir, "failed-once"), "w").close()
        raise RuntimeError("first try fails")
    return 10 * x


class NoKeyFunction:
    def __init__(self, value):
        self.value = value


class KeyedThing:
    def __init__(self, value):
        self.value = value


@id_for_memo.register(KeyedThing)
def _key_of_keyed_thing(obj, output_ref=False):
    return b"KeyedThing:" + repr(obj.value).encode()


def test_cache_reuses_result(dfk, tmp_path):
    counter = str(tmp_path / "counter")
    assert cached_square(counter, 7).result(timeout=10) == 49
    second = cached_square(counter, 7)
    assert second.result(timeout=10) == 49
    assert runs(counter) == ["7"]
    assert second.task_status() == "memo_done"


def test_concurrent_equal_calls_run_once(dfk, tmp_path):
    counter = str(tmp_path / "counter")
    futs = [cached_square(counter, 3) for _ in range(5)]
    assert [f.result(timeout=10) for f in futs] == [9] * 5
    assert runs(counter) == ["3"]


def test_different_arguments_give_different_results(dfk, tmp_path):
    counter = str(tmp_path / "counter")
    assert [cached_square(counter, i).result(timeout=10) for i in (1, 2, 3)] == [1, 4, 9]
    assert sorted(runs(counter)) == ["1", "2", "3"]
    # equal-looking values of different types are different keys
    assert cached_square(counter, 2.0).result(timeout=10) == 4.0
    assert sorted(runs(counter)) == ["1", "2", "2.0", "3"]


def test_ignore_for_cache(dfk, tmp_path):
    counter = str(tmp_path / "counter")
    assert cached_with_note(counter, 1, note="first").result(timeout=10) == "1:first"
    # only the ignored argument differs: the first result comes back
    assert cached_with_note(counter, 1, note="second").result(timeout=10) == "1:first"
    assert cached_with_note(counter, 2, note="second").result(timeout=10) == "2:second"
    assert runs(counter) == ["1:first", "2:second"]


def test_exception_is_memoized(dfk, tmp_path):
    counter = str(tmp_path / "counter")
    first = cached_failure(counter, 5).exception(timeout=10)
    second = cached_failure(counter, 5).exception(timeout=10)
    assert type(first) is ValueError and type(second) is ValueError
    assert str(first) == str(second) == "failed for 5"
    assert runs(counter) == ["5"]


def test_argument_without_key_function_fails_the_task(dfk, tmp_path):
    counter = str(tmp_path / "counter")
    others = [cached_square(counter, i) for i in range(3)]
    bad = cached_describe(counter, NoKeyFunction(1))
    with pytest.raises(ValueError, match="NoKeyFunction"):
        bad.result(timeout=10)
    assert [f.result(timeout=10) for f in others] == [0, 1, 4]
    assert "describe" not in runs(counter)
    assert uncached(counter, 1).result(timeout=10) == 2  # the kernel keeps working


def test_registered_key_function_makes_a_type_cacheable(dfk, tmp_path):
    counter = str(tmp_path / "counter")
    assert cached_describe(counter, KeyedThing([1, 2])).result(timeout=10) == "[1, 2]"
    assert cached_describe(counter, KeyedThing([1, 2])).result(timeout=10) == "[1, 2]"
    assert runs(counter) == ["describe"]
    assert cached_describe(counter, KeyedThing([3])).result(timeout=10) == "[3]"
    assert runs(counter) == ["describe", "describe"]


def test_key_uses_the_value_of_a_future_argument(dfk, tmp_path):
    counter = str(tmp_path / "counter")
    plain = uncached(str(tmp_path / "other"), 5)  # returns 6
    assert cached_square(counter, plain).result(timeout=10) == 36
    assert cached_square(counter, uncached(str(tmp_path / "other"), 5)).result(timeout=10) == 36
    assert cached_square(counter, 6).result(timeout=10) == 36
    assert runs(counter) == ["6"]


def test_edited_function_is_a_cache_miss(dfk, tmp_path):
    counter = str(tmp_path / "counter")

    def make_first():
        @python_app(cache=True)
        def compute(counter, x):
            note_run(counter, "first")
            return x + 1

        return compute

    def make_second():
        @python_app(cache=True)
        def compute(counter, x):
            note_run(counter, "second")
            return x + 2

        return compute

    first, second = make_first(), make_second()
    assert first.__name__ == second.__name__ == "compute"
    assert first(counter, 1).result(timeout=10) == 2
    assert second(counter, 1).result(timeout=10) == 3
    assert first(counter, 1).result(timeout=10) == 2
    assert runs(counter) == ["first", "second"]


def test_retried_result_is_cached(make_config, tmp_path):
    counter = str(tmp_path / "counter")
    markers = str(tmp_path / "markers")
    with flowlib.load(make_config(retries=2)):
        assert fails_once_cached(counter, markers, 3).result(timeout=10) == 30
        assert fails_once_cached(counter, markers, 3).result(timeout=10) == 30
    assert runs(counter) == ["3", "3"]  # one failed try, one good one, then the cache


def test_no_cache_by_default(dfk, tmp_path):
    counter = str(tmp_path / "counter")
    assert uncached(counter, 1).result(timeout=10) == 2
    assert uncached(counter, 1).result(timeout=10) == 2
    assert runs(counter) == ["1", "1"]


def test_cache_without_memoizer_memoize_flag(make_config, tmp_path):
    counter = str(tmp_path / "counter")
    with flowlib.load(make_config(memoizer=BasicMemoizer(memoize=False))):
        assert cached_square(counter, 4).result(timeout=10) == 16
        assert cached_square(counter, 4).result(timeout=10) == 16
    assert runs(counter) == ["4", "4"]
