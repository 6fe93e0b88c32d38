"""Inventory's tables in the products database, and its stock state machine."""
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, func
from sqlalchemy.dialects.postgresql import JSONB

from shop_common.inbox import inbox_table
from shop_common.outbox import outbox_table
from svc_inventory.exceptions import IllegalReservationTransition

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
