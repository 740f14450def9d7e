"""What the store keeps about a failed try: type, message, traceback, exit code, reason."""

from __future__ import annotations

import traceback
from typing import Any

_MAX_TEXT = 64_000


def _clip(text: str, limit: int = _MAX_TEXT) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n... [{len(text) - limit} characters cut] ...\n{text[-half:]}"


def failure_reason(exc: BaseException) -> str | None:
    """``"worker_lost"``, ``"manager_lost"``, ``"timeout"``, ``"dependency"`` or None for an ordinary failure."""
    name = type(exc).__name__
    if name == "WorkerLost":
        return "worker_lost"
    if name == "ManagerLost":
        return "manager_lost"
    if name in ("AppTimeout", "TimeoutError"):
        return "timeout"
    if name in ("DependencyError", "JoinError"):
        return "dependency"
    return None


def describe_failure(exc: BaseException) -> dict[str, Any]:
    """The ``try`` table's failure columns for ``exc`` (the whole chained traceback, remote frames included)."""
    exit_code = getattr(exc, "exitcode", None)
    return {
        "task_exception_type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "task_exception_message": _clip(str(exc), 8_000),
        "task_traceback": _clip("".join(traceback.format_exception(exc))),
        "task_exit_code": exit_code if isinstance(exit_code, int) else None,
        "task_failure_reason": failure_reason(exc),
    }
