"""Config validation: wrong types and values name the keyword; labels are checked."""

from __future__ import annotations

import pytest

import flowlib
from flowlib import python_app
from flowlib.config import Config
from flowlib.dataflow.memoization import BasicMemoizer
from flowlib.errors import ConfigurationError
from flowlib.executors.threads import ThreadPoolExecutor

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("keyword", "value", "expected"),
    [
        ("retries", "3", "int"),
        ("executors", ThreadPoolExecutor(), "list"),
        ("executors", ["not an executor"], "FlowlibExecutor"),
        ("exit_mode", "later", "Literal"),
        ("garbage_collect", "yes", "bool"),
        ("run_dir", 5, "str"),
        ("retry_handler", 5, "Callable"),
        ("memoizer", "basic", "Memoizer"),
        ("initialize_logging", "yes", "bool"),
        ("strategy_period", "5", "float"),
        ("monitoring", object(), "MonitoringHub"),
    ],
)
def test_wrong_type_names_the_keyword(keyword, value, expected):
    with pytest.raises(TypeError, match=f"Config argument '{keyword}' must be .*{expected}"):
        Config(**{keyword: value})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"retries": -1}, "retries"),
        ({"strategy": "fast"}, "strategy"),
        ({"internal_tasks_max_threads": 0}, "internal_tasks_max_threads"),
    ],
)
def test_bad_values_name_the_keyword(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Config(**kwargs)


def test_thread_pool_executor_validation():
    with pytest.raises(TypeError, match="ThreadPoolExecutor argument 'max_threads' must be int"):
        ThreadPoolExecutor(max_threads="2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_threads"):
        ThreadPoolExecutor(max_threads=0)


def test_memoizer_validation():
    with pytest.raises(ValueError, match="task_exit"):
        BasicMemoizer(checkpoint_mode="sometimes")  # type: ignore[arg-type]


def test_duplicate_labels_fail_at_load(tmp_path):
    config = Config(run_dir=str(tmp_path), executors=[ThreadPoolExecutor(label="a"), ThreadPoolExecutor(label="a")])
    with pytest.raises(ConfigurationError, match=r"unique.*\['a'\]"):
        flowlib.load(config)


def test_reserved_label(tmp_path):
    with pytest.raises(ConfigurationError, match="reserved"):
        flowlib.load(Config(run_dir=str(tmp_path), executors=[ThreadPoolExecutor(label="_flowlib_internal")]))


def test_unknown_executor_label_fails_at_call_naming_known_labels(tmp_path):
    @python_app(executors=["gpu"])
    def f():
        return 1

    config = Config(run_dir=str(tmp_path), executors=[ThreadPoolExecutor(label="cpu"), ThreadPoolExecutor(label="io")])
    with flowlib.load(config):
        with pytest.raises(ValueError, match=r"unknown executor\(s\) \['gpu'\].*\['cpu', 'io'\]"):
            f()

        @python_app(executors=["io"])
        def g():
            import threading

            return threading.current_thread().name

        assert "io" in g().result()


def test_config_repr_lists_arguments():
    text = repr(Config(retries=2, run_dir="x"))
    assert text.startswith("Config(") and "retries=2" in text and "run_dir='x'" in text


def test_default_executor_is_a_thread_pool():
    (executor,) = Config().executors
    assert isinstance(executor, ThreadPoolExecutor)


@pytest.mark.parametrize("level", [0, 1, 2, 3, True, False])
def test_usage_tracking_takes_parsl_levels_and_bools(level):
    assert Config(usage_tracking=level).usage_tracking == level


@pytest.mark.parametrize("level", [-1, 4])
def test_usage_tracking_outside_parsl_levels_is_a_configuration_error(level):
    with pytest.raises(ConfigurationError, match="usage_tracking"):
        Config(usage_tracking=level)


def test_thread_pool_working_dir_is_not_the_bash_app_cwd(tmp_path, monkeypatch):
    from flowlib import bash_app

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(tmp_path)

    @bash_app
    def touch():
        return "touch made_here"

    config = Config(executors=[ThreadPoolExecutor(working_dir=str(elsewhere))], run_dir=str(tmp_path / "runinfo"))
    with flowlib.load(config):
        assert touch().result() == 0
    assert (tmp_path / "made_here").exists()
    assert not (elsewhere / "made_here").exists()
