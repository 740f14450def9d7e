"""The first schema: Parsl's seven tables and flowlib's additions, frozen as they were at revision 0001.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workflow",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("workflow_name", sa.Text()),
        sa.Column("workflow_version", sa.Text()),
        sa.Column("time_began", sa.Float(), nullable=False),
        sa.Column("time_completed", sa.Float()),
        sa.Column("host", sa.Text()),
        sa.Column("user", sa.Text()),
        sa.Column("rundir", sa.Text()),
        sa.Column("tasks_failed_count", sa.Integer(), nullable=False),
        sa.Column("tasks_completed_count", sa.Integer(), nullable=False),
    )
    op.create_table(
        "task",
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("task_depends", sa.Text()),
        sa.Column("task_func_name", sa.Text(), nullable=False),
        sa.Column("task_memoize", sa.Boolean(), nullable=False),
        sa.Column("task_hashsum", sa.Text()),
        sa.Column("task_inputs", sa.Text()),
        sa.Column("task_outputs", sa.Text()),
        sa.Column("task_stdin", sa.Text()),
        sa.Column("task_stdout", sa.Text()),
        sa.Column("task_stderr", sa.Text()),
        sa.Column("task_time_invoked", sa.Float()),
        sa.Column("task_time_returned", sa.Float()),
        sa.Column("task_fail_count", sa.Integer(), nullable=False),
        sa.Column("task_fail_cost", sa.Float(), nullable=False),
        sa.Column("task_status_name", sa.String(32)),
        sa.Column("task_executor", sa.Text()),
        sa.Column("task_time_updated", sa.Float()),
        sa.PrimaryKeyConstraint("task_id", "run_id"),
    )
    op.create_index("ix_task_run_executor", "task", ["run_id", "task_executor", "task_id"])
    op.create_index("ix_task_run_func", "task", ["run_id", "task_func_name", "task_id"])
    op.create_index("ix_task_run_status", "task", ["run_id", "task_status_name", "task_id"])
    op.create_index("ix_task_run_updated", "task", ["run_id", "task_time_updated"])
    op.create_table(
        "try",
        sa.Column("try_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("block_id", sa.Text()),
        sa.Column("hostname", sa.Text()),
        sa.Column("task_executor", sa.Text(), nullable=False),
        sa.Column("task_try_time_launched", sa.Float()),
        sa.Column("task_try_time_running", sa.Float()),
        sa.Column("task_try_time_returned", sa.Float()),
        sa.Column("task_fail_history", sa.Text()),
        sa.Column("task_joins", sa.Text()),
        sa.Column("task_exception_type", sa.Text()),
        sa.Column("task_exception_message", sa.Text()),
        sa.Column("task_traceback", sa.Text()),
        sa.Column("task_exit_code", sa.Integer()),
        sa.Column("task_failure_reason", sa.Text()),
        sa.PrimaryKeyConstraint("try_id", "task_id", "run_id"),
    )
    op.create_index("ix_try_run_task", "try", ["run_id", "task_id"])
    op.create_table(
        "status",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("task_status_name", sa.String(32), nullable=False),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("try_id", sa.Integer(), nullable=False),
        sa.Column("task_status_prev", sa.String(32)),
    )
    op.create_index("ix_status_run_id", "status", ["run_id", "id"])
    op.create_index("ix_status_run_task", "status", ["run_id", "task_id"])
    op.create_index("ix_status_run_time", "status", ["run_id", "timestamp"])
    op.create_table(
        "resource",
        sa.Column("try_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.Column("resource_monitoring_interval", sa.Float()),
        sa.Column("psutil_process_pid", sa.Integer()),
        sa.Column("psutil_process_memory_percent", sa.Float()),
        sa.Column("psutil_process_children_count", sa.Float()),
        sa.Column("psutil_process_time_user", sa.Float()),
        sa.Column("psutil_process_time_system", sa.Float()),
        sa.Column("psutil_process_memory_virtual", sa.Float()),
        sa.Column("psutil_process_memory_resident", sa.Float()),
        sa.Column("psutil_process_disk_read", sa.Float()),
        sa.Column("psutil_process_disk_write", sa.Float()),
        sa.Column("psutil_process_status", sa.Text()),
        sa.Column("psutil_cpu_num", sa.Text()),
        sa.Column("psutil_process_num_ctx_switches_voluntary", sa.Float()),
        sa.Column("psutil_process_num_ctx_switches_involuntary", sa.Float()),
        sa.PrimaryKeyConstraint(),
    )
    op.create_index("ix_resource_run_task", "resource", ["run_id", "task_id"])
    op.create_table(
        "node",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("hostname", sa.Text(), nullable=False),
        sa.Column("uid", sa.Text(), nullable=False),
        sa.Column("block_id", sa.Text()),
        sa.Column("cpu_count", sa.Integer()),
        sa.Column("total_memory", sa.Float()),
        sa.Column("active", sa.Boolean()),
        sa.Column("worker_count", sa.Integer()),
        sa.Column("python_version", sa.Text()),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.Column("last_heartbeat", sa.Float()),
    )
    op.create_index("ix_node_run", "node", ["run_id", "timestamp"])
    op.create_table(
        "block",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("executor_label", sa.Text(), nullable=False),
        sa.Column("block_id", sa.Text(), nullable=False),
        sa.Column("job_id", sa.Text()),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.Column("status", sa.Text()),
        sa.PrimaryKeyConstraint(),
    )
    op.create_index("ix_block_run", "block", ["run_id", "timestamp"])


def downgrade() -> None:
    for name in ("block", "node", "resource", "status", "try", "task", "workflow"):
        op.drop_table(name)
