"""The staging-plugin interface, and the pieces the built-in plugins share.

For each ``File`` an app takes as input, the :class:`DataManager` asks the
executor's plugins in order whether they ``can_stage_in`` the file; the first
that says yes gets two chances to act:

* ``stage_in`` -- *separate-task staging*: start a transfer (usually a task on the
  same executor) and return a :class:`~flowlib.app.futures.DataFuture` that the app
  then waits for, as for any other dependency;
* ``replace_task`` -- *in-task staging*: return a wrapper of the app function that
  moves the file on the worker, right before the app runs.

Outputs go the same way through ``can_stage_out``, ``stage_out`` and
``replace_task_stage_out``.

In-task wrappers travel to remote workers with the task, so they must pickle with
cloudpickle: :class:`StagingWrapper` is a module-level class holding the app
function and ``functools.partial`` objects of module-level step functions.

A wrapper's steps learn the task's ``File`` objects by URL, not by identity
(:func:`set_local_path`): the executor may serialize the wrapper and the
arguments separately, so the ``File`` the app sees can be a different copy from
the one the plugin saw at submit time.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError, Future
from typing import IO, TYPE_CHECKING, Any

from flowlib.data_provider.files import File
from flowlib.errors import FlowlibError

if TYPE_CHECKING:
    from flowlib.app.futures import DataFuture
    from flowlib.data_provider.data_manager import DataManager

__all__ = [
    "DEFAULT_TIMEOUT",
    "Staging",
    "StagingError",
    "StagingWrapper",
    "check_timeout",
    "executor_working_dir",
    "gate_on",
    "local_path_for",
    "prepare_output_step",
    "set_local_path",
    "submit_staging_task",
    "write_atomically",
]

#: Name of the directory (under the executor's working dir) that staged files go to.
STAGING_DIR = "flowlib_staging"

#: Seconds a transfer may wait for its server (to connect, or for more data).
DEFAULT_TIMEOUT = 60.0


class StagingError(FlowlibError):
    """A file could not be moved: the server refused, the source is missing, a tool failed.

    Raised by the built-in staging plugins, on the worker or in a staging task, in
    place of the transport's own exception (which may not pickle back to the
    submitting process). ``url`` names the file and ``reason`` says what went wrong.
    """

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(url, reason)

    def __str__(self) -> str:
        return f"Staging of {self.url} failed: {self.reason}"


class Staging:
    """Base class of staging plugins; by default it accepts no file and does nothing.

    Subclasses override ``can_stage_in``/``can_stage_out`` to claim files (usually
    by URL scheme) and then the matching ``stage_*`` and/or ``replace_task*``
    methods. Every method may return ``None`` to mean "nothing to do here".
    """

    def can_stage_in(self, file: File) -> bool:
        """Whether this plugin stages ``file`` in; True makes it the file's stager."""
        return False

    def can_stage_out(self, file: File) -> bool:
        """Whether this plugin stages ``file`` out."""
        return False

    def stage_in(self, dm: DataManager, executor: str, file: File, parent_fut: Future[Any] | None) -> DataFuture | None:
        """Start a separate transfer of ``file`` towards ``executor``.

        ``parent_fut`` is the future that produces the file, when the app got a
        ``DataFuture``; a transfer must not start before it completes. Return a
        ``DataFuture`` that completes when the file is local (it replaces the
        app's argument), or ``None`` for no separate transfer.
        """
        return None

    def stage_out(self, dm: DataManager, executor: str, file: File, app_fu: Future[Any]) -> Future[Any] | None:
        """Start a separate transfer of ``file`` out, after ``app_fu`` completes.

        Return a future that completes when the file is in place (the app's
        output ``DataFuture`` then follows it), or ``None``.
        """
        return None

    def replace_task(
        self, dm: DataManager, executor: str, file: File, func: Callable[..., Any]
    ) -> Callable[..., Any] | None:
        """Return ``func`` wrapped so that ``file`` is staged in on the worker, or ``None``."""
        return None

    def replace_task_stage_out(
        self, dm: DataManager, executor: str, file: File, func: Callable[..., Any]
    ) -> Callable[..., Any] | None:
        """Return ``func`` wrapped so that ``file`` is staged out on the worker, or ``None``."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


StepFunc = Callable[[tuple[Any, ...], dict[str, Any]], None]


class StagingWrapper:
    """An app function with staging steps around it; picklable with cloudpickle.

    Called exactly like the wrapped function: ``wrapper(*args, **kwargs)``.
    ``before(args, kwargs)`` runs first (stage in, or prepare an output path);
    then the function; then, only if it returned normally, ``after(args, kwargs)``
    (stage out). The wrapper returns the function's return value. ``__name__``,
    ``__qualname__``, ``__doc__`` and ``__wrapped__`` follow the wrapped function.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        before: StepFunc | None = None,
        after: StepFunc | None = None,
    ) -> None:
        self.func = func
        self.before = before
        self.after = after
        self.__wrapped__ = func
        self.__name__: str = getattr(func, "__name__", type(func).__name__)
        self.__qualname__: str = getattr(func, "__qualname__", self.__name__)
        self.__doc__ = getattr(func, "__doc__", None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.before is not None:
            self.before(args, kwargs)
        result = self.func(*args, **kwargs)
        if self.after is not None:
            self.after(args, kwargs)
        return result

    def __repr__(self) -> str:
        return f"<StagingWrapper of {self.func!r} before={self.before!r} after={self.after!r}>"


def check_timeout(timeout: float) -> float:
    """Validate a plugin's ``timeout`` keyword (positive seconds) and return it as float.

    Raises:
        TypeError: ``timeout`` is not a number.
        ValueError: ``timeout`` is not positive.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be a number of seconds, not {type(timeout).__name__}")
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout}")
    return float(timeout)


def executor_working_dir(dm: DataManager, executor: str) -> str | None:
    """The ``working_dir`` of the executor labelled ``executor``, if it has one."""
    wd = getattr(dm.dfk.executors[executor], "working_dir", None)
    return wd if isinstance(wd, str) and wd else None


def local_path_for(file: File, working_dir: str | None) -> str:
    """Where a staged copy of ``file`` goes: ``<working_dir>/flowlib_staging/<hash>/<filename>``.

    The directory is named by a hash of the URL, so two URLs with the same file
    name never overwrite each other's copy, while one URL always maps to one
    place (staging it again replaces the copy). Without a working dir the path is
    relative, resolved against the current directory of the process that uses it.
    """
    digest = hashlib.sha256(file.url.encode("utf-8")).hexdigest()[:16]
    name = file.filename or "index"
    return os.path.join(working_dir or "", STAGING_DIR, digest, name)


def _iter_files(obj: Any, depth: int) -> Iterable[File]:
    if isinstance(obj, File):
        yield obj
    elif depth > 0:
        if isinstance(obj, dict):
            obj = obj.values()
        elif not isinstance(obj, list | tuple | set | frozenset):
            return
        for item in obj:
            yield from _iter_files(item, depth - 1)


def set_local_path(url: str, local_path: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Set ``local_path`` on every ``File`` for ``url`` in a task's arguments.

    Looks in positional and keyword arguments and in containers nested up to four
    levels (``inputs=[...]``, ``outputs=[...]``, dicts of files, ...).
    """
    for file in _iter_files((args, kwargs), 5):
        if file.url == url:
            file.local_path = local_path


def prepare_output_step(url: str, local_path: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """In-task stage-out ``before`` step: make the output's directory, point the app at it."""
    directory = os.path.dirname(local_path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    set_local_path(url, local_path, args, kwargs)


def write_atomically(dest: str, write: Callable[[IO[bytes]], None]) -> None:
    """Create ``dest`` through ``write(fileobj)`` so that no half-written file is ever seen.

    Writes a temporary file in the same directory (created if missing), then
    renames it over ``dest``; on any error the temporary file is removed. The new
    file gets the usual permissions (0666 less the umask).
    """
    directory = os.path.dirname(dest) or "."
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(dest)}.{secrets.token_hex(6)}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def gate_on(parent: Future[Any] | None) -> Future[None] | None:
    """A plain future that completes (with ``None``) or fails when ``parent`` does.

    A staging task takes this as an argument instead of ``parent`` itself, so that
    the kernel waits for the parent but does not try to stage the parent's file a
    second time (it stages ``File`` and ``DataFuture`` arguments, not plain futures).
    """
    if parent is None:
        return None
    gate: Future[None] = Future()

    def follow(fut: Future[Any]) -> None:
        if fut.cancelled():
            gate.set_exception(CancelledError(f"{fut!r} was cancelled"))
            return
        exc = fut.exception()
        if exc is not None:
            gate.set_exception(exc)
        else:
            gate.set_result(None)

    parent.add_done_callback(follow)
    return gate


def submit_staging_task(
    dm: DataManager,
    executor: str,
    func: Callable[..., Any],
    file: File,
    parent_fut: Future[Any] | None,
    *args: Any,
) -> DataFuture:
    """Run ``func(*args, parent=<gate>)`` as an app on ``executor``; return its ``DataFuture``.

    Used by separate-task plugins. ``func`` must be a module-level function (it is
    pickled by reference); it gets only plain values, never the ``File`` itself, so
    the kernel does not stage the staging task's own arguments.
    """
    from flowlib.app.futures import DataFuture
    from flowlib.app.python import PythonApp

    app: Any = PythonApp(func, executors=[executor], data_flow_kernel=dm.dfk)
    app_fut = app(*args, parent=gate_on(parent_fut))
    return DataFuture(app_fut, file, tid=getattr(app_fut, "tid", None))
