"""The products database (shared with the Inventory service, which owns its own tables there)."""
from sqlalchemy import (
    BigInteger, Boolean, CheckConstraint, Column, DateTime, ForeignKey, Integer, MetaData, String, Table, Text, func,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

products = Table(
    "products",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("sku", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("price_cents", Integer, nullable=False),
    Column("currency", String(3), nullable=False, server_default="USD"),
    # Inventory's to write, the opening level included (a new product starts at 0). The database
    # itself refuses negative stock, whatever the code does.
    Column("stock", Integer, nullable=False, server_default="0"),
    # Hidden from the catalogue (and not orderable) when false; never deleted: orders point at it.
    Column("active", Boolean, nullable=False, server_default=true()),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("stock >= 0", name="ck_products_stock_not_negative"),
    CheckConstraint("price_cents >= 0", name="ck_products_price_not_negative"),
)

# The product's history: who created or changed it, and each changed field before and after, written in
# the transaction of the change itself (stock's own history is Inventory's ledger).
product_changes = Table(
    "product_changes",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("product_id", String(36), ForeignKey("products.id"), nullable=False),
    Column("action", String(20), nullable=False),  # created, changed
    Column("changed_by", String(100), nullable=False),
    Column("before", JSONB, nullable=False),
    Column("after", JSONB, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
