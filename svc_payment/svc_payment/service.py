import logging
import os
import time
from datetime import datetime, timezone

from nameko.timer import timer

from shop_common import audit
from shop_common.errors import IllegalPaymentTransition
from shop_common.messaging import events
from shop_common.messaging.kafka import kafka_event
from shop_common.messaging.outbox import OutboxRelay
from shop_common.rpc import rpc
from shop_common.service import ServiceBase
from shop_common.telemetry.metrics import PAYMENT_DISPUTES, PAYMENTS_BY_STATUS, PAYMENTS_UNRECONCILED
from svc_payment import models, reconciliation, schemas
from svc_payment.models import PaymentStatus
from svc_payment.service_name import NAME
from svc_payment.store import Payments
from svc_payment.stripe_client import PaymentProvider

log = logging.getLogger(__name__)

# How often the timer looks for refunds to retry and open payments to re-fetch (due ones only).
CHECK_INTERVAL_SECONDS = float(os.environ.get("SHOP_PAYMENT_CHECK_INTERVAL_SECONDS", "5"))
GAUGES_INTERVAL_SECONDS = float(os.environ.get("SHOP_PAYMENT_GAUGES_INTERVAL_SECONDS", "15"))
# Reconciliation: how often, over how far back, and how old a payment must be to be judged (in flight before).
RECONCILE_INTERVAL_SECONDS = float(os.environ.get("SHOP_RECONCILE_INTERVAL_SECONDS", "3600"))
RECONCILE_CHECK_SECONDS = min(RECONCILE_INTERVAL_SECONDS, 60.0)  # how often an instance asks whether a run is due
RECONCILE_WINDOW_SECONDS = int(os.environ.get("SHOP_RECONCILE_WINDOW_SECONDS", str(2 * 86400)))
RECONCILE_GRACE_SECONDS = int(os.environ.get("SHOP_RECONCILE_GRACE_SECONDS", "900"))
# A webhook waits this long for a worker that is talking to Stripe about the same order.
WEBHOOK_LOCK_WAIT_SECONDS = 5.0


class PaymentService(ServiceBase):
    name = NAME
    package = "svc-payment"

    payments = Payments()
    provider = PaymentProvider()
    relay = OutboxRelay(models.outbox, models.inbox)

    @kafka_event(events.ORDERS_TOPIC, events.ORDER_CREATED)
    def on_order_created(self, event):
        with self.payments.exclusive(event["order_id"]):
            payment = self.payments.begin_charge(event, schemas.charge_request(event))
            if payment is None:
                return
            intent = self.provider.charge(
                payment, record_intent=lambda intent_id: self.payments.record_intent(payment["order_id"], intent_id)
            )
            self._follow(self.payments.apply_intent(payment["order_id"], intent, event=event))

    @kafka_event(events.ORDERS_TOPIC, events.ORDER_COMPLETED)
    def on_order_completed(self, event):
        if events.order_was_paid(event):
            # Recorded only: a paid order leaves Stripe nothing to do, so it needs no lock on the exchange.
            self.payments.release_for_order(event)
            return
        with self.payments.exclusive(event["order_id"]):
            self._follow(self.payments.release_for_order(event))

    @rpc
    def apply_stripe_event(self, body):
        """A webhook event the gateway verified (signature and age); each Stripe event id applies once.

        The event says what changed; what Stripe holds now is fetched again
        and applied, so events arriving late or out of order cannot move a
        payment backwards.
        """
        event = schemas.stripe_event(body)
        if self.payments.stripe_event_seen(event["id"]):
            return {"event_id": event["id"], "applied": False, "reason": "already applied"}
        order_id = self._order_of(event["object"])
        if event["type"] == "charge.dispute.created":
            if self.payments.record_dispute(event["object"], order_id):
                PAYMENT_DISPUTES.inc()
                log.error("charge disputed (%s): see the runbook, PaymentDisputed", event["object"].get("reason"),
                          extra={"order_id": order_id})
        elif order_id is not None and event["type"].startswith("payment_intent."):
            # A payment with its outcome never reopens: only an open one is worth the lock and a re-fetch.
            if self.payments.payment_in(order_id, PaymentStatus.OPEN) is not None:
                with self.payments.exclusive(order_id, wait_seconds=WEBHOOK_LOCK_WAIT_SECONDS):
                    self._refetch(order_id)
        elif order_id is not None and event["type"] in schemas.REFUND_EVENTS:
            with self.payments.exclusive(order_id, wait_seconds=WEBHOOK_LOCK_WAIT_SECONDS):
                self._refund(order_id)
        self.payments.record_stripe_event(event["id"], event["type"], order_id)
        return {"event_id": event["id"], "applied": order_id is not None, "order_id": order_id}

    @timer(interval=CHECK_INTERVAL_SECONDS)
    def look_after_payments(self):
        """Retry refunds that failed or never finished, re-fetch intents waiting for an outcome, and
        cancel those nobody authenticated in time. Each payment on its own: one bad one holds up none."""
        for order_id, status in self.payments.claim_due():
            try:
                with self.payments.exclusive(order_id):
                    if status == PaymentStatus.REFUND_PENDING:
                        self._refund(order_id)
                    elif status in PaymentStatus.OPEN:
                        self._refetch(order_id, cancel_if_expired=True)
            except Exception as exc:
                log.warning("payment not settled, looking again later: %r", exc, extra={"order_id": order_id})

    @timer(interval=GAUGES_INTERVAL_SECONDS, eager=True)
    def record_payment_gauges(self):
        """Feeds the RefundsStuck and payments dashboards, and PaymentsUnreconciled from the latest
        reconciliation run, whichever instance ran it (zeros before the first)."""
        counts = self.payments.counts(PaymentStatus.WATCHED)
        for status in PaymentStatus.WATCHED:
            PAYMENTS_BY_STATUS.labels(status).set(counts.get(status, 0))
        found = self.payments.last_reconciliation() or {}
        for kind in reconciliation.KINDS:
            PAYMENTS_UNRECONCILED.labels(kind).set(found.get(kind, 0))

    @timer(interval=RECONCILE_CHECK_SECONDS, eager=True)
    def reconcile_recent_payments(self):
        """Once per RECONCILE_INTERVAL_SECONDS across all instances (the one that claims the run): compare
        the window with Stripe, record the findings by kind for the gauges, log each one."""
        run_id = self.payments.claim_reconciliation(RECONCILE_INTERVAL_SECONDS)
        if run_id is None:
            return
        findings = self.reconcile(time.time() - RECONCILE_WINDOW_SECONDS, RECONCILE_GRACE_SECONDS)
        self.payments.finish_reconciliation(run_id, reconciliation.summary(findings))
        for finding in findings:
            log.error("unreconciled payment (%s): %s", finding["kind"], finding, extra={"order_id": finding["order_id"]})
        self.record_payment_gauges()

    @rpc
    def reconcile(self, since, grace_seconds=RECONCILE_GRACE_SECONDS):
        """Operator call: compare Stripe's intents and refunds since ``since`` (epoch seconds or ISO 8601)
        with the payments recorded here; returns the differences (see reconciliation.KINDS)."""
        since_epoch = schemas.point_in_time(since)
        intents = self.provider.intents_since(since_epoch)
        refunds = self.provider.refunds_since(since_epoch)
        payments = self.payments.payments_since(datetime.fromtimestamp(since_epoch, timezone.utc))
        unclaimed = {intent["id"] for intent in intents} - {payment["intent_id"] for payment in payments}
        if unclaimed:  # intents of payments created before the window, and orphans refunded already
            claimed = self.payments.claimed_intents(list(unclaimed))
            intents = [intent for intent in intents if intent["id"] not in claimed]
        return reconciliation.compare(intents, refunds, payments, time.time() - int(grace_seconds))

    @rpc
    def refund_orphan(self, intent_id, reason):
        """Operator call: refund a charge that no payment of ours claims (reconcile's orphan_charge)."""
        note = audit.reason(reason)
        intent = self.provider.intent(schemas.intent_id(intent_id))
        if intent["status"] != "succeeded":
            raise IllegalPaymentTransition(f"the intent is {intent['status']}: there is no charge to refund",
                                           {"intent_id": intent_id})
        if not self.payments.begin_orphan_refund(intent, f"{note} (by {self.operator})"):
            return {"intent_id": intent_id, "refunded": False, "reason": "refunded already"}
        refund = self.provider.refund_intent(intent_id)
        self.payments.finish_orphan_refund(intent_id, refund["refund_id"])
        log.warning("audit: %s refunded orphan charge %s: %s", self.operator, intent_id, note)
        return {"intent_id": intent_id, "refunded": True, "refund": refund}

    @rpc
    def get_payment(self, order_id):
        """Operator call: the payment of an order, as recorded here."""
        return self.payments.get_payment(order_id)

    @rpc
    def refund(self, order_id, reason):
        """Operator call: refund the order's charge now (or retry a parked refund); returns the payment."""
        note = audit.reason(reason)
        with self.payments.exclusive(order_id, wait_seconds=WEBHOOK_LOCK_WAIT_SECONDS):
            self._follow(self.payments.request_refund(order_id, note, self.operator))
        log.warning("audit: %s asked to refund order %s: %s", self.operator, order_id, note,
                    extra={"order_id": order_id})
        return self.payments.get_payment(order_id)

    @rpc
    def stripe_view(self, order_id):
        """Operator call: what Stripe says about the order's intent, next to what the shop recorded."""
        payment = self.payments.get_payment(order_id)
        intent = self.provider.intent(payment["intent_id"]) if payment["intent_id"] else None
        if intent is not None:
            intent.pop("client_secret", None)
        return {"recorded": payment, "stripe": intent}

    @rpc
    def outbox_backlog(self):
        """Operator call: unpublished events and the age of the oldest."""
        return self.relay.backlog()

    def _order_of(self, stripe_object):
        order_id = (stripe_object.get("metadata") or {}).get("order_id")
        intent_id = stripe_object.get("payment_intent") or (
            stripe_object.get("id") if stripe_object.get("object") == "payment_intent" else None)
        return order_id or (self.payments.order_of_intent(intent_id) if intent_id else None)

    def _refetch(self, order_id, cancel_if_expired=False):
        payment = self.payments.payment_in(order_id, PaymentStatus.OPEN)
        if payment is None or payment["intent_id"] is None:
            return  # settled already, or still being charged by its OrderCreated handler
        if cancel_if_expired and self.payments.action_expired(payment):
            log.warning("3-D Secure not completed in time: cancelling the intent", extra={"order_id": order_id})
            intent = self.provider.cancel(payment["intent_id"])
        else:
            intent = self.provider.intent(payment["intent_id"])
        self._follow(self.payments.apply_intent(order_id, intent))

    def _refund(self, order_id):
        payment = self.payments.payment_in(order_id, (PaymentStatus.REFUND_PENDING,))
        if payment is not None:
            self.payments.record_refund(order_id, self.provider.refund(payment))

    def _follow(self, follow_up):
        """Do the Stripe work a transition asked for (called under ``exclusive``)."""
        if follow_up is None:
            return
        order_id = follow_up.payment["order_id"]
        if follow_up.action == "refund":
            self._refund(order_id)
        elif follow_up.action == "cancel_intent":
            intent = self.provider.cancel(follow_up.payment["intent_id"])
            self._follow(self.payments.apply_intent(order_id, intent))
