"""Task functions the worker-pool tests send to real workers.

Workers import this module by name (``htex.pool_tasks``; the tests put
``tests/`` on the pool's PYTHONPATH), so it must stay light: no pytest import.
"""

from __future__ import annotations

import os
import pathlib
import signal
import threading
import time
from typing import Any

ENV_NAMES = (
    "PARSL_WORKER_RANK",
    "PARSL_WORKER_COUNT",
    "PARSL_WORKER_POOL_ID",
    "PARSL_WORKER_BLOCK_ID",
    "FLOWLIB_WORKER_RANK",
    "FLOWLIB_WORKER_COUNT",
    "FLOWLIB_WORKER_POOL_ID",
    "FLOWLIB_WORKER_BLOCK_ID",
    "CUDA_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "ZE_AFFINITY_MASK",
)


def echo(value: Any) -> Any:
    return value


def noop() -> None:
    return None


def add(a: int, b: int = 0) -> int:
    return a + b


def environment(pause: float = 0.0) -> dict[str, str | None]:
    """The worker's variables (after ``pause`` s, so that concurrent tasks land on different workers)."""
    time.sleep(pause)
    return {name: os.environ.get(name) for name in ENV_NAMES}


def placement(pause: float = 0.0) -> tuple[str, list[int], str]:
    """The worker's rank, CPU affinity and working directory."""
    time.sleep(pause)
    return os.environ["PARSL_WORKER_RANK"], sorted(os.sched_getaffinity(0)), os.getcwd()


def _inner_failure(value: int) -> None:
    raise ValueError(f"bad value {value}")


def fail(value: int) -> None:
    _inner_failure(value)


def unpicklable_result() -> Any:
    return threading.Lock()


def kill_myself() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def mark_and_sleep(marker: str, seconds: float) -> int:
    """Write this worker's pid to ``marker``, then sleep; return the pid."""
    path = pathlib.Path(marker)
    path.with_suffix(".tmp").write_text(str(os.getpid()))
    path.with_suffix(".tmp").rename(path)
    time.sleep(seconds)
    return os.getpid()


def pid() -> int:
    return os.getpid()


def kill_myself_once(marker: str) -> str:
    """SIGKILL this worker the first time (``marker`` records it); a second run returns "survived"."""
    try:
        with open(marker, "x"):
            pass
    except FileExistsError:
        return "survived"
    os.kill(os.getpid(), signal.SIGKILL)
    return "unreachable"


def run_once(marker: str, blob: bytes = b"") -> int:
    """Create ``marker`` (FileExistsError if this task already ran once); return the size of ``blob``."""
    with open(marker, "x"):
        pass
    return len(blob)
