"""reconciliation with Stripe

The order's final status on each payment, and the refunds of charges no
payment claims.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("payments", sa.Column("order_status", sa.String(16)))
    op.create_index("ix_payments_created_at", "payments", ["created_at"])
    op.create_table(
        "orphan_refunds",
        sa.Column("intent_id", sa.String(100), primary_key=True),
        sa.Column("refund_id", sa.String(100)),
        sa.Column("order_id", sa.String(36)),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade():
    op.drop_table("orphan_refunds")
    op.drop_index("ix_payments_created_at", "payments")
    op.drop_column("payments", "order_status")
