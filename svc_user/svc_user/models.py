"""The users database."""
from sqlalchemy import Column, DateTime, ForeignKey, Index, Integer, MetaData, String, Table, func, text
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
    # In every access token; bumping it revokes every token issued before (logout everywhere).
    Column("token_version", Integer, nullable=False, server_default="1"),
)

# One row per refresh token ever issued, by its SHA-256 (the token itself is never stored). A login
# starts a family; each refresh uses its token up and adds the next. A used token presented again
# means it was stolen: the whole family is revoked.
refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("family_id", String(36), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index("ix_refresh_tokens_family", refresh_tokens.c.family_id)
Index("ix_refresh_tokens_user", refresh_tokens.c.user_id)

CUSTOMER = "customer"
ADMIN = "admin"
