"""One real RADICAL-Pilot session shared by the behavioural tests of a pytest process.

An RP session with its pilot takes tens of seconds to start, and the behavioural
suite builds one executor per test; so the first test starts one
RadicalPilotExecutor (resource ``local.localhost``: a pilot of 4 cores, one RAPTOR
master and one worker of 2 cores) once, when collection selected such tests (a hook
in conftest.py, outside any test's timeout), and every test's executor borrows it:
its ``start()`` and ``shutdown()`` leave the shared one alone, which closes at exit.
"""

from __future__ import annotations

import atexit
import os
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from conftest import REPO_ROOT

from flowlib.executors.base import ExecutorStatistics, FlowlibExecutor

# RP on a machine without outside network (see docs/radical_pilot.rst).
RP_ENV = {
    "RADICAL_DEFAULT_IFACE": "lo",
    "RADICAL_PROFILE": "FALSE",
    "RADICAL_UTILS_NTPHOST": "127.0.0.1",
    "RADICAL_REPORT": "FALSE",
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
}

WARM_UP_TIMEOUT = 300  # seconds for the pilot to become active and run a first task

_shared: Any = None
_lock = threading.Lock()


def _close_within(executor: Any, seconds: float) -> None:
    closer = threading.Thread(target=executor.shutdown, name="rp-suite-close", daemon=True)
    closer.start()
    closer.join(seconds)


def shared_executor() -> Any:
    """The process-wide, started RadicalPilotExecutor."""
    global _shared
    with _lock:
        if _shared is None:
            from flowlib.executors.radical import RadicalPilotExecutor, ResourceConfig

            workdir = tempfile.mkdtemp(prefix="flowlib-rp-suite-")
            for name, value in RP_ENV.items():
                os.environ.setdefault(name, value)
            os.environ.setdefault("RADICAL_BASE", os.path.join(workdir, "base"))
            # RP's workers import the test modules that define the apps; the pilot's environment is
            # taken while it starts, and the variable is put back once the first task ran.
            saved_pythonpath = os.environ.get("PYTHONPATH")
            paths = [REPO_ROOT, os.path.join(REPO_ROOT, "tests")]
            os.environ["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [saved_pythonpath] if p])
            executor = RadicalPilotExecutor(
                "local.localhost",
                label="rp-shared",
                rpex_cfg=ResourceConfig(worker_cores_per_node=2),
                runtime=60,
                cores=4,
                sandbox=os.path.join(workdir, "sandbox"),
            )
            executor.run_dir = workdir
            here = os.getcwd()
            os.chdir(workdir)  # RP writes its client session directory into the current directory
            try:
                executor.start()
            finally:
                os.chdir(here)
            atexit.register(_close_within, executor, 60)
            # The pilot becomes active tens of seconds after start: wait here, once, for a first
            # task (this runs from a collection hook, outside any test's timeout).
            try:
                if executor.submit(abs, {}, -1).result(timeout=WARM_UP_TIMEOUT) != 1:
                    raise RuntimeError("the shared RADICAL-Pilot executor returned a wrong result")
            finally:
                if saved_pythonpath is None:
                    os.environ.pop("PYTHONPATH", None)
                else:
                    os.environ["PYTHONPATH"] = saved_pythonpath
            _shared = executor
        return _shared


class BorrowedRadicalPilot(FlowlibExecutor):
    """An executor that hands its tasks to the shared RP executor and never shuts it down."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.inner = shared_executor()
        self.storage_access = None

    def start(self) -> None:
        """Nothing to start: the shared executor runs already."""

    def submit(
        self, func: Callable[..., Any], resource_specification: dict[str, Any], /, *args: Any, **kwargs: Any
    ) -> Future[Any]:
        return self.inner.submit(func, resource_specification, *args, **kwargs)

    def shutdown(self) -> None:
        """Leave the shared executor running for the next test."""

    def statistics(self) -> ExecutorStatistics | None:
        return self.inner.statistics()


def make_executor(tmp_path: Any, label: str = "exec") -> FlowlibExecutor:
    return BorrowedRadicalPilot(label)
