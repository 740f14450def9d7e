"""Parsl module paths and call shapes that user code relies on (alias-harness groups B4, B9).

``flowlib.jobs.error_handlers``, ``flowlib.logconfigs.base.LogConfig``,
``flowlib.executors.status_handling``, ``flowlib.providers.kubernetes.kube``,
``flowlib.executors.high_throughput.manager_selector``, and
``HighThroughputExecutor.connected_managers`` both as attribute and as call.
"""

from __future__ import annotations

import functools
import importlib
from pathlib import Path
from typing import Any

import pytest
from conftest import try_assert

import flowlib
from flowlib import python_app
from flowlib.config import Config
from flowlib.executors.block_provider import BlockProviderExecutor as FlowlibBlockProviderExecutor
from flowlib.executors.errors import BadStateException
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.executors.high_throughput.manager_selector import (
    BlockIdManagerSelector,
    ManagerSelector,
    RandomManagerSelector,
)
from flowlib.executors.status_handling import BlockProviderExecutor
from flowlib.jobs.error_handlers import noop_error_handler, simple_error_handler, windowed_error_handler
from flowlib.jobs.states import JobState, JobStatus
from flowlib.providers import LocalProvider

pytestmark = pytest.mark.timeout(60)


def test_same_objects_under_both_paths() -> None:
    from flowlib.logconfigs.base import LogConfig, LoggingConfig
    from flowlib.providers.kubernetes import KubernetesProvider
    from flowlib.providers.kubernetes.kube import KubernetesProvider as KubeModuleProvider

    assert LogConfig is LoggingConfig
    assert importlib.import_module("flowlib.logconfigs").LogConfig is LoggingConfig
    assert BlockProviderExecutor is FlowlibBlockProviderExecutor
    assert issubclass(HighThroughputExecutor, BlockProviderExecutor)
    assert KubeModuleProvider is KubernetesProvider
    assert importlib.import_module("flowlib.providers").KubernetesProvider is KubernetesProvider
    kube = importlib.import_module("flowlib.providers.kubernetes")
    assert kube.POD_PHASES["Running"] is JobState.RUNNING  # the documented table is still at the old path


class FakeExecutor:
    label = "fake"

    def __init__(self) -> None:
        self.errors: list[BaseException] = []

    def set_bad_state_and_fail_all(self, exc: BaseException) -> None:
        self.errors.append(exc)


def states(*names: str) -> dict[str, JobStatus]:
    return {
        str(i): JobStatus(JobState[name], message="boom" if name == "FAILED" else None) for i, name in enumerate(names)
    }


@pytest.mark.parametrize(
    ("blocks", "simple", "windowed"),
    [
        ((), False, False),
        (("FAILED", "FAILED"), False, False),  # fewer blocks than the threshold (3)
        (("FAILED", "MISSING", "FAILED"), True, True),
        (("COMPLETED", "FAILED", "FAILED", "FAILED"), False, True),  # one block ran: only the window says bad
        (("FAILED", "FAILED", "FAILED", "RUNNING"), False, False),  # the newest block is fine
    ],
)
def test_error_handler_rules(blocks: tuple[str, ...], simple: bool, windowed: bool) -> None:
    for handler, expected in (
        (simple_error_handler, simple),
        (windowed_error_handler, windowed),
        (noop_error_handler, False),
    ):
        executor = FakeExecutor()
        handler(executor, states(*blocks))  # type: ignore[arg-type]
        assert bool(executor.errors) is expected, (handler.__name__, blocks)
        for error in executor.errors:
            assert isinstance(error, BadStateException) and "block" in str(error) and "FAILED" in str(error)


def test_windowed_orders_block_ids_as_numbers() -> None:
    # Blocks 8, 9, 10 failed; block 2 completed. As strings "10" < "2", which would hide the window.
    status = {"2": JobStatus(JobState.COMPLETED)} | {b: JobStatus(JobState.FAILED) for b in ("8", "9", "10")}
    executor = FakeExecutor()
    windowed_error_handler(executor, status)  # type: ignore[arg-type]
    assert len(executor.errors) == 1


def test_threshold_is_checked_and_partial_works() -> None:
    with pytest.raises(ValueError, match="threshold must be an int of at least 1, got 0"):
        simple_error_handler(FakeExecutor(), states("FAILED"), threshold=0)  # type: ignore[arg-type]
    executor = FakeExecutor()
    functools.partial(windowed_error_handler, threshold=1)(executor, states("COMPLETED", "FAILED"))  # type: ignore[arg-type]
    assert len(executor.errors) == 1


class CustomExecutor(BlockProviderExecutor):
    """A minimal executor written against Parsl's base-class path, with one of Parsl's handlers."""

    def __init__(self, provider: LocalProvider) -> None:
        super().__init__(provider=provider, block_error_handler=functools.partial(simple_error_handler, threshold=2))
        self.label = "custom"
        self.failed_with: list[BaseException] = []

    def launch_command(self, block_id: str) -> str:
        return "true"

    @property
    def outstanding(self) -> int:
        return 0

    def fail_all_outstanding(self, exc: BaseException) -> None:
        self.failed_with.append(exc)

    def start(self) -> None:
        pass

    def submit(self, func: Any, resource_specification: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def shutdown(self) -> None:
        pass


def test_handler_wired_into_a_block_provider_executor() -> None:
    provider = LocalProvider(init_blocks=0, max_blocks=2)  # no script_dir: every submit fails
    executor = CustomExecutor(provider)
    executor.scale_out(1)
    executor.poll_blocks(force=True)
    assert not executor.bad_state_is_set  # one failed block, threshold 2
    executor.scale_out(1)
    executor.poll_blocks(force=True)
    assert executor.bad_state_is_set
    (error,) = executor.failed_with
    assert "all 2 blocks failed (threshold 2)" in str(error) and "script_dir is not set" in str(error)


def test_htex_takes_parsl_handlers_and_selectors() -> None:
    for selector in (RandomManagerSelector(), BlockIdManagerSelector(), None):
        executor = HighThroughputExecutor(manager_selector=selector, block_error_handler=windowed_error_handler)
        assert executor.manager_selector is selector
        assert executor.block_error_handler is windowed_error_handler
    assert HighThroughputExecutor(block_error_handler=False).block_error_handler is noop_error_handler
    assert isinstance(RandomManagerSelector(), ManagerSelector)
    assert repr(BlockIdManagerSelector()) == "BlockIdManagerSelector()"
    with pytest.raises(TypeError, match="'manager_selector' must be None or a ManagerSelector .* got str"):
        HighThroughputExecutor(manager_selector="random")  # type: ignore[arg-type]


def test_connected_managers_attribute_and_call(tmp_path: Path) -> None:
    executor = HighThroughputExecutor(
        label="htex", max_workers_per_node=1, provider=LocalProvider(init_blocks=1, max_blocks=1)
    )
    assert executor.connected_managers == [] and executor.connected_managers() == []  # not started yet
    dfk = flowlib.load(Config(executors=[executor], run_dir=str(tmp_path / "run"), strategy="none"))
    try:
        assert double(21).result(timeout=40) == 42
        try_assert(lambda: len(executor.connected_managers()) == 1, timeout=20, message="no pool registered")
        called = executor.connected_managers()
        read = executor.connected_managers
        assert isinstance(called, list) and isinstance(called[0], dict)
        assert [m["block_id"] for m in called] == [m["block_id"] for m in read] == ["0"]
        assert called() is called  # the list returns itself when called again
    finally:
        dfk.cleanup()


@python_app
def double(x: int) -> int:
    return 2 * x
