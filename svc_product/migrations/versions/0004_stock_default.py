"""a new product starts with no stock: its opening stock is set by Inventory (the one writer of stock)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.alter_column("products", "stock", server_default=sa.text("0"))


def downgrade():
    op.alter_column("products", "stock", server_default=None)
