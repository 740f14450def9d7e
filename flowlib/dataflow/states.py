"""Task states and the table of allowed transitions between them.

Every state change of a task goes through :func:`flowlib.dataflow.taskrecord.transition`,
which checks it against :data:`TRANSITIONS`; anything not in the table is a bug in
flowlib and raises :class:`~flowlib.errors.InternalConsistencyError`.

::

    unsched -> pending --(deps ready)--> launched --> running --> exec_done
                 |   \\                     |  \\                 \\-> failed
                 |    \\-> memo_done         |   \\-> joining -> exec_done | failed
                 |                          |
                 \\-> dep_fail | cancelled   \\-> fail_retryable -> launched (retry)
"""

from __future__ import annotations

import enum


class States(enum.IntEnum):
    """The life-cycle states of a task."""

    unsched = -1
    """Created, not yet handed to the dependency tracker."""

    pending = 0
    """Waiting for the futures it depends on."""

    running = 2
    """Executing on a worker (reported by executors that know it)."""

    exec_done = 3
    """Finished successfully. Final."""

    failed = 4
    """Failed and will not be retried. Final."""

    dep_fail = 5
    """Not run because a dependency failed. Final."""

    launched = 7
    """Handed to an executor."""

    fail_retryable = 8
    """Failed, with retries left; will be launched again."""

    memo_done = 9
    """Result taken from the memo table or a checkpoint. Final."""

    joining = 10
    """A join app whose function returned; waiting for the inner futures."""

    running_ended = 11
    """The function returned on the worker; the result is travelling back."""

    cancelled = 12
    """Cancelled by the user before it ran. Final (flowlib addition)."""


FINAL_STATES: frozenset[States] = frozenset(
    {States.exec_done, States.memo_done, States.failed, States.dep_fail, States.cancelled}
)
"""States a task never leaves."""

FINAL_FAILURE_STATES: frozenset[States] = frozenset({States.failed, States.dep_fail, States.cancelled})
"""Final states in which the task's future holds an exception."""

_S = States

TRANSITIONS: frozenset[tuple[States, States]] = frozenset(
    {
        (_S.unsched, _S.pending),
        (_S.pending, _S.launched),
        (_S.pending, _S.memo_done),
        (_S.pending, _S.dep_fail),
        (_S.pending, _S.failed),
        (_S.pending, _S.cancelled),
        (_S.launched, _S.running),
        (_S.launched, _S.running_ended),
        (_S.launched, _S.exec_done),
        (_S.launched, _S.failed),
        (_S.launched, _S.fail_retryable),
        (_S.launched, _S.joining),
        (_S.launched, _S.cancelled),
        (_S.launched, _S.memo_done),
        (_S.running, _S.running_ended),
        (_S.running, _S.exec_done),
        (_S.running, _S.failed),
        (_S.running, _S.fail_retryable),
        (_S.running, _S.joining),
        (_S.running, _S.cancelled),
        (_S.running_ended, _S.exec_done),
        (_S.running_ended, _S.failed),
        (_S.running_ended, _S.fail_retryable),
        (_S.running_ended, _S.joining),
        (_S.fail_retryable, _S.launched),
        (_S.fail_retryable, _S.pending),
        (_S.fail_retryable, _S.failed),
        (_S.joining, _S.exec_done),
        (_S.joining, _S.failed),
    }
)
"""Every allowed ``(from, to)`` pair."""
