"""Deciding whether a failed task is tried again.

Each failure costs 1, or what ``Config.retry_handler(exception, task_record)``
returns; the task is retried while its accumulated cost is at most
``Config.retries``. An exception raised by the handler becomes the task's failure.
"""

from __future__ import annotations

import logging
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
    if retries <= 0:
        return False, exc
    if retry_handler is None:
        cost = 1.0
    else:
        try:
            cost = float(retry_handler(exc, record))
        except Exception as handler_exc:
            logger.warning("retry_handler raised for task %s; the task fails with its exception", record.id)
            handler_exc.__context__ = exc
            return False, handler_exc
    record.fail_cost += cost
    return record.fail_cost <= retries, exc
