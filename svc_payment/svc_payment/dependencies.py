"""Payment records (PostgreSQL) and the payment provider (Stripe)."""
import logging
from contextlib import contextmanager

import stripe
from nameko import config
from nameko.extensions import DependencyProvider
from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert

from shop_common import events as shop_events
from shop_common import faults
from shop_common import inbox as inbox_log
from shop_common import outbox as outbox_log
from shop_common.db import StoreProvider
from shop_common.metrics import PAYMENTS
from shop_common.money import MIN_CHARGE_CENTS, format_cents
from svc_payment import events
from svc_payment.exceptions import PaymentBusy, PaymentNotFound, PaymentProviderUnavailable
from svc_payment.models import PaymentStatus as Status
from svc_payment.models import inbox, outbox, payments
from svc_payment.schemas import payment_view

log = logging.getLogger(__name__)

CONSUMER = "payment_service"
# Everything Payment says about an order: sent again when the order's events come again.
OUTCOMES = (shop_events.PAYMENT_SUCCESS, shop_events.PAYMENT_FAILED, shop_events.PAYMENT_REFUNDED,
            shop_events.PAYMENT_VOIDED)


class PaymentStore:
    def __init__(self, transactions):
        self.transactions = transactions

    @contextmanager
    def exclusive(self, order_id):
        """Only one worker, of any instance, charges or refunds an order at a time.

        A PostgreSQL advisory lock held on its own connection for the whole
        Stripe exchange: PostgreSQL releases it the moment that connection
        ends, so a crashed worker never blocks the next one. Raises
        ``PaymentBusy`` (retried later) when another worker holds it.
        """
        key = f"payment:{order_id}"
        with self.transactions.engine.connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            if not connection.execute(text("SELECT pg_try_advisory_lock(hashtext(:key))"), {"key": key}).scalar():
                raise PaymentBusy("another worker is charging or refunding this order", {"order_id": order_id})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(hashtext(:key))"), {"key": key})

    def begin_charge(self, event, request):
        """The payment to charge for this OrderCreated, or None when there is nothing to charge.

        The PROCESSING row is committed before Stripe is called: a redelivery
        or a second worker finds it and resumes instead of charging again.
        A total Stripe cannot charge fails the payment at once.
        """
        if request["amount_cents"] < MIN_CHARGE_CENTS:
            return self._refuse(event, request, "amount_out_of_range",
                                f"a charge must be at least {format_cents(MIN_CHARGE_CENTS)}")
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

    def _refuse(self, event, request, failure_code, failure_message):
        with self.transactions.begin() as session:
            row = session.execute(
                insert(payments).values(status=Status.FAILED, failure_code=failure_code,
                                        failure_message=failure_message, **request)
                .on_conflict_do_nothing().returning(payments)
            ).first()
            inbox_log.claim(session, inbox, event, CONSUMER)
            if row is None:
                outbox_log.republish(session, outbox, request["order_id"], OUTCOMES)
                return None
            outbox_log.add(session, outbox, events.payment_failed(payment_view(row)))
        PAYMENTS.labels("failed").inc()
        return None

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

    def release_for_order(self, event):
        """The order ended without being paid (OrderCompleted): void the payment, or return it to refund now."""
        order_id = event["order_id"]
        with self.transactions.begin() as session:
            if not inbox_log.claim(session, inbox, event, CONSUMER):
                outbox_log.republish(session, outbox, order_id, OUTCOMES)
                return None
            if event["payload"]["status"] == "PAID":
                return None
            voided = session.execute(
                insert(payments).values(order_id=order_id, status=Status.VOIDED)
                .on_conflict_do_nothing().returning(payments)
            ).first()
            if voided is not None:
                # The order ended before its OrderCreated was applied here (it was dead-lettered):
                # a replay of it finds VOIDED and charges nothing.
                outbox_log.add(session, outbox, events.payment_voided(order_id))
                return None
            row = self._lock(session, order_id)
            if row.status == Status.PROCESSING:
                # A charge that did not finish (its OrderCreated was dead-lettered): it refunds when it does.
                session.execute(update(payments).where(payments.c.order_id == order_id)
                                .values(refund_requested=True, updated_at=func.now()))
                return None
            if row.status == Status.SUCCEEDED:
                return self._move(session, order_id, row.status, Status.REFUND_PENDING, {"refund_requested": True})
            return None  # declined (the Order service knows), or refunded already

    def finish_refund(self, order_id, refund_id):
        with self.transactions.begin() as session:
            row = self._lock(session, order_id)
            if row.status != Status.REFUND_PENDING:
                return
            payment = self._move(session, order_id, row.status, Status.REFUNDED, {"refund_id": refund_id})
            outbox_log.add(session, outbox, events.payment_refunded(payment))
        PAYMENTS.labels("refunded").inc()

    def refunds_due(self, older_than_seconds, limit=100):
        """Orders whose payment waits in REFUND_PENDING (a crash, or Stripe away), oldest first."""
        with self.transactions.begin() as session:
            return session.execute(
                select(payments.c.order_id).where(
                    payments.c.status == Status.REFUND_PENDING,
                    payments.c.updated_at < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, older_than_seconds),
                ).order_by(payments.c.updated_at).limit(limit)
            ).scalars().all()

    def refund_due(self, order_id):
        """The payment if it still waits for its refund (read under ``exclusive``), else None."""
        with self.transactions.begin() as session:
            row = session.execute(select(payments).where(payments.c.order_id == order_id)).first()
        return payment_view(row) if row is not None and row.status == Status.REFUND_PENDING else None

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
    Stripe honours them; we rely on neither alone). The fault flags
    ``payment_provider_error_rate`` (the call never reaches Stripe) and
    ``payment_provider_timeout_rate`` (Stripe acts, the answer is lost)
    act on every call.
    """

    def __init__(self, client):
        self.client = client

    def charge(self, payment, record_intent):
        intent_id = payment["intent_id"]
        try:
            if intent_id is None:
                intent = self._call(
                    self.client.v1.payment_intents.create,
                    params={
                        "amount": payment["amount_cents"],
                        "currency": payment["currency"].lower(),
                        "payment_method": payment["payment_method"],
                        "metadata": {"order_id": payment["order_id"]},
                    },
                    options={"idempotency_key": f"order-{payment['order_id']}-intent"},
                )
                intent_id = intent.id
                record_intent(intent_id)
            else:
                intent = self._call(self.client.v1.payment_intents.retrieve, intent_id)
            if intent.status == "requires_confirmation":
                intent = self._call(
                    self.client.v1.payment_intents.confirm, intent.id,
                    options={"idempotency_key": f"order-{payment['order_id']}-confirm"},
                )
        except stripe.CardError as exc:
            return {"succeeded": False, "intent_id": intent_id or _intent_of(exc),
                    "failure_code": exc.code or "card_declined", "failure_message": exc.user_message or str(exc)}
        except stripe.InvalidRequestError as exc:
            # e.g. an unknown payment method: retrying cannot help.
            return {"succeeded": False, "intent_id": intent_id,
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
            existing = self._call(self.client.v1.refunds.list, params={"payment_intent": payment["intent_id"]}).data
            if existing:
                return existing[0].id
            refund = self._call(
                self.client.v1.refunds.create,
                params={"payment_intent": payment["intent_id"], "metadata": {"order_id": payment["order_id"]}},
                options={"idempotency_key": f"order-{payment['order_id']}-refund"},
            )
            return refund.id
        except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
            raise PaymentProviderUnavailable(str(exc))

    @staticmethod
    def _call(method, *args, **kwargs):
        if faults.roll("payment_provider_error_rate", service="payment_service"):
            raise stripe.APIConnectionError("fault injected: Stripe could not be reached")
        result = method(*args, **kwargs)
        if faults.roll("payment_provider_timeout_rate", service="payment_service"):
            raise stripe.APIConnectionError("fault injected: Stripe's answer was lost")
        return result


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
