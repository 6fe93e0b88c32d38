"""outbox and inbox indexes

Looking up an order's outbox rows (republishing outcomes) and pruning
published outbox rows and old inbox rows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""
from alembic import op

from shop_common.storage.migrations import index_messaging_tables

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    index_messaging_tables()


def downgrade():
    op.drop_index("ix_inbox_processed_at", "inbox")
    op.drop_index("ix_outbox_published_at", "outbox")
    op.drop_index("ix_outbox_message_key", "outbox")
