"""Small helpers for users: finding checkpoints of earlier runs, reprs, waiting for files.

This module is imported by user scripts and by many flowlib modules, so it
imports only the standard library, and only light parts of it at module level.
"""

from __future__ import annotations

import logging
import os
import time
from typing import IO, Any

logger = logging.getLogger(__name__)

__all__ = ["RepresentationMixin", "execute_wait", "get_all_checkpoints", "get_last_checkpoint", "time_limited_open"]

_CHECKPOINT_FILE = "tasks.ckpt"  # the same name as flowlib.dataflow.checkpoint.CHECKPOINT_FILENAME


def get_all_checkpoints(rundir: str = "runinfo") -> list[str]:
    """Return the checkpoint directories of every run under ``rundir``, oldest first.

    Run directories are the numbered subdirectories ``000``, ``001``, ... (``1000``
    after ``999``), ordered by number. Only runs whose ``checkpoint`` directory
    holds a checkpoint file are listed; the paths are absolute. A missing
    ``rundir`` gives an empty list. Pass the result as
    ``BasicMemoizer(checkpoint_files=...)`` to reuse every earlier result.
    """
    try:
        names = os.listdir(rundir)
    except FileNotFoundError:
        return []
    runs = sorted((int(name), name) for name in names if name.isdigit())
    found = []
    for _, name in runs:
        directory = os.path.abspath(os.path.join(rundir, name, "checkpoint"))
        if os.path.isfile(os.path.join(directory, _CHECKPOINT_FILE)):
            found.append(directory)
    return found


def get_last_checkpoint(rundir: str = "runinfo") -> list[str]:
    """Return a list holding only the newest checkpoint directory under ``rundir``, or ``[]``."""
    return get_all_checkpoints(rundir)[-1:]


class RepresentationMixin:
    """Gives a class a ``__repr__`` built from its ``__init__`` parameters.

    Every parameter that the instance stores as an attribute of the same name
    appears as ``name=value``, in signature order: ``Config(a=1, b='x')``.
    Parameters not stored on the instance, and ``*args``/``**kwargs``, are left out,
    unless the class attribute ``_validate_repr`` is True (as Parsl's test suites set
    it): then a parameter missing from the instance raises AttributeError.
    """

    _validate_repr: bool = False

    def __repr__(self) -> str:
        import inspect

        try:
            params = inspect.signature(type(self).__init__).parameters
        except (TypeError, ValueError):
            return object.__repr__(self)
        shown = []
        for name, param in list(params.items())[1:]:
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            try:
                value = getattr(self, name)
            except AttributeError:
                if self._validate_repr:
                    raise AttributeError(
                        f"{type(self).__name__} takes the parameter {name!r} but does not store it as an attribute, "
                        "so its repr cannot show it"
                    ) from None
                continue
            shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"


def time_limited_open(path: str | os.PathLike[str], mode: str, seconds: float = 1.0) -> IO[Any]:
    """Open ``path``, retrying while it does not exist yet, for up to ``seconds``.

    Useful for a file that another process (a worker, a batch job) is about to
    create. The returned file object also works as a context manager. Raises
    TimeoutError naming the path when it still does not exist at the deadline.
    """
    deadline = time.monotonic() + seconds
    wait = 0.001
    while True:
        try:
            return open(path, mode)
        except FileNotFoundError:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{os.fspath(path)!s} did not appear within {seconds} seconds") from None
            time.sleep(min(wait, remaining))
            wait = min(wait * 2, 0.05)


def execute_wait(cmd: str, walltime: float | None = None) -> tuple[int, str, str]:
    """Run the shell command ``cmd`` here with bash; return ``(exit code, stdout, stderr)``.

    Parsl's helper, as its providers use it. The command inherits this process's
    environment and runs in the current directory. Past ``walltime`` seconds the
    command and everything it started are killed and
    :class:`~flowlib.channels.errors.ChannelTimeout` is raised.
    """
    from flowlib.channels.local import LocalChannel

    return LocalChannel().execute_wait(cmd, walltime=walltime)
