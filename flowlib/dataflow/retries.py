"""Deciding whether a failed task is tried again.

Each failure costs 1, or what ``Config.retry_handler(exception, task_record)``
returns; the costs are summed in ``task_record['fail_cost']`` and the task is
tried again while that sum is at most ``Config.retries``. So a handler that
returns 0.5 with ``retries=2`` allows five tries (sums 0.5, 1.0, 1.5 and 2.0 are
within the budget, 2.5 is not), and a handler is consulted even with
``retries=0`` (returning 0 then still allows another try), as in Parsl.

An exception raised by the handler (or a return value that is not a number)
ends the task at once: its future fails with the handler's exception, chained to
the task's own failure through ``__context__``. It never reaches the kernel's
threads.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Callable
from typing import Any

from flowlib.dataflow.taskrecord import TaskRecord

logger = logging.getLogger(__name__)


def should_retry(
    record: TaskRecord,
    exc: BaseException,
    retries: int,
    retry_handler: Callable[[Any, TaskRecord], float] | None,
) -> tuple[bool, BaseException]:
    """Record the failure on ``record``; return (retry?, the exception to report)."""
    record.fail_count += 1
    record.fail_history = [*record.fail_history, repr(exc)]
    if retry_handler is None:
        if retries <= 0:
            return False, exc
        cost = 1.0
    else:
        try:
            returned = retry_handler(exc, record)
            if not isinstance(returned, numbers.Real):
                raise TypeError(
                    f"retry_handler {getattr(retry_handler, '__qualname__', retry_handler)!r} must return "
                    f"a number (the cost of this failure), not {type(returned).__name__}: {returned!r}"
                )
            cost = float(returned)
        except KeyboardInterrupt:
            raise
        except BaseException as handler_exc:  # noqa: BLE001 - the task's future reports it
            logger.warning("retry_handler raised for task %s; the task fails with its exception", record.id)
            if handler_exc.__context__ is None and handler_exc is not exc:
                handler_exc.__context__ = exc
            return False, handler_exc
    record.fail_cost += cost
    return record.fail_cost <= retries, exc
