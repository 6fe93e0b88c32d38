"""asynchronous payment outcomes, refunds that finish, webhooks and disputes

Columns for 3-D Secure deadlines, refund status and retries, and the
payment timer's schedule; the tables of applied Stripe events and of
disputes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("payments", sa.Column("charge_attempts", sa.Integer, nullable=False, server_default="0"))
    op.add_column("payments", sa.Column("action_expires_at", sa.DateTime(timezone=True)))
    op.add_column("payments", sa.Column("refund_status", sa.String(32)))
    op.add_column("payments", sa.Column("refund_attempts", sa.Integer, nullable=False, server_default="0"))
    op.add_column("payments", sa.Column("refund_failure", sa.Text))
    op.add_column("payments", sa.Column("refund_reason", sa.Text))
    op.add_column("payments", sa.Column("next_check_at", sa.DateTime(timezone=True)))
    # Refunds already waiting are looked at on the timer's next pass.
    op.execute("UPDATE payments SET next_check_at = now() WHERE status = 'REFUND_PENDING'")
    op.create_index("ix_payments_intent_id", "payments", ["intent_id"])
    op.create_index("ix_payments_next_check_at", "payments", ["next_check_at"],
                    postgresql_where=sa.text("next_check_at IS NOT NULL"))
    op.create_table(
        "stripe_events",
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("order_id", sa.String(36)),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "disputes",
        sa.Column("dispute_id", sa.String(255), primary_key=True),
        sa.Column("order_id", sa.String(36)),
        sa.Column("intent_id", sa.String(100)),
        sa.Column("amount_cents", sa.BigInteger),
        sa.Column("currency", sa.String(3)),
        sa.Column("reason", sa.String(100)),
        sa.Column("status", sa.String(32)),
        sa.Column("raw", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade():
    op.drop_table("disputes")
    op.drop_table("stripe_events")
    op.drop_index("ix_payments_next_check_at", "payments")
    op.drop_index("ix_payments_intent_id", "payments")
    for column in ("next_check_at", "refund_reason", "refund_failure", "refund_attempts", "refund_status",
                   "action_expires_at", "charge_attempts"):
        op.drop_column("payments", column)
