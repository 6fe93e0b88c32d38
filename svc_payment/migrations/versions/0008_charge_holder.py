"""who is charging a PROCESSING payment, and until when its lease runs

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("payments", sa.Column("charging_by", sa.String(100)))
    op.add_column("payments", sa.Column("charging_until", sa.DateTime(timezone=True)))


def downgrade():
    op.drop_column("payments", "charging_until")
    op.drop_column("payments", "charging_by")
