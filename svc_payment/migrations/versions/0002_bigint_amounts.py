"""payment amounts as bigint, like order totals

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
    op.alter_column("payments", "amount_cents", type_=sa.BigInteger)


def downgrade():
    op.alter_column("payments", "amount_cents", type_=sa.Integer)
