"""Payment records (PostgreSQL) and the payment provider (Stripe)."""
import logging

import stripe
from nameko import config
from nameko.extensions import DependencyProvider
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert

from shop_common import events as shop_events
from shop_common import inbox as inbox_log
from shop_common import outbox as outbox_log
from shop_common.db import StoreProvider
from shop_common.metrics import PAYMENTS
from svc_payment import events
from svc_payment.exceptions import PaymentNotFound, PaymentProviderUnavailable
from svc_payment.models import PaymentStatus as Status
from svc_payment.models import inbox, outbox, payments
from svc_payment.schemas import payment_view

log = logging.getLogger(__name__)

CONSUMER = "payment_service"
OUTCOMES = (shop_events.PAYMENT_SUCCESS, shop_events.PAYMENT_FAILED, shop_events.PAYMENT_REFUNDED)


class PaymentStore:
    def __init__(self, transactions):
        self.transactions = transactions

    def begin_charge(self, event, request):
        """The payment to charge for this OrderCreated, or None when there is nothing to charge.

        The PROCESSING row is committed before Stripe is called: a redelivery
        or a second worker finds it and resumes instead of charging again.
        """
        with self.transactions.begin() as session:
            row = session.execute(
                insert(payments)
                .values(status=Status.PROCESSING, **request)
                .on_conflict_do_nothing()
                .returning(payments)
            ).first()
            if row is None:
                row = session.execute(
                    select(payments).where(payments.c.order_id == request["order_id"]).with_for_update()
                ).one()
                if row.status != Status.PROCESSING:
                    # Charged, declined or voided already: record the claim, and send the
                    # outcome again in case the Order service lost it.
                    inbox_log.claim(session, inbox, event, CONSUMER)
                    outbox_log.republish(session, outbox, row.order_id, OUTCOMES)
                    return None
            return payment_view(row)

    def record_intent(self, order_id, intent_id):
        with self.transactions.begin() as session:
            session.execute(
                update(payments).where(payments.c.order_id == order_id)
                .values(intent_id=intent_id, updated_at=func.now())
            )

    def finish_charge(self, event, outcome):
        """Record Stripe's answer and its event. Returns the payment if it must now be refunded."""
        to_refund = None
        with self.transactions.begin() as session:
            row = self._lock(session, event["order_id"])
            inbox_log.claim(session, inbox, event, CONSUMER)
            if row.status != Status.PROCESSING:
                return None
            details = {key: outcome.get(key) for key in ("intent_id", "failure_code", "failure_message")}
            if outcome["succeeded"]:
                payment = self._move(session, row.order_id, row.status, Status.SUCCEEDED, details)
                outbox_log.add(session, outbox, events.payment_success(payment))
                if row.refund_requested:  # stock ran out while we were charging
                    to_refund = self._move(session, row.order_id, Status.SUCCEEDED, Status.REFUND_PENDING, {})
            else:
                payment = self._move(session, row.order_id, row.status, Status.FAILED, details)
                outbox_log.add(session, outbox, events.payment_failed(payment))
        PAYMENTS.labels("succeeded" if outcome["succeeded"] else "failed").inc()
        return to_refund

    def cancel_for_order(self, event):
        """Stock ran out: void the payment, or return it if it must be refunded now."""
        order_id = event["order_id"]
        with self.transactions.begin() as session:
            if not inbox_log.claim(session, inbox, event, CONSUMER):
                return None
            voided = session.execute(
                insert(payments).values(order_id=order_id, status=Status.VOIDED)
                .on_conflict_do_nothing().returning(payments.c.order_id)
            ).first()
            if voided is not None:
                return None  # OrderCreated has not reached us; it will find VOIDED and charge nothing
            row = self._lock(session, order_id)
            if row.status == Status.PROCESSING:
                # A charge is in flight in another worker; it refunds when it finishes.
                session.execute(update(payments).where(payments.c.order_id == order_id)
                                .values(refund_requested=True, updated_at=func.now()))
                return None
            if row.status == Status.SUCCEEDED:
                return self._move(session, order_id, row.status, Status.REFUND_PENDING, {"refund_requested": True})
            return None

    def finish_refund(self, order_id, refund_id):
        with self.transactions.begin() as session:
            row = self._lock(session, order_id)
            if row.status != Status.REFUND_PENDING:
                return
            payment = self._move(session, order_id, row.status, Status.REFUNDED, {"refund_id": refund_id})
            outbox_log.add(session, outbox, events.payment_refunded(payment))
        PAYMENTS.labels("refunded").inc()

    def refunds_due(self, older_than_seconds):
        """Payments left in REFUND_PENDING (a crash between the decision and the refund)."""
        with self.transactions.begin() as session:
            rows = session.execute(
                select(payments).where(
                    payments.c.status == Status.REFUND_PENDING,
                    payments.c.updated_at < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, older_than_seconds),
                ).limit(100)
            ).all()
        return [payment_view(row) for row in rows]

    def get_payment(self, order_id):
        with self.transactions.begin() as session:
            row = session.execute(select(payments).where(payments.c.order_id == order_id)).first()
        if row is None:
            raise PaymentNotFound("no payment for this order", {"order_id": order_id})
        return payment_view(row)


    @staticmethod
    def _lock(session, order_id):
        return session.execute(select(payments).where(payments.c.order_id == order_id).with_for_update()).one()

    @staticmethod
    def _move(session, order_id, current, target, values):
        Status.check(current, target)
        updated = session.execute(
            update(payments).where(payments.c.order_id == order_id)
            .values(status=target, updated_at=func.now(), **values).returning(payments)
        ).one()
        return payment_view(updated)


class Payments(StoreProvider):
    store_class = PaymentStore


class StripePayments:
    """Charges and refunds through the ``stripe`` SDK.

    Every call carries an idempotency key derived from the order, and every
    step first looks at what Stripe already has, so a retried step never
    charges or refunds twice (localstripe ignores idempotency keys, real
    Stripe honours them; we rely on neither alone).
    """

    def __init__(self, client):
        self.client = client

    def charge(self, payment, record_intent):
        try:
            intent_id = payment["intent_id"]
            if intent_id is None:
                intent = self.client.v1.payment_intents.create(
                    params={
                        "amount": payment["amount_cents"],
                        "currency": payment["currency"].lower(),
                        "payment_method": payment["payment_method"],
                        "metadata": {"order_id": payment["order_id"]},
                    },
                    options={"idempotency_key": f"order-{payment['order_id']}-intent"},
                )
                record_intent(intent.id)
            else:
                intent = self.client.v1.payment_intents.retrieve(intent_id)
            if intent.status == "requires_confirmation":
                intent = self.client.v1.payment_intents.confirm(
                    intent.id, options={"idempotency_key": f"order-{payment['order_id']}-confirm"}
                )
        except stripe.CardError as exc:
            return {"succeeded": False, "intent_id": payment["intent_id"] or _intent_of(exc),
                    "failure_code": exc.code or "card_declined", "failure_message": exc.user_message or str(exc)}
        except stripe.InvalidRequestError as exc:
            # e.g. an unknown payment method: retrying cannot help.
            return {"succeeded": False, "intent_id": payment["intent_id"],
                    "failure_code": exc.code or "invalid_request", "failure_message": exc.user_message or str(exc)}
        except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
            raise PaymentProviderUnavailable(str(exc))
        if intent.status == "succeeded":
            return {"succeeded": True, "intent_id": intent.id}
        # stripe 16 objects are not dicts: read the error through to_dict().
        error = intent.last_payment_error.to_dict() if intent.last_payment_error else {}
        return {"succeeded": False, "intent_id": intent.id,
                "failure_code": error.get("code") or intent.status,
                "failure_message": error.get("message") or f"payment {intent.status}"}

    def refund(self, payment):
        try:
            existing = self.client.v1.refunds.list(params={"payment_intent": payment["intent_id"]}).data
            if existing:
                return existing[0].id
            refund = self.client.v1.refunds.create(
                params={"payment_intent": payment["intent_id"], "metadata": {"order_id": payment["order_id"]}},
                options={"idempotency_key": f"order-{payment['order_id']}-refund"},
            )
            return refund.id
        except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
            raise PaymentProviderUnavailable(str(exc))


def _intent_of(exc):
    error = getattr(exc, "error", None)
    intent = getattr(error, "payment_intent", None) if error else None
    return getattr(intent, "id", None) if intent else None


class PaymentProvider(DependencyProvider):
    def setup(self):
        settings = config.get("STRIPE") or {}
        self.client = stripe.StripeClient(
            settings.get("api_key", "sk_test_localstripe"),
            base_addresses={"api": settings.get("api_base", "https://api.stripe.com")},
            max_network_retries=2,
            http_client=stripe.RequestsClient(timeout=float(settings.get("timeout_seconds", 10))),
        )

    def get_dependency(self, worker_ctx):
        return StripePayments(self.client)
