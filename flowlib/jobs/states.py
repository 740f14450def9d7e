"""The state of a provider's job (a block of nodes), shared by every provider.

Each scheduler's own states are translated into :class:`JobState` by a table in
its provider module, citing the scheduler's documentation.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class JobState(enum.IntEnum):
    """Where a block's job is in the scheduler's life cycle."""

    UNKNOWN = 0
    """The scheduler gave a state flowlib does not know."""
    PENDING = 1
    """Queued; waiting for nodes."""
    RUNNING = 2
    """Nodes allocated; the job's script is running."""
    CANCELLED = 3
    """Cancelled by flowlib or by somebody else. Terminal."""
    COMPLETED = 4
    """The job's script exited with code 0. Terminal."""
    FAILED = 5
    """The job's script failed or the job could not start. Terminal."""
    TIMEOUT = 6
    """The job reached its walltime. Terminal."""
    HELD = 7
    """Held by the scheduler or an administrator."""
    MISSING = 8
    """The block has no job that did its work: the scheduler no longer knows the job and its end
    could not be found, the submit failed, or the job ended before any worker of it connected
    (as Parsl reports these). Counted as a failure. Terminal."""
    SCALED_IN = 9
    """Released by flowlib's scaling (idle or no longer needed). Terminal."""

    def __str__(self) -> str:
        # IntEnum's str() is the number since Python 3.11; Parsl's (and 3.10's) is the name
        return f"JobState.{self.name}"

    @property
    def terminal(self) -> bool:
        """True for states a job never leaves."""
        return self in TERMINAL_STATES


TERMINAL_STATES: frozenset[JobState] = frozenset(
    {JobState.CANCELLED, JobState.COMPLETED, JobState.FAILED, JobState.TIMEOUT, JobState.MISSING, JobState.SCALED_IN}
)
"""States a job never leaves."""


@dataclass(frozen=True)
class JobStatus:
    """A job's state plus what the scheduler said about it."""

    state: JobState
    """The translated state."""
    message: str | None = None
    """The scheduler's reason or error text, when it gave one."""
    exit_code: int | None = None
    """The job script's exit code, when known."""
    stdout_path: str | None = None
    """Where the job's standard output goes."""
    stderr_path: str | None = None
    """Where the job's standard error goes."""

    @property
    def terminal(self) -> bool:
        """True when the job has ended."""
        return self.state in TERMINAL_STATES

    @property
    def stdout(self) -> str | None:
        """What the job wrote to ``stdout_path`` so far (as Parsl's); None without a readable path."""
        return _read(self.stdout_path)

    @property
    def stderr(self) -> str | None:
        """What the job wrote to ``stderr_path`` so far (as Parsl's); None without a readable path."""
        return _read(self.stderr_path)


def _read(path: str | None) -> str | None:
    if not path:
        return None
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return None
