"""Bash apps: the function returns a command line; the task runs it under bash.

The command runs in its own process group, so a ``walltime`` kill stops every
process it started, grandchildren included. The task's result is 0; a non-zero
exit code raises :class:`~flowlib.app.errors.BashExitFailure`.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
from collections.abc import Callable
from typing import IO, Any

from flowlib.app.app import AppBase, P
from flowlib.app.errors import (
    AppBadFormatting,
    AppTimeout,
    BadStdStreamFile,
    BashAppNoReturn,
    BashExitFailure,
    MissingOutputs,
)
from flowlib.app.special import SPECIAL_KEYWORDS

_WRITE_MODES = ("w", "a", "w+", "a+")


class BashApp(AppBase[P, int]):
    """An app whose function returns a bash command; the future holds the exit code 0.

    Constructible directly: ``BashApp(func, executors=["htex"])``.
    """

    kind = "bash"

    def executable(self, executor_label: str, working_dir: str | None) -> Callable[..., Any]:
        """The runner that builds the command from the call's arguments and runs it.

        Made once per working directory, so executors that cache serialized
        functions see the same object for every call.
        """
        runners: dict[str | None, Callable[..., Any]] = self.__dict__.setdefault("_runners", {})
        runner = runners.get(working_dir)
        if runner is None:
            runner = functools.partial(
                execute_bash_app, self.executable_func, self.__name__, self.accepted_special, working_dir
            )
            runners[working_dir] = runner
        return runner


def _bad_type(message: str) -> BadStdStreamFile:
    from flowlib.app.std_stream_errors import BadStdStreamType

    return BadStdStreamType(message)


def _open_stream(name: str, spec: Any, cwd: str | None) -> IO[bytes] | int | None:
    if spec is None:
        return None
    mode = "a+"
    if isinstance(spec, tuple):
        if len(spec) != 2:
            raise _bad_type(f"{name} tuple must be (path, mode), got {spec!r}")
        spec, mode = spec
        if not isinstance(mode, str):
            raise _bad_type(f"{name} mode must be a string, one of {_WRITE_MODES}, got {mode!r}")
        if mode not in _WRITE_MODES:
            raise BadStdStreamFile(f"{name} mode must be one of {_WRITE_MODES}, got {mode!r}")
    if not isinstance(spec, (str, os.PathLike)):
        raise _bad_type(f"{name} must be a path, a (path, mode) tuple or a File, got {type(spec).__name__}: {spec!r}")
    path = os.fspath(spec)
    if not isinstance(path, str):
        raise _bad_type(f"{name} must be a path, a (path, mode) tuple or a File, got {type(spec).__name__}")
    if cwd and not os.path.isabs(path):
        path = os.path.join(cwd, path)
    try:
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        return open(path, mode + "b" if "b" not in mode else mode)  # noqa: SIM115 - closed by the caller
    except OSError as e:
        raise BadStdStreamFile(f"cannot open {name} file {path!r}: {e}") from e


def execute_bash_app(
    func: Callable[..., Any],
    func_name: str,
    accepted: frozenset[str],
    working_dir: str | None,
    /,
    *args: Any,
    **kwargs: Any,
) -> int:
    """Build the command with ``func`` and run it under bash; runs on the worker.

    Raises BashAppNoReturn (no command string), AppBadFormatting (building the
    command failed on an index or key), BadStdStreamFile, AppTimeout (walltime),
    BashExitFailure (non-zero exit) and MissingOutputs (declared outputs absent).
    """
    call_kwargs = {k: v for k, v in kwargs.items() if k not in SPECIAL_KEYWORDS or k in accepted}
    try:
        command = func(*args, **call_kwargs)
    except (IndexError, KeyError) as e:
        raise AppBadFormatting(f"bash_app {func_name} failed to build its command: {e!r}") from e
    if not isinstance(command, str):
        shown = repr(command)[:80]
        kind = type(command).__name__
        raise BashAppNoReturn(f"bash_app {func_name} must return a command string, but returned {kind} ({shown})")

    walltime = kwargs.get("walltime")
    stdout = _open_stream("stdout", kwargs.get("stdout"), working_dir)
    try:
        stderr = _open_stream("stderr", kwargs.get("stderr"), working_dir)
    except BaseException:
        if hasattr(stdout, "close"):
            stdout.close()  # type: ignore[union-attr]
        raise
    try:
        returncode = _run(command, stdout, stderr, working_dir, walltime, func_name)
    finally:
        for stream in (stdout, stderr):
            if hasattr(stream, "close"):
                stream.close()  # type: ignore[union-attr]
    if returncode != 0:
        raise BashExitFailure(func_name, returncode)
    outputs = kwargs.get("outputs") or []
    missing = [f for f in outputs if not os.path.exists(_local_path(f, working_dir))]
    if missing:
        raise MissingOutputs(f"bash_app {func_name} did not create its outputs", missing)
    return 0


def _local_path(f: Any, working_dir: str | None) -> str:
    path = os.fspath(f)
    if working_dir and not os.path.isabs(path):
        path = os.path.join(working_dir, path)
    return path


def _run(command: str, stdout: Any, stderr: Any, cwd: str | None, walltime: float | None, func_name: str) -> int:
    proc = subprocess.Popen(
        ["/bin/bash", "-c", command],
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        cwd=cwd or None,
        start_new_session=True,
    )
    try:
        return proc.wait(timeout=walltime)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise AppTimeout(
            f"bash_app {func_name} exceeded its walltime of {walltime} s; its process group was killed"
        ) from None
    except BaseException:
        _kill_group(proc)
        raise


def _kill_group(proc: subprocess.Popen[Any]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
