"""Run kernel steps iteratively, so a chain of completions never deepens the stack.

A task completing can complete its dependents (a dependency failure, a cache hit,
an executor that finishes inline), which can complete theirs, and so on. Each step
is queued on the current thread; the outermost call drains the queue in a loop.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any


class Trampoline:
    """A per-thread queue of pending steps, drained by the outermost caller."""

    def __init__(self) -> None:
        self._local = threading.local()

    def run(self, step: Callable[..., Any], *args: Any) -> None:
        """Run ``step(*args)`` now, or after the step this thread is already running."""
        local = self._local
        queue = getattr(local, "queue", None)
        if queue is not None:
            queue.append((step, args))
            return
        local.queue = queue = deque(((step, args),))
        try:
            while queue:
                step, args = queue.popleft()
                step(*args)
        finally:
            local.queue = None
