"""Shared fixtures: executors to parametrize over, a loaded kernel, and leak checks."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import flowlib
from flowlib.config import Config
from flowlib.dataflow.dflow import DataFlowKernel, DataFlowKernelLoader
from flowlib.executors.base import FlowlibExecutor
from flowlib.executors.threads import ThreadPoolExecutor


def make_threads(tmp_path: Any) -> FlowlibExecutor:
    return ThreadPoolExecutor(label="exec", max_threads=4)


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_htex(tmp_path: Any) -> FlowlibExecutor:
    from flowlib.executors.high_throughput.executor import HighThroughputExecutor
    from flowlib.providers import LocalProvider

    # Workers import the test modules that define the apps, so they need the repository on their path.
    worker_init = f"export PYTHONPATH={REPO_ROOT}:{REPO_ROOT}/tests${{PYTHONPATH:+:$PYTHONPATH}}"
    return HighThroughputExecutor(
        label="exec",
        max_workers_per_node=2,
        heartbeat_period=2,
        heartbeat_threshold=10,
        provider=LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1, worker_init=worker_init),
    )


def make_globus_compute(tmp_path: Any) -> FlowlibExecutor:
    # The real SDK Executor, a fake web service, real RabbitMQ and endpoint engine (tests/gce/).
    from gce.harness import make_executor

    return make_executor(tmp_path)


def make_dask(tmp_path: Any) -> FlowlibExecutor:
    # One real LocalCluster with worker processes per pytest process (tests/dask_support.py).
    from dask_support import make_executor

    return make_executor(tmp_path)


def make_flux(tmp_path: Any) -> FlowlibExecutor:
    # The fake Flux of tests/fakeflux/ (flux-core cannot be installed here; see tests/flux_support.py).
    from flux_support import make_executor

    return make_executor(tmp_path)


def make_radical_pilot(tmp_path: Any) -> FlowlibExecutor:
    # One real local RADICAL-Pilot session per pytest process, borrowed by each test (tests/rp_support.py).
    pytest.importorskip("radical.pilot")
    from rp_support import make_executor

    return make_executor(tmp_path)


# Executors the behavioural suite runs on: name -> factory(tmp_path).
EXECUTOR_FACTORIES: dict[str, Callable[[Any], FlowlibExecutor]] = {
    "threads": make_threads,
    "htex": make_htex,
    "globus-compute": make_globus_compute,
    "dask": make_dask,
    "flux": make_flux,
    "radical-pilot": make_radical_pilot,
}

# Executors that run only part of the behavioural suite: name -> (test modules run, tests left out).
# Globus Compute: each result waits for the SDK's result watcher, which matches results every
# 0.5 s, so long dependent chains and the tests of hundreds of tasks cannot finish in a test's
# time; walltime and staging pass on it too (run by hand) but add minutes to CI.
SUITE_SUBSETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "globus-compute": (
        ("test_apps.py", "test_dependencies.py", "test_errors.py", "test_bash.py")
        + ("test_retries.py", "test_caching.py", "test_join.py", "test_cancel.py"),
        ("test_chain_of_1000_tasks", "test_submissions_from_several_threads", "test_nested_joins"),
    ),
    "dask": (
        ("test_apps.py", "test_dependencies.py", "test_errors.py", "test_retries.py", "test_caching.py")
        + ("test_bash.py", "test_join.py", "test_python_walltime.py", "test_staging.py", "test_cancel.py"),
        (),
    ),
    # Flux (the fake of tests/fakeflux/): every task is a job, a new Python process (about 0.2 s
    # on 2 busy cores), so the tests of hundreds of tasks (a chain of 1000, 6 x 100 from threads,
    # fibonacci(10) as joins) would take minutes and are left out.
    "flux": (
        ("test_apps.py", "test_dependencies.py", "test_errors.py", "test_retries.py", "test_caching.py")
        + ("test_bash.py", "test_join.py", "test_python_walltime.py", "test_staging.py", "test_cancel.py"),
        ("test_chain_of_1000_tasks", "test_submissions_from_several_threads", "test_nested_joins"),
    ),
    # RADICAL-Pilot (a real local session): about 10 tasks/s through RP's agent components, so
    # the same many-task tests as for Flux are left out.
    "radical-pilot": (
        ("test_apps.py", "test_dependencies.py", "test_errors.py", "test_retries.py", "test_caching.py")
        + ("test_bash.py", "test_join.py", "test_python_walltime.py", "test_staging.py", "test_cancel.py"),
        ("test_chain_of_1000_tasks", "test_submissions_from_several_threads", "test_nested_joins"),
    ),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the behavioural tests that SUITE_SUBSETS leaves out for an executor."""
    keep, drop = [], []
    for item in items:
        name = getattr(item, "callspec", None) and item.callspec.params.get("executor_name")  # type: ignore[attr-defined]
        subset = SUITE_SUBSETS.get(name) if isinstance(name, str) else None
        if subset is not None:
            modules, left_out = subset
            if item.path.name not in modules or item.originalname in left_out:  # type: ignore[attr-defined]
                drop.append(item)
                continue
        keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_collection_finish(session: pytest.Session) -> None:
    """After every deselection (-k, -m, SUITE_SUBSETS): start the shared RP session if RP tests remain."""
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("executor_name") == "radical-pilot":
            _start_shared_radical_pilot()
            return


def _start_shared_radical_pilot() -> None:
    """Start the RP session the selected radical-pilot tests share (tests/rp_support.py), before any test runs."""
    import importlib.util

    if importlib.util.find_spec("radical") is None or importlib.util.find_spec("radical.pilot") is None:
        return  # the tests skip
    from rp_support import shared_executor

    shared_executor()


SERVICES = os.path.join(REPO_ROOT, "tests", "services")


def require_service(name: str, probe: Callable[[], bool]) -> None:
    """Skip (or, with CI=true, fail) unless the service answers ``probe``.

    Services are started by ``tests/services/up.sh``; CI must never turn a broken
    service into silent skips.
    """
    import subprocess

    try:
        if probe():
            return
    except (OSError, subprocess.SubprocessError):
        pass
    status_file = os.path.join(SERVICES, ".status")
    recorded = Path(status_file).read_text().strip() if os.path.exists(status_file) else "no tests/services/.status"
    script = f"{name}-up.sh" if os.path.exists(os.path.join(SERVICES, f"{name}-up.sh")) else f"install-{name}.sh"
    message = f"{name} is not up ({recorded}); start it as root with: bash tests/services/{script}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def try_assert(check: Callable[[], bool], timeout: float = 10.0, message: str = "") -> None:
    """Poll ``check`` until it is true; fail with ``message`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(message or f"condition not met within {timeout} s")
        time.sleep(0.01)


@pytest.fixture(params=sorted(EXECUTOR_FACTORIES))
def executor_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_config(tmp_path: Any, executor_name: str) -> Callable[..., Config]:
    """Build a Config on the parametrized executor with a private run_dir."""

    def build(**kwargs: Any) -> Config:
        kwargs.setdefault("run_dir", str(tmp_path / "runinfo"))
        kwargs.setdefault("executors", [EXECUTOR_FACTORIES[executor_name](tmp_path)])
        return Config(**kwargs)

    return build


@pytest.fixture
def dfk(make_config: Callable[..., Config]) -> Iterator[DataFlowKernel]:
    """A loaded kernel on the parametrized executor, cleaned up after the test."""
    kernel = flowlib.load(make_config())
    try:
        yield kernel
    finally:
        if not kernel.cleanup_called:
            kernel.cleanup()
        flowlib.clear()


@pytest.fixture(autouse=True)
def _no_leftover_kernel() -> Iterator[None]:
    yield
    leftover = DataFlowKernelLoader._dfk
    if leftover is not None:
        if not leftover.cleanup_called:
            leftover.cleanup()
        DataFlowKernelLoader.clear()
        pytest.fail("the test left a DataFlowKernel loaded")


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield

    def leaked() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t not in before and t.is_alive() and t.name.startswith("flowlib")]

    deadline = time.monotonic() + 5
    while leaked() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not leaked(), f"threads leaked by the test: {[t.name for t in leaked()]}"
