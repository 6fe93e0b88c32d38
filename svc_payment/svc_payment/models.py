"""The payments database and the payment state machine."""
from sqlalchemy import BigInteger, Boolean, Column, DateTime, MetaData, String, Table, Text, false, func

from shop_common.inbox import inbox_table
from shop_common.outbox import outbox_table
from svc_payment.exceptions import IllegalPaymentTransition

metadata = MetaData()

payments = Table(
    "payments",
    metadata,
    # One payment per order: the primary key is what forbids a second charge.
    Column("order_id", String(36), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("amount_cents", BigInteger),
    Column("currency", String(3)),
    Column("payment_method", String(100)),
    Column("intent_id", String(100)),
    Column("refund_requested", Boolean, nullable=False, server_default=false()),
    Column("refund_id", String(100)),
    Column("failure_code", String(100)),
    Column("failure_message", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)


class PaymentStatus:
    """PROCESSING -> SUCCEEDED -> REFUND_PENDING -> REFUNDED
    PROCESSING -> FAILED
    VOIDED: the order was cancelled before it was charged; it never will be.
    """

    PROCESSING = "PROCESSING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    REFUND_PENDING = "REFUND_PENDING"
    REFUNDED = "REFUNDED"
    VOIDED = "VOIDED"

    ALLOWED = {
        PROCESSING: {SUCCEEDED, FAILED},
        SUCCEEDED: {REFUND_PENDING},
        REFUND_PENDING: {REFUNDED},
        FAILED: set(),
        REFUNDED: set(),
        VOIDED: set(),
    }

    @classmethod
    def check(cls, current, target):
        if target not in cls.ALLOWED[current]:
            raise IllegalPaymentTransition(
                f"payment cannot go from {current} to {target}", {"from": current, "to": target}
            )
        return target
