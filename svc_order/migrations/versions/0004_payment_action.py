"""what the shopper needs while a payment waits for 3-D Secure

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
    op.add_column("orders", sa.Column("payment_action", JSONB))


def downgrade():
    op.drop_column("orders", "payment_action")
