"""Submission pacing: a main thread far ahead of its executors waits a moment for tasks to finish.

A loop that submits short tasks faster than they run keeps the submitting
thread busy while the executor's I/O thread needs the same interpreter lock to
send those tasks and take their results. Each of its system calls then hands
the lock over and waits to get it back, so the farther the loop runs ahead,
the more of the submitter's time goes into thread switches instead of tasks
(a million no-op tasks on htex ran at about half the rate of ten thousand).

Pacing keeps the lead bounded without changing what a program can do: when a
main-thread submission finds more than ``TASKS_PER_SLOT`` tasks in flight per
task slot of the executors (at least ``MIN_LIMIT``), it waits until a tenth of
them have finished, but never longer than ``WAIT_SECONDS``. A wait that times
out means tasks finish slowly, where pacing gains nothing: it stays off for
``PAUSE_SECONDS``. So no submission ever waits for a task that cannot finish
(a task blocked on something the loop does later, a block still queued), and a
slow workload loses at most one short wait every few seconds.

Executors say how many tasks they run at once through
:meth:`~flowlib.executors.base.FlowlibExecutor.task_slots`; when any executor
cannot say, the kernel does not pace.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowlib.executors.base import FlowlibExecutor

TASKS_PER_SLOT = 16
"""In-flight tasks per task slot beyond which a submission waits."""
MIN_LIMIT = 2_000
"""The in-flight count below which a submission never waits, however few the slots."""
WAIT_SECONDS = 0.1
"""The longest one paced submission waits."""
PAUSE_SECONDS = 10.0
"""How long pacing stays off after a wait that timed out."""
REFRESH_SECONDS = 0.5
"""How often the executors' slot count is read again while the kernel is above ``MIN_LIMIT``."""


class SubmissionPacer:
    """Decides when a main-thread submission should wait, from the executors' slots and recent waits."""

    def __init__(self, slots: Callable[[], int | None]) -> None:
        self._slots = slots
        self._limit: int | None = MIN_LIMIT
        self._read_at = -math.inf
        self._paused_until = -math.inf
        self.waits = 0
        """Paced submissions so far."""
        self.timeouts = 0
        """Paced submissions whose wait timed out (each turned pacing off for ``PAUSE_SECONDS``)."""

    def limit(self, now: float) -> int | None:
        """The in-flight count at which a submission at monotonic time ``now`` waits, or None: do not wait."""
        if now < self._paused_until:
            return None
        if now - self._read_at >= REFRESH_SECONDS:
            self._read_at = now
            slots = self._slots()
            self._limit = None if slots is None else max(MIN_LIMIT, TASKS_PER_SLOT * slots)
        return self._limit

    def waited(self, now: float, *, timed_out: bool) -> None:
        """Record a paced wait that ended at ``now``; one that timed out turns pacing off for a while."""
        self.waits += 1
        if timed_out:
            self.timeouts += 1
            self._paused_until = now + PAUSE_SECONDS


def resume_level(limit: int) -> int:
    """The in-flight count a paced submission waits for: a tenth below ``limit``."""
    return limit - max(1, limit // 10)


def executor_slots(executors: Iterable[FlowlibExecutor]) -> int | None:
    """The task slots of all ``executors`` together, or None when any of them cannot say."""
    total = 0
    for executor in executors:
        slots = executor.task_slots()
        if slots is None:
            return None
        total += slots
    return total
