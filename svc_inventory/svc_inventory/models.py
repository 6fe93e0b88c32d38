"""Inventory's tables in the products database, and its stock state machine."""
from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, MetaData, String, Table, Text, func
from sqlalchemy.dialects.postgresql import JSONB

from shop_common.messaging.inbox import inbox_table
from shop_common.messaging.outbox import outbox_table
from shop_common.errors import IllegalReservationTransition

metadata = MetaData()

stock_reservations = Table(
    "stock_reservations",
    metadata,
    Column("order_id", String(36), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("items", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
# Every stock change made by hand: who, why, by how much, and what it left.
stock_ledger = Table(
    "stock_ledger",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("product_id", String(36), nullable=False),
    Column("delta", Integer, nullable=False),
    Column("stock_after", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index("ix_stock_ledger_product", stock_ledger.c.product_id, stock_ledger.c.id)
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)

# Inventory's view of the Product service's table: it only moves stock.
# Not part of Inventory's migrations; the Product service owns it.
products = Table(
    "products",
    MetaData(),
    Column("id", String(36), primary_key=True),
    Column("stock", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True)),
)


class ReservationState:
    """What Inventory decided for an order's stock.

    DEDUCTING -> DEDUCTED -> RESTORED   (paid; or the order ended unpaid, so the stock came back)
    DEDUCTING -> UNAVAILABLE            (sold out)
    VOIDED                              (the order ended before its OrderCreated was applied here)
    """

    DEDUCTING = "DEDUCTING"
    DEDUCTED = "DEDUCTED"
    UNAVAILABLE = "UNAVAILABLE"
    RESTORED = "RESTORED"
    VOIDED = "VOIDED"

    ALLOWED = {
        DEDUCTING: {DEDUCTED, UNAVAILABLE},
        DEDUCTED: {RESTORED},
        UNAVAILABLE: set(),
        RESTORED: set(),
        VOIDED: set(),
    }

    @classmethod
    def check(cls, current, target):
        if target not in cls.ALLOWED[current]:
            raise IllegalReservationTransition(
                f"stock reservation cannot go from {current} to {target}", {"from": current, "to": target}
            )
        return target
