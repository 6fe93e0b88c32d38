"""The payments database and the payment state machine."""
from sqlalchemy import (
    BigInteger, Boolean, Column, DateTime, Index, Integer, MetaData, String, Table, Text, false, func,
)
from sqlalchemy.dialects.postgresql import JSONB

from shop_common.messaging.inbox import inbox_table
from shop_common.messaging.outbox import outbox_table
from shop_common.errors import IllegalPaymentTransition

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
    # How many times a worker began this charge: above one, a crash may have left an intent unrecorded.
    Column("charge_attempts", Integer, nullable=False, server_default="0"),
    # 3-D Secure: after this the intent is cancelled and the payment fails.
    Column("action_expires_at", DateTime(timezone=True)),
    Column("refund_status", String(32)),  # Stripe's word on refund_id: pending, succeeded, failed, canceled
    Column("refund_attempts", Integer, nullable=False, server_default="0"),
    Column("refund_failure", Text),
    Column("refund_reason", Text),
    Column("refund_requested_by", String(100)),  # an operator's refund: who (the audit)
    # The order's final status as OrderCompleted said (reconciliation compares it with Stripe).
    Column("order_status", String(16)),
    # When the payment timer looks at this row again (a refund to retry, an intent to re-fetch).
    Column("next_check_at", DateTime(timezone=True)),
    # While PROCESSING: the worker talking to Stripe (host:pid) and when its lease runs out. The advisory
    # lock (PaymentStore.exclusive) is what excludes a second worker; these say who holds it, for operators.
    Column("charging_by", String(100)),
    Column("charging_until", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index("ix_payments_intent_id", payments.c.intent_id)
Index("ix_payments_created_at", payments.c.created_at)  # reconciliation windows
Index("ix_payments_next_check_at", payments.c.next_check_at, postgresql_where=payments.c.next_check_at.is_not(None))
# Stripe's webhook events applied here, by Stripe's event id: a redelivery changes nothing.
stripe_events = Table(
    "stripe_events",
    metadata,
    Column("event_id", String(255), primary_key=True),
    Column("event_type", String(100), nullable=False),
    Column("order_id", String(36)),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
disputes = Table(
    "disputes",
    metadata,
    Column("dispute_id", String(255), primary_key=True),
    Column("order_id", String(36)),
    Column("intent_id", String(100)),
    Column("amount_cents", BigInteger),
    Column("currency", String(3)),
    Column("reason", String(100)),
    Column("status", String(32)),
    Column("raw", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
# Charges no payment of ours claims (found by reconciliation), refunded by an operator: one refund each.
orphan_refunds = Table(
    "orphan_refunds",
    metadata,
    Column("intent_id", String(100), primary_key=True),
    Column("refund_id", String(100)),
    Column("order_id", String(36)),
    Column("amount_cents", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
# One periodic reconciliation per interval, whichever instance claims it; its findings by kind, which every
# instance reports as shop_payments_unreconciled (so no instance shows a stale or partial figure).
reconciliation_runs = Table(
    "reconciliation_runs",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True)),
    Column("summary", JSONB),
)
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)


class PaymentStatus:
    """One state machine, driven alike by confirm's answer, webhooks and re-fetches of the intent.

    PROCESSING       we are creating or confirming the intent
    REQUIRES_ACTION  the shopper must authenticate (3-D Secure) before action_expires_at
    SETTLING         Stripe accepted the payment and has not settled it yet (bank debits)
    SUCCEEDED        money taken
    FAILED           declined, authentication failed or abandoned: no money taken
    VOIDED           the order ended before any money was taken; none will be
    REFUND_PENDING   money taken that must go back (the order ended unpaid, or a charge landed late)
    REFUNDED         Stripe confirmed the refund
    REFUND_FAILED    Stripe refused the refund too often: parked for an operator (RefundsStuck)

    A charge that succeeds after its payment was recorded FAILED or VOIDED
    (a late authentication, a late settlement) goes to REFUND_PENDING.
    """

    PROCESSING = "PROCESSING"
    REQUIRES_ACTION = "REQUIRES_ACTION"
    SETTLING = "SETTLING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    REFUND_PENDING = "REFUND_PENDING"
    REFUNDED = "REFUNDED"
    REFUND_FAILED = "REFUND_FAILED"
    VOIDED = "VOIDED"

    OPEN = (PROCESSING, REQUIRES_ACTION, SETTLING)  # no outcome yet
    WATCHED = (REQUIRES_ACTION, SETTLING, REFUND_PENDING, REFUND_FAILED)  # counted for the dashboards and alerts

    ALLOWED = {
        PROCESSING: {REQUIRES_ACTION, SETTLING, SUCCEEDED, FAILED, VOIDED},
        REQUIRES_ACTION: {SETTLING, SUCCEEDED, FAILED, VOIDED},
        SETTLING: {SUCCEEDED, FAILED, VOIDED},
        SUCCEEDED: {REFUND_PENDING},
        FAILED: {REFUND_PENDING},
        VOIDED: {REFUND_PENDING},
        REFUND_PENDING: {REFUNDED, REFUND_FAILED},
        REFUND_FAILED: {REFUND_PENDING},
        REFUNDED: set(),
    }

    @classmethod
    def check(cls, current, target):
        if target not in cls.ALLOWED[current]:
            raise IllegalPaymentTransition(
                f"payment cannot go from {current} to {target}", {"from": current, "to": target}
            )
        return target


# The gauges count only payments that wait for someone: a few rows, however many payments there are.
Index("ix_payments_watched_status", payments.c.status, postgresql_where=payments.c.status.in_(PaymentStatus.WATCHED))
