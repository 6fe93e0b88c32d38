"""recovery of lost events and stalled orders

Order: why a CANCELLED order was cancelled (sold out, deadline), when it was
settled (final, compensations confirmed), and how often its last event was
redriven and when next (no starvation, with backoff). An index for the
unsettled orders the recovery timers scan. Outbox and inbox: indexes for an
order's rows and for pruning.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa

from shop_common.storage.migrations import index_messaging_tables

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("orders", sa.Column("cancel_reason", sa.String(32)))
    op.add_column("orders", sa.Column("settled_at", sa.DateTime(timezone=True)))
    op.add_column("orders", sa.Column("redrive_count", sa.Integer, nullable=False, server_default="0"))
    op.add_column("orders", sa.Column("next_redrive_at", sa.DateTime(timezone=True)))
    op.execute("UPDATE orders SET cancel_reason = 'sold_out' WHERE status = 'CANCELLED'")
    # Final orders of before this revision were compensated by the facts themselves.
    op.execute("UPDATE orders SET settled_at = updated_at WHERE status <> 'PENDING'")
    op.create_index("ix_orders_unsettled", "orders", ["created_at"], postgresql_where=sa.text("settled_at IS NULL"))
    index_messaging_tables()


def downgrade():
    op.drop_index("ix_inbox_processed_at", "inbox")
    op.drop_index("ix_outbox_published_at", "outbox")
    op.drop_index("ix_outbox_message_key", "outbox")
    op.drop_index("ix_orders_unsettled", "orders")
    op.drop_column("orders", "next_redrive_at")
    op.drop_column("orders", "redrive_count")
    op.drop_column("orders", "settled_at")
    op.drop_column("orders", "cancel_reason")
