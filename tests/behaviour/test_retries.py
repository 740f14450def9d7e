"""Retries: Config(retries=N), retry_handler costs, and no retries of dependency failures.

Tries are counted with marker files, so the count is right wherever tasks run.
"""

from __future__ import annotations

import os

import pytest

import flowlib
from flowlib import python_app
from flowlib.dataflow.errors import DependencyError

pytestmark = pytest.mark.timeout(60)


class FlakyError(Exception):
    pass


@python_app
def flaky(marker_dir, failures, value):
    """Fail the first ``failures`` tries, then return ``value``; each try leaves a file."""
    os.makedirs(marker_dir, exist_ok=True)
    tries = len(os.listdir(marker_dir))
    with open(os.path.join(marker_dir, f"try-{tries}"), "w"):
        pass
    if tries < failures:
        raise FlakyError(f"try {tries} fails")
    return value


@python_app
def record_and_return(marker_dir, x):
    os.makedirs(marker_dir, exist_ok=True)
    with open(os.path.join(marker_dir, f"ran-{len(os.listdir(marker_dir))}"), "w"):
        pass
    return x


def tries(marker_dir):
    return len(os.listdir(marker_dir)) if os.path.isdir(marker_dir) else 0


def test_retries_until_success(make_config, tmp_path):
    markers = str(tmp_path / "flaky")
    with flowlib.load(make_config(retries=2)):
        fut = flaky(markers, 2, "ok")
        assert fut.result(timeout=20) == "ok"
        assert tries(markers) == 3
        assert fut.task_record.fail_count == 2
        assert fut.task_status() == "exec_done"


def test_exceeding_retries_fails_with_original_exception(make_config, tmp_path):
    markers = str(tmp_path / "flaky")
    with flowlib.load(make_config(retries=2)):
        fut = flaky(markers, 10, "never")
        with pytest.raises(FlakyError, match="try 2 fails"):
            fut.result(timeout=20)
        assert tries(markers) == 3
        assert fut.task_record.fail_count == 3
        assert fut.task_status() == "failed"


def test_no_retries_by_default(make_config, tmp_path):
    markers = str(tmp_path / "flaky")
    with flowlib.load(make_config()):
        with pytest.raises(FlakyError):
            flaky(markers, 1, "x").result(timeout=20)
        assert tries(markers) == 1


def half_cost(exception, task_record):
    return 0.5


def prohibitive_cost(exception, task_record):
    return 10


def test_retry_handler_small_cost_allows_more_tries(make_config, tmp_path):
    markers = str(tmp_path / "flaky")
    with flowlib.load(make_config(retries=2, retry_handler=half_cost)):
        # costs 0.5, 1.0, 1.5, 2.0 stay within the budget of 2: five tries in all
        fut = flaky(markers, 4, "fifth time lucky")
        assert fut.result(timeout=20) == "fifth time lucky"
        assert tries(markers) == 5
        assert fut.task_record.fail_count == 4


def test_retry_handler_half_cost_gives_exactly_five_tries(make_config, tmp_path):
    markers = str(tmp_path / "flaky")
    with flowlib.load(make_config(retries=2, retry_handler=half_cost)):
        fut = flaky(markers, 100, "never")
        with pytest.raises(FlakyError, match="try 4 fails"):
            fut.result(timeout=30)
        # sums 0.5, 1.0, 1.5, 2.0 are within retries=2; the fifth failure (2.5) is not
        assert tries(markers) == 5
        assert fut.task_record.fail_count == 5
        assert fut.task_record.fail_cost == 2.5


def free_retry_then_stop(exception, task_record):
    return 0 if task_record["fail_count"] < 3 else 1


def test_retry_handler_is_consulted_with_zero_retries(make_config, tmp_path):
    markers = str(tmp_path / "flaky")
    with flowlib.load(make_config(retries=0, retry_handler=free_retry_then_stop)):
        fut = flaky(markers, 100, "never")
        with pytest.raises(FlakyError):
            fut.result(timeout=30)
        # failures 1 and 2 cost nothing (sum 0 <= 0), failure 3 costs 1
        assert tries(markers) == 3


def test_retry_handler_large_cost_stops_at_once(make_config, tmp_path):
    markers = str(tmp_path / "flaky")
    with flowlib.load(make_config(retries=2, retry_handler=prohibitive_cost)):
        fut = flaky(markers, 1, "unreached")
        with pytest.raises(FlakyError, match="try 0 fails"):
            fut.result(timeout=20)
        assert tries(markers) == 1


def test_retry_handler_sees_exception_and_record(make_config, tmp_path):
    seen_dir = tmp_path / "seen"
    seen_dir.mkdir()

    def handler(exception, task_record):
        # the handler runs in the kernel's process; it may still only use files here
        name = f"{type(exception).__name__}-{task_record['fail_count']}-{task_record['func_name']}"
        (seen_dir / name).touch()
        return 1

    markers = str(tmp_path / "flaky")
    with flowlib.load(make_config(retries=3, retry_handler=handler)):
        assert flaky(markers, 2, 7).result(timeout=20) == 7
    assert sorted(os.listdir(seen_dir)) == ["FlakyError-1-flaky", "FlakyError-2-flaky"]


def test_retry_handler_that_raises(make_config, tmp_path):
    def broken_handler(exception, task_record):
        raise RuntimeError("the retry handler broke")

    markers = str(tmp_path / "flaky")
    with flowlib.load(make_config(retries=2, retry_handler=broken_handler)) as dfk:
        fut = flaky(markers, 5, "unreached")
        with pytest.raises(RuntimeError, match="the retry handler broke"):
            fut.result(timeout=20)
        assert tries(markers) == 1
        # the kernel keeps working
        assert flaky(str(tmp_path / "other"), 0, "fine").result(timeout=20) == "fine"
        assert not dfk.cleanup_called


def not_a_cost(exception, task_record):
    return "cheap"


def test_retry_handler_returning_a_non_number_fails_the_task(make_config, tmp_path):
    markers = str(tmp_path / "flaky")
    with flowlib.load(make_config(retries=2, retry_handler=not_a_cost)):
        fut = flaky(markers, 5, "unreached")
        with pytest.raises(TypeError, match="must return a number") as info:
            fut.result(timeout=20)
        assert isinstance(info.value.__context__, FlakyError)
        assert tries(markers) == 1
        assert fut.task_status() == "failed"


def test_retry_handler_raising_base_exception_is_reported(make_config, tmp_path):
    def exiting_handler(exception, task_record):
        raise SystemExit(7)

    markers = str(tmp_path / "flaky")
    with flowlib.load(make_config(retries=2, retry_handler=exiting_handler)):
        fut = flaky(markers, 5, "unreached")
        assert isinstance(fut.exception(timeout=20), SystemExit)
        assert flaky(str(tmp_path / "other"), 0, "fine").result(timeout=20) == "fine"


def test_dependency_failures_are_not_retried(make_config, tmp_path):
    upstream_markers = str(tmp_path / "upstream")
    downstream_markers = str(tmp_path / "downstream")
    with flowlib.load(make_config(retries=2)):
        upstream = flaky(upstream_markers, 100, "never")
        downstream = record_and_return(downstream_markers, upstream)
        with pytest.raises(DependencyError):
            downstream.result(timeout=20)
        assert isinstance(upstream.exception(), FlakyError)
        assert tries(upstream_markers) == 3  # the upstream task was retried ...
        assert tries(downstream_markers) == 0  # ... the dependent task never ran
        assert downstream.task_record.fail_count == 0
        assert downstream.task_status() == "dep_fail"
