"""what request an idempotency key placed, so a reuse with another request is refused

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("orders", sa.Column("request_fingerprint", sa.String(64)))


def downgrade():
    op.drop_column("orders", "request_fingerprint")
