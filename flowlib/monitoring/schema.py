"""The monitoring database: Parsl's seven tables and column names, plus flowlib's additions.

Queries and notebooks written against Parsl's monitoring database read ours: the
tables ``workflow``, ``task``, ``try``, ``status``, ``resource``, ``node`` and
``block`` keep Parsl's names and columns. Additions (all nullable, so Parsl-style
readers ignore them): per try the failure (``task_exception_type``,
``task_exception_message``, ``task_traceback``, ``task_exit_code``,
``task_failure_reason``); on ``task`` the current state and executor
(``task_status_name``, ``task_executor``), kept up to date for fast filtering;
``status.task_status_prev`` and ``status.id`` (insertion order); on ``resource`` the
``hostname``, ``psutil_process_cpu_percent`` and ``psutil_process_num_threads``. The
schema version is alembic's ``alembic_version`` table; :data:`SCHEMA_VERSION` is the newest
revision this flowlib writes.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

SCHEMA_VERSION = "0002"
"""The alembic revision of the schema below."""

metadata = MetaData()

workflow = Table(
    "workflow",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("workflow_name", Text),
    Column("workflow_version", Text),
    Column("time_began", Float, nullable=False),
    Column("time_completed", Float),
    Column("host", Text),
    Column("user", Text),
    Column("rundir", Text),
    Column("tasks_failed_count", Integer, nullable=False, default=0),
    Column("tasks_completed_count", Integer, nullable=False, default=0),
)

task = Table(
    "task",
    metadata,
    Column("task_id", Integer, nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("task_depends", Text),
    Column("task_func_name", Text, nullable=False),
    Column("task_memoize", Boolean, nullable=False),
    Column("task_hashsum", Text),
    Column("task_inputs", Text),
    Column("task_outputs", Text),
    Column("task_stdin", Text),
    Column("task_stdout", Text),
    Column("task_stderr", Text),
    Column("task_time_invoked", Float),
    Column("task_time_returned", Float),
    Column("task_fail_count", Integer, nullable=False, default=0),
    Column("task_fail_cost", Float, nullable=False, default=0.0),
    # flowlib additions
    Column("task_status_name", String(32)),
    Column("task_executor", Text),
    Column("task_time_updated", Float),
    PrimaryKeyConstraint("task_id", "run_id"),
)
Index("ix_task_run_status", task.c.run_id, task.c.task_status_name, task.c.task_id)
Index("ix_task_run_func", task.c.run_id, task.c.task_func_name, task.c.task_id)
Index("ix_task_run_updated", task.c.run_id, task.c.task_time_updated)
Index("ix_task_run_executor", task.c.run_id, task.c.task_executor, task.c.task_id)

try_ = Table(
    "try",
    metadata,
    Column("try_id", Integer, nullable=False),
    Column("task_id", Integer, nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("block_id", Text),
    Column("hostname", Text),
    Column("task_executor", Text, nullable=False),
    Column("task_try_time_launched", Float),
    Column("task_try_time_running", Float),
    Column("task_try_time_returned", Float),
    Column("task_fail_history", Text),
    Column("task_joins", Text),
    # flowlib additions: the failure of this try
    Column("task_exception_type", Text),
    Column("task_exception_message", Text),
    Column("task_traceback", Text),
    Column("task_exit_code", Integer),
    Column("task_failure_reason", Text),
    PrimaryKeyConstraint("try_id", "task_id", "run_id"),
)
Index("ix_try_run_task", try_.c.run_id, try_.c.task_id)

status = Table(
    "status",
    metadata,
    # flowlib addition: insertion order, the cursor of the dashboard's live feed
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", Integer, nullable=False),
    Column("task_status_name", String(32), nullable=False),
    Column("timestamp", Float, nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("try_id", Integer, nullable=False),
    # flowlib addition
    Column("task_status_prev", String(32)),
)
Index("ix_status_run_task", status.c.run_id, status.c.task_id)
Index("ix_status_run_time", status.c.run_id, status.c.timestamp)
Index("ix_status_run_id", status.c.run_id, status.c.id)

resource = Table(
    "resource",
    metadata,
    Column("try_id", Integer, nullable=False),
    Column("task_id", Integer, nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("timestamp", Float, nullable=False),
    Column("resource_monitoring_interval", Float),
    Column("psutil_process_pid", Integer),
    Column("psutil_process_memory_percent", Float),
    Column("psutil_process_children_count", Float),
    Column("psutil_process_time_user", Float),
    Column("psutil_process_time_system", Float),
    Column("psutil_process_memory_virtual", Float),
    Column("psutil_process_memory_resident", Float),
    Column("psutil_process_disk_read", Float),
    Column("psutil_process_disk_write", Float),
    Column("psutil_process_status", Text),
    Column("psutil_cpu_num", Text),
    Column("psutil_process_num_ctx_switches_voluntary", Float),
    Column("psutil_process_num_ctx_switches_involuntary", Float),
    # flowlib additions (revision 0002): where, the CPU percent over the last interval, threads
    Column("hostname", Text),
    Column("psutil_process_cpu_percent", Float),
    Column("psutil_process_num_threads", Float),
)
Index("ix_resource_run_task", resource.c.run_id, resource.c.task_id)
Index("ix_resource_run_time", resource.c.run_id, resource.c.timestamp)

node = Table(
    "node",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("hostname", Text, nullable=False),
    Column("uid", Text, nullable=False),
    Column("block_id", Text),
    Column("cpu_count", Integer),
    Column("total_memory", Float),
    Column("active", Boolean),
    Column("worker_count", Integer),
    Column("python_version", Text),
    Column("timestamp", Float, nullable=False),
    Column("last_heartbeat", Float),
)
Index("ix_node_run", node.c.run_id, node.c.timestamp)

block = Table(
    "block",
    metadata,
    Column("run_id", String(64), nullable=False),
    Column("executor_label", Text, nullable=False),
    Column("block_id", Text, nullable=False),
    Column("job_id", Text),
    Column("timestamp", Float, nullable=False),
    Column("status", Text),
)
Index("ix_block_run", block.c.run_id, block.c.timestamp)

TABLES = (workflow, task, try_, status, resource, node, block)
"""Every table, in creation order."""
