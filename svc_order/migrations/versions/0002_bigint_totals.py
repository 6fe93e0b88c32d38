"""order totals as bigint

An order may hold 50 lines of up to 1000 units at up to 999,999.99 each:
its total in cents can pass 2**31.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.alter_column("orders", "total_cents", type_=sa.BigInteger, existing_nullable=False)


def downgrade():
    op.alter_column("orders", "total_cents", type_=sa.Integer, existing_nullable=False)
