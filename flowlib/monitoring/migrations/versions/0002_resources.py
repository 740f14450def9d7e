"""Resource samples: the host, CPU percent and thread count of each, and an index by time.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("resource") as batch:
        batch.add_column(sa.Column("hostname", sa.Text()))
        batch.add_column(sa.Column("psutil_process_cpu_percent", sa.Float()))
        batch.add_column(sa.Column("psutil_process_num_threads", sa.Float()))
    op.create_index("ix_resource_run_time", "resource", ["run_id", "timestamp"])


def downgrade() -> None:
    op.drop_index("ix_resource_run_time", "resource")
    with op.batch_alter_table("resource") as batch:
        batch.drop_column("psutil_process_num_threads")
        batch.drop_column("psutil_process_cpu_percent")
        batch.drop_column("hostname")
