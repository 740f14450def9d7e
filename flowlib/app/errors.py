"""Exceptions raised by apps, and the wrapper that carries a remote exception home.

Errors raised *by the user's code* reach the caller unchanged (same type). The
classes here describe failures of the app machinery around that code.
"""

from __future__ import annotations

import traceback
from types import TracebackType
from typing import Any

from flowlib.errors import FlowlibError


class AppException(FlowlibError):
    """Base class of app failures that are not the user's own exception."""


class AppBadFormatting(AppException):
    """A bash app's command string could not be built (formatting failed)."""


class AppTimeout(AppException):
    """The app ran longer than its ``walltime`` and was stopped."""


class BashAppNoReturn(AppException):
    """A bash app's function returned something other than a command string."""


class BashExitFailure(AppException):
    """A bash app's command exited with a non-zero code, kept in ``exitcode``."""

    def __init__(self, app_name: str, exitcode: int) -> None:
        self.app_name = app_name
        self.exitcode = exitcode
        super().__init__(app_name, exitcode)

    def __str__(self) -> str:
        return f"bash_app {self.app_name} failed with unix exit code {self.exitcode}"


class MissingOutputs(AppException):
    """An app finished but did not produce some of the files named in ``outputs``."""

    def __init__(self, reason: str, outputs: list[Any]) -> None:
        self.reason = reason
        self.outputs = list(outputs)
        super().__init__(reason, outputs)

    def __str__(self) -> str:
        return f"Missing Outputs: {self.outputs}, Reason: {self.reason}"


class BadStdStreamFile(AppException):
    """A ``stdout``/``stderr`` specification could not be used (bad mode, unopenable path)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)

    def __str__(self) -> str:
        return f"Bad stdout/stderr file specification: {self.reason}"


class RemoteTraceback(Exception):
    """The formatted traceback of an exception raised in another process.

    Set as ``__cause__`` of the re-raised exception, so a traceback printout shows
    the remote frames first and the local re-raise after them.
    """

    def __init__(self, tb: str) -> None:
        self.tb = tb
        super().__init__(tb)

    def __str__(self) -> str:
        return self.tb


class RemoteExceptionWrapper:
    """Carries an exception and its traceback from a worker back to the kernel.

    The exception keeps its type; the remote frames survive through tblib, and
    :meth:`get_exception` chains the formatted remote traceback as the cause.
    """

    def __init__(
        self, e_type: type[BaseException], e_value: BaseException, traceback_obj: TracebackType | None
    ) -> None:
        from tblib import Traceback

        self.e_type = e_type
        self.e_value = e_value
        self.formatted = "".join(traceback.format_exception(e_type, e_value, traceback_obj))
        self.e_traceback = Traceback(traceback_obj) if traceback_obj is not None else None

    def get_exception(self) -> BaseException:
        """The original exception, with its remote traceback attached and chained."""
        exc = self.e_value
        if self.e_traceback is not None:
            exc = exc.with_traceback(self.e_traceback.as_traceback())
        if exc.__cause__ is None:
            exc.__cause__ = RemoteTraceback(self.formatted)
        return exc

    def reraise(self) -> None:
        """Raise the original exception here."""
        raise self.get_exception()
