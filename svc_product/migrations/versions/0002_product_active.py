"""products can be hidden from the catalogue without being deleted

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("products", sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()))


def downgrade():
    op.drop_column("products", "active")
