"""The first schema: Parsl's seven tables and flowlib's additions.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Revision 0001 is the schema module as it stands; the next revision must first
    # freeze this one (write its tables out here) before schema.py changes.
    from flowlib.monitoring.schema import metadata

    metadata.create_all(op.get_bind())


def downgrade() -> None:
    from flowlib.monitoring.schema import metadata

    metadata.drop_all(op.get_bind())
