"""an index of the payments the gauges count (those waiting for someone), so counting them reads a few rows

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

WATCHED = ("REQUIRES_ACTION", "SETTLING", "REFUND_PENDING", "REFUND_FAILED")  # PaymentStatus.WATCHED today


def upgrade():
    op.create_index("ix_payments_watched_status", "payments", ["status"],
                    postgresql_where=sa.column("status").in_(WATCHED))


def downgrade():
    op.drop_index("ix_payments_watched_status", table_name="payments")
