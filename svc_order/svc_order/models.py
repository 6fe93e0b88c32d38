"""The orders database and the order state machine."""
from sqlalchemy import (
    BigInteger, Column, DateTime, ForeignKey, Index, Integer, MetaData, String, Table, Text, UniqueConstraint, func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from shop_common.messaging.inbox import inbox_table
from shop_common.messaging.outbox import outbox_table
from shop_common.errors import IllegalOrderTransition

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
    # SHA-256 of the request the key placed: the same key with another request is refused, not answered.
    Column("request_fingerprint", String(64)),
    Column("message", Text),
    # Bumped on every change; the Redis copy never goes back to an older one.
    Column("version", Integer, nullable=False, server_default="1"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # While the shopper must authenticate the payment (3-D Secure): what Stripe.js needs, from PaymentActionRequired.
    Column("payment_action", JSONB),
    # Why a CANCELLED order was cancelled (sold_out, deadline).
    Column("cancel_reason", String(32)),
    # Set when the order is final and every compensation it needs is confirmed (Order.is_settled).
    Column("settled_at", DateTime(timezone=True)),
    # Recovery of lost events: how often this order's last event was published again, and when next.
    Column("redrive_count", Integer, nullable=False, server_default="0"),
    Column("next_redrive_at", DateTime(timezone=True)),
    UniqueConstraint("user_id", "idempotency_key", name="uq_orders_user_idempotency_key"),
)
# The orders the recovery timers look at: not settled yet (PENDING, or waiting for compensations).
Index("ix_orders_unsettled", orders.c.created_at, postgresql_where=orders.c.settled_at.is_(None))
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


class CancelReason:
    SOLD_OUT = "sold_out"
    DEADLINE = "deadline"
    OPERATOR = "operator"  # cancelled by the shop's staff (order_service.cancel_order)


MESSAGES = {
    OrderStatus.PENDING: "We are reserving your items and taking payment.",
    OrderStatus.PAID: "Payment received: your order is confirmed.",
    OrderStatus.PAYMENT_FAILED: "Your payment was declined. Please try again with another payment method.",
    (OrderStatus.CANCELLED, CancelReason.SOLD_OUT): "Sorry, an item sold out before we could reserve it. "
                                                   "Your order was cancelled and any charge has been refunded.",
    (OrderStatus.CANCELLED, CancelReason.DEADLINE): "Sorry, we could not confirm your order in time, so it was "
                                                   "cancelled. Any charge will be refunded.",
    (OrderStatus.CANCELLED, CancelReason.OPERATOR): "Your order was cancelled by our team. Any reserved items "
                                                   "were released and any charge will be refunded.",
}


AUTHENTICATE_MESSAGE = "Please confirm the payment with your bank (3-D Secure) to complete your order."


def message_for(status, cancel_reason=None):
    return MESSAGES[(status, cancel_reason)] if status == OrderStatus.CANCELLED else MESSAGES[status]


class Order:
    """An order's status, derived from two facts that arrive in any order:
    what Inventory did with the stock, and what Payment got from Stripe.

    PENDING -> PAID            stock deducted and payment succeeded
    PENDING -> PAYMENT_FAILED  payment declined
    PENDING -> CANCELLED       stock unavailable, no outcome before the order's deadline, or an operator

    The first decisive fact wins; a fact arriving after the final status is
    recorded but changes nothing. The final status goes out as
    ``OrderCompleted``; for anything but PAID, Inventory gives back any stock
    and Payment refunds or voids any charge, and their answers settle the
    order (``is_settled``).
    """

    STOCK_SETTLED = ("RESTORED", "UNAVAILABLE")
    PAYMENT_SETTLED = ("FAILED", "REFUNDED", "VOIDED")

    def __init__(self, status, stock_status, payment_status, cancel_reason=None):
        self.status = status
        self.stock_status = stock_status
        self.payment_status = payment_status
        self.cancel_reason = cancel_reason

    @property
    def is_final(self):
        return self.status in OrderStatus.FINAL

    @property
    def is_settled(self):
        """Final, and every compensation it needs is confirmed."""
        if self.status == OrderStatus.PAID:
            return True
        return (self.is_final and self.stock_status in self.STOCK_SETTLED
                and self.payment_status in self.PAYMENT_SETTLED)

    @property
    def message(self):
        if self.status == OrderStatus.PENDING and self.payment_status == "REQUIRES_ACTION":
            return AUTHENTICATE_MESSAGE
        return message_for(self.status, self.cancel_reason)

    def record_stock_deducted(self):
        self.stock_status = "DEDUCTED"
        if self.payment_status == "SUCCEEDED" and not self.is_final:
            self._finish(OrderStatus.PAID)

    def record_stock_unavailable(self):
        self.stock_status = "UNAVAILABLE"
        if not self.is_final:
            self._finish(OrderStatus.CANCELLED, CancelReason.SOLD_OUT)

    def record_payment_succeeded(self):
        self.payment_status = "SUCCEEDED"
        if self.stock_status == "DEDUCTED" and not self.is_final:
            self._finish(OrderStatus.PAID)

    def record_payment_failed(self):
        self.payment_status = "FAILED"
        if not self.is_final:
            self._finish(OrderStatus.PAYMENT_FAILED)

    def record_payment_action_required(self):
        """The shopper must authenticate; the order waits for them (a late notice changes nothing)."""
        if self.payment_status == "PENDING" and not self.is_final:
            self.payment_status = "REQUIRES_ACTION"

    def record_refund(self):
        self.payment_status = "REFUNDED"

    def record_payment_voided(self):
        self.payment_status = "VOIDED"

    def record_stock_restored(self):
        self.stock_status = "RESTORED"

    def cancel(self, reason):
        """The Order service's own decision (the deadline passed, an operator); only a PENDING order can be cancelled."""
        self._finish(OrderStatus.CANCELLED, reason)

    def _finish(self, target, cancel_reason=None):
        if self.status != OrderStatus.PENDING or target not in OrderStatus.FINAL:
            raise IllegalOrderTransition(
                f"order cannot go from {self.status} to {target}", {"from": self.status, "to": target}
            )
        self.status = target
        self.cancel_reason = cancel_reason
