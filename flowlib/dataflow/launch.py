"""Turning a ready task into the call an executor runs.

The per-task hot path: no I/O, no logging, no copies unless needed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flowlib.app.walltime import run_with_walltime
from flowlib.dataflow.taskrecord import TaskRecord


def build_call(record: TaskRecord) -> tuple[Callable[..., Any], dict[str, Any]]:
    """The callable and keyword arguments to hand to the executor for ``record``.

    Python and join apps lose the special keywords their function does not declare,
    and get the walltime wrapper when ``walltime=`` was given. Bash apps keep every
    keyword: their runner needs stdout, stderr, walltime and outputs.
    """
    kwargs = record.kwargs
    func = record.func
    if record.kind == "bash" or not kwargs:
        return func, kwargs
    walltime = kwargs.get("walltime")
    strip = record.strip_kwargs
    if strip and not strip.isdisjoint(kwargs):
        kwargs = {k: v for k, v in kwargs.items() if k not in strip}
    if walltime is not None:
        func = functools.partial(run_with_walltime, func, walltime)
    return func, kwargs
