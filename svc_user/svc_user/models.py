"""The users database."""
from sqlalchemy import Column, DateTime, MetaData, String, Table, func, text
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    # Stored lower-cased: one account per address, whatever the caller's casing.
    Column("email", String(254), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("name", String(200), nullable=False),
    Column("address", JSONB, nullable=False),
    Column("preferences", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("role", String(16), nullable=False, server_default="customer"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

CUSTOMER = "customer"
ADMIN = "admin"
