"""Per-task DEBUG records that carry the task's identity as record attributes,
the record of each started executor, and the summary of task states written at cleanup.

Each record has ``parsl.task`` / ``flowlib.task`` (the task id) and
``parsl.app_name`` / ``flowlib.app_name``; a dependency record adds
``parsl.dependency_task`` / ``flowlib.dependency_task``; a state change adds
``parsl.task_state`` (the new state's name); the hand-over to an executor adds
``parsl.executor`` (its label) and, when the executor numbers its tasks (htex),
``parsl.executor_task``. Log tools (a JSON
handler, a test's log capture) can select a task's records by these fields
instead of parsing messages. They are written only when the logger is enabled
for DEBUG, so the default INFO run log has no line per task.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowlib.dataflow.states import States
    from flowlib.dataflow.taskrecord import TaskRecord

#: The record attributes, under both spellings (Parsl's, then flowlib's).
TASK_KEYS = ("parsl.task", "flowlib.task")
APP_KEYS = ("parsl.app_name", "flowlib.app_name")
DEPENDENCY_KEYS = ("parsl.dependency_task", "flowlib.dependency_task")
STATE_KEYS = ("parsl.task_state", "flowlib.task_state")
BOUND_EXECUTOR_KEYS = ("parsl.executor", "flowlib.executor")
EXECUTOR_TASK_KEYS = ("parsl.executor_task", "flowlib.executor_task")
EXECUTOR_LABEL_KEYS = ("parsl.executor.label", "flowlib.executor.label")
EXECUTOR_TYPE_KEYS = ("parsl.executor.type", "flowlib.executor.type")


def task_fields(task_id: int, app_name: str) -> dict[str, Any]:
    """The ``extra=`` mapping that names one task."""
    fields: dict[str, Any] = dict.fromkeys(TASK_KEYS, task_id)
    fields.update(dict.fromkeys(APP_KEYS, app_name))
    return fields


def log_submission(logger: logging.Logger, record: TaskRecord, deps: Sequence[Future[Any]]) -> None:
    """One record binding the task id to its app, and one per dependency that is a task."""
    fields = task_fields(record.id, record.func_name)
    logger.debug("task %s is app %s (%d dependencies)", record.id, record.func_name, len(deps), extra=fields)
    for dep in deps:
        dep_record = getattr(dep, "task_record", None)
        dep_id = getattr(dep_record, "id", None)
        if dep_id is None:
            continue  # a plain Future has no task id
        extra = dict(fields)
        extra.update(dict.fromkeys(DEPENDENCY_KEYS, dep_id))
        logger.debug("task %s depends on task %s", record.id, dep_id, extra=extra)


def log_transition(logger: logging.Logger, record: TaskRecord, old: States, new: States) -> None:
    """At DEBUG: one record per state change, with the task and its new state's name as attributes."""
    fields = task_fields(record.id, record.func_name)
    fields.update(dict.fromkeys(STATE_KEYS, new.name))
    logger.debug(
        "task %s (%s) %s -> %s on %s", record.id, record.func_name, old.name, new.name, record.executor, extra=fields
    )


def log_binding(logger: logging.Logger, record: TaskRecord, executor_task: Any) -> None:
    """At DEBUG: the task was handed to its executor, with the executor's own task id when it has one."""
    fields = task_fields(record.id, record.func_name)
    fields.update(dict.fromkeys(BOUND_EXECUTOR_KEYS, record.executor))
    if executor_task is not None:
        fields.update(dict.fromkeys(EXECUTOR_TASK_KEYS, executor_task))
    logger.debug(
        "task %s submitted to executor %s (executor task %s)", record.id, record.executor, executor_task, extra=fields
    )


def log_executor_started(logger: logging.Logger, executor: Any) -> None:
    """At INFO, one record per started executor naming its label and class (``module.Class``)."""
    kind = f"{type(executor).__module__}.{type(executor).__qualname__}"
    fields: dict[str, Any] = dict.fromkeys(EXECUTOR_LABEL_KEYS, executor.label)
    fields.update(dict.fromkeys(EXECUTOR_TYPE_KEYS, kind))
    logger.info("started executor %s (%s)", executor.label, kind, extra=fields)


def log_summary(logger: logging.Logger, counts: Mapping[States, int]) -> None:
    """At cleanup, at INFO: how many tasks ended in each state (the states that have any)."""
    logger.info("Summary of tasks in DFK:")
    for state, count in sorted(counts.items()):
        if count:
            logger.info("Tasks in state States.%s: %d", state.name, count)
