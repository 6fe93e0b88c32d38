"""the outbox wakes its relay itself: a trigger notifies when a row becomes unpublished

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""
from shop_common.storage.migrations import create_outbox_wakeup, drop_outbox_wakeup

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    create_outbox_wakeup()


def downgrade():
    drop_outbox_wakeup()
