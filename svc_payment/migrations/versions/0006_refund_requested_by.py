"""who asked for a refund by hand (the operator's name, or admin:<user id>)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("payments", sa.Column("refund_requested_by", sa.String(100)))


def downgrade():
    op.drop_column("payments", "refund_requested_by")
