"""The orders database and the order state machine."""
from sqlalchemy import (
    BigInteger, Column, DateTime, ForeignKey, Integer, MetaData, String, Table, Text, UniqueConstraint, func, text,
)
from sqlalchemy.dialects.postgresql import JSONB

from shop_common.inbox import inbox_table
from shop_common.outbox import outbox_table
from svc_order.exceptions import IllegalOrderTransition

metadata = MetaData()

orders = Table(
    "orders",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(36), nullable=False),
    Column("status", String(16), nullable=False),
    Column("stock_status", String(16), nullable=False),
    Column("payment_status", String(16), nullable=False),
    Column("total_cents", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("payment_method", String(100), nullable=False),
    Column("shipping_address", JSONB, nullable=False),
    Column("idempotency_key", String(200)),
    Column("message", Text),
    # Bumped on every change; the Redis copy never goes back to an older one.
    Column("version", Integer, nullable=False, server_default="1"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("user_id", "idempotency_key", name="uq_orders_user_idempotency_key"),
)
order_items = Table(
    "order_items",
    metadata,
    Column("order_id", String(36), ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True),
    Column("product_id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price_cents", Integer, nullable=False),
)
order_history = Table(
    "order_history",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("order_id", String(36), ForeignKey("orders.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", String(64)),
    Column("event_type", String(64), nullable=False),
    Column("status_after", String(16), nullable=False),
    Column("detail", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
notifications = Table(
    "notifications",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("user_id", String(36), nullable=False),
    Column("order_id", String(36), ForeignKey("orders.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("message", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("order_id", "kind", name="uq_notifications_order_kind"),
)
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)


class OrderStatus:
    PENDING = "PENDING"
    PAID = "PAID"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    CANCELLED = "CANCELLED"
    FINAL = (PAID, PAYMENT_FAILED, CANCELLED)


MESSAGES = {
    OrderStatus.PENDING: "We are reserving your items and taking payment.",
    OrderStatus.PAID: "Payment received: your order is confirmed.",
    OrderStatus.PAYMENT_FAILED: "Your payment was declined. Please try again with another payment method.",
    OrderStatus.CANCELLED: "Sorry, an item sold out before we could reserve it. "
                           "Your order was cancelled and any charge has been refunded.",
}


class Order:
    """An order's status, derived from two facts that arrive in any order:
    what Inventory did with the stock, and what Payment got from Stripe.

    PENDING -> PAID            stock deducted and payment succeeded
    PENDING -> PAYMENT_FAILED  payment declined (Inventory restores any stock)
    PENDING -> CANCELLED       stock unavailable (Payment refunds any charge)

    The first decisive fact wins; a fact arriving after the final status is
    recorded but changes nothing. Compensation follows the facts, not the
    status, so it is right whichever way the race goes.
    """

    def __init__(self, status, stock_status, payment_status):
        self.status = status
        self.stock_status = stock_status
        self.payment_status = payment_status

    @property
    def is_final(self):
        return self.status in OrderStatus.FINAL

    def record_stock_deducted(self):
        self.stock_status = "DEDUCTED"
        if self.payment_status == "SUCCEEDED" and not self.is_final:
            self._finish(OrderStatus.PAID)

    def record_stock_unavailable(self):
        self.stock_status = "UNAVAILABLE"
        if not self.is_final:
            self._finish(OrderStatus.CANCELLED)

    def record_payment_succeeded(self):
        self.payment_status = "SUCCEEDED"
        if self.stock_status == "DEDUCTED" and not self.is_final:
            self._finish(OrderStatus.PAID)

    def record_payment_failed(self):
        self.payment_status = "FAILED"
        if not self.is_final:
            self._finish(OrderStatus.PAYMENT_FAILED)

    def record_refund(self):
        self.payment_status = "REFUNDED"

    def record_stock_restored(self):
        self.stock_status = "RESTORED"

    def _finish(self, target):
        if self.status != OrderStatus.PENDING or target not in OrderStatus.FINAL:
            raise IllegalOrderTransition(
                f"order cannot go from {self.status} to {target}", {"from": self.status, "to": target}
            )
        self.status = target
