"""payments, inbox and outbox

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa

from shop_common.storage.migrations import create_messaging_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "payments",
        sa.Column("order_id", sa.String(36), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("amount_cents", sa.Integer),
        sa.Column("currency", sa.String(3)),
        sa.Column("payment_method", sa.String(100)),
        sa.Column("intent_id", sa.String(100)),
        sa.Column("refund_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("refund_id", sa.String(100)),
        sa.Column("failure_code", sa.String(100)),
        sa.Column("failure_message", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_payments_status", "payments", ["status", "updated_at"])
    create_messaging_tables()


def downgrade():
    op.drop_table("inbox")
    op.drop_table("outbox")
    op.drop_table("payments")
