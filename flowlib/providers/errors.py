"""Exceptions raised by providers and the channels they use."""

from __future__ import annotations

from flowlib.errors import FlowlibError


class ExecutionProviderException(FlowlibError):
    """Base class of provider failures."""


class SubmitException(ExecutionProviderException):
    """A job could not be submitted; names the job, the command and the scheduler's answer."""

    def __init__(self, job_name: str, message: str, stdout: str | None = None, stderr: str | None = None) -> None:
        self.job_name = job_name
        self.message = message
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(job_name, message)

    @property
    def task_name(self) -> str:
        """Deprecated (as in Parsl): the old name of :attr:`job_name`."""
        import warnings

        warnings.warn("SubmitException.task_name is deprecated; use job_name", DeprecationWarning, stacklevel=2)
        return self.job_name

    def __str__(self) -> str:
        text = f"cannot submit job {self.job_name}: {self.message}"
        if self.stderr:
            text += f"; stderr: {self.stderr.strip()[:2000]}"
        if self.stdout:
            text += f"; stdout: {self.stdout.strip()[:2000]}"
        return text


class SchedulerCommandError(ExecutionProviderException):
    """A scheduler command failed, timed out, was missing, or answered something unparseable."""

    def __init__(self, command: str, message: str) -> None:
        self.command = command
        self.message = message
        super().__init__(command, message)

    def __str__(self) -> str:
        return f"scheduler command {self.command!r} failed: {self.message}"
