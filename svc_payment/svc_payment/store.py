"""Payment records (PostgreSQL): one payment per order and its state machine (models.PaymentStatus).

Every method is one transaction. What Stripe says arrives here as an intent
snapshot (``stripe_client.snapshot``), whichever path brought it (confirm's
answer, a webhook, a re-fetch), and ``apply_intent`` turns it into the same
transition. Methods that leave Stripe work to do return a ``FollowUp``.
"""
import logging
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import eventlet
from sqlalchemy import bindparam, exists, func, select, text, update
from sqlalchemy.dialects.postgresql import insert

from shop_common.errors import IllegalPaymentTransition, PaymentBusy, PaymentNotFound
from shop_common.messaging import events as shop_events
from shop_common.messaging import inbox as inbox_log
from shop_common.messaging import outbox as outbox_log
from shop_common.money import charge_range, format_amount
from shop_common.storage.db import StoreProvider, make_engine
from shop_common.telemetry.metrics import PAYMENTS
from svc_payment import events
from svc_payment.models import PaymentStatus as Status
from svc_payment.models import disputes, inbox, orphan_refunds, outbox, payments, reconciliation_runs, stripe_events
from svc_payment.schemas import payment_view
from svc_payment.service_name import NAME

log = logging.getLogger(__name__)

CONSUMER = NAME
# The statements every payment runs, built once with parameters (docs/performance.md, item 20);
# parameters named like a column would be taken for that column's value.
READING = select(payments).where(payments.c.order_id == bindparam("paid_id"))
LOCKING = READING.with_for_update()
# The same with the OrderCreated being handled claimed in the statement (a CTE): a missing payment
# raises, and the claim rolls back with it.
LOCKING_AND_CLAIMING = LOCKING.add_cte(inbox_log.claiming(inbox).cte("claimed"))
RECORDING_INTENT = (update(payments).where(payments.c.order_id == bindparam("paid_id"))
                    .values(intent_id=bindparam("new_intent_id"), updated_at=func.now()))
RECORDING_ORDER_STATUS = (update(payments).where(payments.c.order_id == bindparam("paid_id"))
                          .values(order_status=bindparam("new_order_status")))


def _recording_paid_order():
    """A paid order's OrderCompleted in one statement (no BEGIN and COMMIT round trips): the event
    claimed and, the first time only, the order's status recorded; the count of claims comes back."""
    claimed = inbox_log.claiming(inbox).cte("claimed")
    recorded = (update(payments).where(payments.c.order_id == bindparam("paid_id"), exists(select(claimed.c.event_id)))
                .values(order_status=bindparam("new_order_status")).cte("recorded"))
    return select(func.count()).select_from(claimed).add_cte(recorded)


RECORDING_PAID_ORDER = _recording_paid_order()
STRIPE_EVENT_SEEN = select(stripe_events.c.event_id).where(stripe_events.c.event_id == bindparam("seen_id"))
RECORDING_STRIPE_EVENT = insert(stripe_events).on_conflict_do_nothing()
# Everything Payment says about an order: sent again when the order's events come again.
OUTCOMES = (shop_events.PAYMENT_ACTION_REQUIRED, shop_events.PAYMENT_SUCCESS, shop_events.PAYMENT_FAILED,
            shop_events.PAYMENT_REFUNDED, shop_events.PAYMENT_VOIDED)
# Stripe intent status -> where an open payment goes.
INTENT_OUTCOME = {
    "succeeded": Status.SUCCEEDED,
    "processing": Status.SETTLING,
    "requires_action": Status.REQUIRES_ACTION,
    "requires_payment_method": Status.FAILED,  # declined, or authentication failed
    "canceled": Status.FAILED,
}


@dataclass(frozen=True)
class FollowUp:
    """Stripe work a transition calls for: ``refund`` the payment, or ``cancel_intent``."""

    action: str
    payment: dict


@dataclass(frozen=True)
class Timing:
    """How long the shopper has to authenticate, and how often open payments and refunds are looked at."""

    action_deadline_seconds: int = 900
    recheck_seconds: int = 60
    # How long a charge's holder expects to need Stripe: two calls of at most STRIPE timeout_seconds (10)
    # with retries. Informational: a holder that dies loses its advisory lock at once, whatever this says.
    charge_lease_seconds: int = 60
    refund_retry_seconds: int = 30
    max_refund_attempts: int = 5


# Stripe exchanges in progress at once per instance (each holds an advisory lock's connection);
# one more waits for a free one, without holding anything.
LOCK_POOL_SIZE = 4


def seconds(value):
    return func.make_interval(0, 0, 0, 0, 0, 0, value)


# A charge's first attempt: the PROCESSING row under this worker's lease, returned unless the order
# has a payment already. One statement built once, outside any transaction (no BEGIN and COMMIT).
STARTING_CHARGE = (insert(payments).values(
    order_id=bindparam("charged_id"), amount_cents=bindparam("charged_cents"),
    currency=bindparam("charged_currency"), payment_method=bindparam("charged_method"),
    status=Status.PROCESSING, charge_attempts=1, charging_by=bindparam("charged_by"),
    charging_until=func.now() + seconds(bindparam("lease_seconds")),
).on_conflict_do_nothing().returning(payments))


def this_worker():
    return f"{socket.gethostname()}:{os.getpid()}"


class PaymentStore:
    def __init__(self, transactions, timing=None, locks=None, owner=None):
        self.transactions = transactions
        self.timing = timing or Timing()
        self.owner = owner or this_worker()  # what a PROCESSING row's charging_by says while we charge
        # The advisory locks' connections come from a pool of their own: a worker holding one
        # still needs a transaction, and from one shared pool, workers holding every connection
        # as locks would each wait for a transaction forever (seen: payments stalled under load).
        # Each lock statement is a transaction of its own (AUTOCOMMIT): the lock outlives them all.
        self.locks = locks or transactions.engine.execution_options(isolation_level="AUTOCOMMIT")

    @contextmanager
    def exclusive(self, order_id, wait_seconds=0.0):
        """Only one worker, of any instance, talks to Stripe about an order at a time.

        A PostgreSQL advisory lock held on its own connection for the whole
        Stripe exchange: PostgreSQL releases it the moment that connection
        ends, so a crashed worker never blocks the next one. Raises
        ``PaymentBusy`` (retried later) when another worker still holds it
        after ``wait_seconds``.
        """
        key = f"payment:{order_id}"
        deadline = time.monotonic() + wait_seconds
        with self.locks.connect() as connection:
            while not connection.execute(text("SELECT pg_try_advisory_lock(hashtext(:key))"), {"key": key}).scalar():
                if time.monotonic() >= deadline:
                    raise PaymentBusy("another worker is charging or refunding this order", {"order_id": order_id})
                eventlet.sleep(0.05)
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(hashtext(:key))"), {"key": key})

    # -- charging ------------------------------------------------------------
    def begin_charge(self, event, request):
        """The payment to charge for this OrderCreated, or None when there is nothing to charge.

        The PROCESSING row is committed before Stripe is called: a redelivery
        or a second worker finds it and resumes instead of charging again.
        It names this worker and its lease (called under ``exclusive``, so no
        other worker is charging the order now; a lease still running under
        another name means that worker died mid-charge, and is logged).
        A total Stripe cannot charge fails the payment at once.
        """
        smallest, largest = charge_range(request["currency"])
        if not smallest <= request["amount_cents"] <= largest:
            # The Order service refuses such totals; an event from before that, or forged, fails here.
            return self._refuse(event, request, "amount_out_of_range",
                                f"a charge must be from {format_amount(smallest, request['currency'])} to "
                                f"{format_amount(largest, request['currency'])} {request['currency']}")
        with self.transactions.one_statement() as statement:
            row = statement.execute(STARTING_CHARGE, {
                "charged_id": request["order_id"], "charged_cents": request["amount_cents"],
                "charged_currency": request["currency"], "charged_method": request["payment_method"],
                "charged_by": self.owner,
                "lease_seconds": self.timing.charge_lease_seconds,
            }).first()
        if row is not None:
            return payment_view(row)
        # The order has a payment: a redelivery, or a charge to resume.
        with self.transactions.begin() as session:
            row = self._lock(session, request["order_id"])
            if row.status != Status.PROCESSING:
                # Charged, declined, waiting for the shopper or voided already: record the claim,
                # and send what we said again in case the Order service lost it.
                inbox_log.claim(session, inbox, event, CONSUMER)
                outbox_log.republish(session, outbox, row.order_id, OUTCOMES)
                return None
            if row.charging_by not in (None, self.owner) and row.charging_until is not None \
                    and row.charging_until > datetime.now(timezone.utc):
                log.warning("took over the charge of %s, whose lease ran to %s: its lock is gone, so it died",
                            row.charging_by, row.charging_until.isoformat(), extra={"order_id": row.order_id})
            row = session.execute(
                update(payments).where(payments.c.order_id == row.order_id)
                .values(charge_attempts=payments.c.charge_attempts + 1, updated_at=func.now(), charging_by=self.owner,
                        charging_until=self._after(self.timing.charge_lease_seconds))
                .returning(payments)
            ).one()
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
        with self.transactions.one_statement() as statement:
            statement.execute(RECORDING_INTENT, {"paid_id": order_id, "new_intent_id": intent_id})

    def apply_intent(self, order_id, intent, event=None):
        """Record what Stripe says about the order's intent; the same answer twice changes nothing.

        ``event``, the OrderCreated being handled, is claimed with it. A
        snapshot older than what is recorded (a late webhook) is ignored by
        the state machine. Returns a FollowUp or None.
        """
        with self.transactions.begin() as session:
            if event is None:
                row = self._lock(session, order_id)
            else:
                row = self._lock(session, order_id, LOCKING_AND_CLAIMING,
                                 inbox_log.claim_parameters(event, CONSUMER))
            if row.intent_id not in (None, intent["intent_id"]):
                log.warning("ignored an intent that is not the order's: %s", intent["intent_id"],
                            extra={"order_id": order_id})
                return None
            target = INTENT_OUTCOME.get(intent["status"])
            if row.status in Status.OPEN:
                return self._settle(session, row, target, intent)
            if target == Status.SUCCEEDED and row.status in (Status.FAILED, Status.VOIDED):
                # Money taken after we gave up on it (a late authentication or settlement): it goes back.
                log.error("a charge landed after its payment was %s: refunding it", row.status,
                          extra={"order_id": order_id})
                payment = self._move(session, row, Status.REFUND_PENDING, {
                    "intent_id": intent["intent_id"], "refund_requested": True, "refund_attempts": 0,
                    "refund_reason": f"charge succeeded after the payment was {row.status.lower()}",
                    "next_check_at": self._after(self.timing.refund_retry_seconds)})
                return FollowUp("refund", payment)
            return None

    def _settle(self, session, row, target, intent):
        details = {"intent_id": intent["intent_id"], "failure_code": intent.get("failure_code"),
                   "failure_message": intent.get("failure_message")}
        if target == Status.SUCCEEDED:
            payment = self._move(session, row, Status.SUCCEEDED, dict(details, next_check_at=None))
            outbox_log.add(session, outbox, events.payment_success(payment))
            PAYMENTS.labels("succeeded").inc()
            if row.refund_requested:  # the order ended while we were charging
                payment = self._move(session, row, Status.REFUND_PENDING, {
                    "next_check_at": self._after(self.timing.refund_retry_seconds)}, current=Status.SUCCEEDED)
                return FollowUp("refund", payment)
            return None
        if target == Status.FAILED:
            if row.refund_requested:  # the order ended already: nothing was taken, nothing will be
                self._move(session, row, Status.VOIDED, dict(details, next_check_at=None))
                outbox_log.add(session, outbox, events.payment_voided(row.order_id))
                return None
            payment = self._move(session, row, Status.FAILED, dict(details, next_check_at=None))
            outbox_log.add(session, outbox, events.payment_failed(payment))
            PAYMENTS.labels("failed").inc()
            return None
        if target == Status.REQUIRES_ACTION and row.status == Status.PROCESSING:
            expires_at = datetime.now(timezone.utc) + timedelta(seconds=self.timing.action_deadline_seconds)
            payment = self._move(session, row, Status.REQUIRES_ACTION, {
                "intent_id": intent["intent_id"], "action_expires_at": expires_at,
                "next_check_at": func.least(expires_at, self._after(self.timing.recheck_seconds))})
            if row.refund_requested:
                return FollowUp("cancel_intent", payment)
            outbox_log.add(session, outbox, events.payment_action_required(payment, intent))
            PAYMENTS.labels("requires_action").inc()
            return None
        if target == Status.SETTLING and row.status != Status.SETTLING:
            self._move(session, row, Status.SETTLING, {
                "intent_id": intent["intent_id"], "next_check_at": self._after(self.timing.recheck_seconds)})
            return None
        if row.status != Status.PROCESSING:  # still open, nothing new: look again later
            session.execute(update(payments).where(payments.c.order_id == row.order_id)
                            .values(next_check_at=self._next_check(row)))
        return None

    def _next_check(self, row):
        later = self._after(self.timing.recheck_seconds)
        if row.status == Status.REQUIRES_ACTION and row.action_expires_at is not None:
            return func.least(later, row.action_expires_at)
        return later

    def release_for_order(self, event):
        """The order ended (OrderCompleted): recorded. Unpaid, the payment is voided or what Stripe must undo
        is returned; paid, nothing is ever returned (so the caller needs no lock for it)."""
        order_id = event["order_id"]
        if shop_events.order_was_paid(event):  # nearly every order: nothing to give back
            with self.transactions.one_statement() as statement:
                if statement.execute(RECORDING_PAID_ORDER, {
                        "paid_id": order_id, "new_order_status": event["payload"]["status"],
                        **inbox_log.claim_parameters(event, CONSUMER)}).scalar():
                    return None
        with self.transactions.begin() as session:
            if not inbox_log.claim(session, inbox, event, CONSUMER):
                outbox_log.republish(session, outbox, order_id, OUTCOMES)
                return None
            order_status = event["payload"]["status"]
            session.execute(RECORDING_ORDER_STATUS, {"paid_id": order_id, "new_order_status": order_status})
            if shop_events.order_was_paid(event):
                return None
            voided = session.execute(
                insert(payments).values(order_id=order_id, status=Status.VOIDED, order_status=order_status)
                .on_conflict_do_nothing().returning(payments)
            ).first()
            if voided is not None:
                # The order ended before its OrderCreated was applied here (it was dead-lettered):
                # a replay of it finds VOIDED and charges nothing.
                outbox_log.add(session, outbox, events.payment_voided(order_id))
                return None
            row = self._lock(session, order_id)
            if row.status in Status.OPEN:
                # Whatever the charge ends as, nothing may stay taken: see _settle.
                payment = self._set(session, order_id, refund_requested=True)
                return FollowUp("cancel_intent", payment) if row.status == Status.REQUIRES_ACTION else None
            if row.status == Status.SUCCEEDED:
                payment = self._move(session, row, Status.REFUND_PENDING, {
                    "refund_requested": True, "next_check_at": self._after(self.timing.refund_retry_seconds)})
                return FollowUp("refund", payment)
            return None  # declined (the Order service knows), or refunded already

    def payment_in(self, order_id, statuses):
        """The payment if its status is one of ``statuses`` (read under ``exclusive``), else None."""
        with self.transactions.one_statement() as statement:
            row = statement.execute(READING, {"paid_id": order_id}).first()
        return payment_view(row) if row is not None and row.status in statuses else None

    def action_expired(self, payment):
        expires_at = payment["action_expires_at"]
        return (payment["status"] == Status.REQUIRES_ACTION and expires_at is not None
                and datetime.fromisoformat(expires_at) <= datetime.now(timezone.utc))

    # -- refunds -------------------------------------------------------------
    def request_refund(self, order_id, reason, operator):
        """Operator: refund a succeeded charge, or try a parked refund again. Returns the FollowUp."""
        with self.transactions.begin() as session:
            row = self._lock(session, order_id)
            values = {"refund_requested": True, "refund_attempts": 0, "refund_failure": None,
                      "refund_reason": reason, "refund_requested_by": operator,
                      "next_check_at": self._after(self.timing.refund_retry_seconds)}
            if row.status == Status.REFUND_PENDING:
                payment = self._set(session, order_id, **values)
            elif row.status in (Status.SUCCEEDED, Status.REFUND_FAILED):
                payment = self._move(session, row, Status.REFUND_PENDING, values)
            else:
                raise IllegalPaymentTransition(f"a {row.status} payment has no charge to refund",
                                               {"order_id": order_id, "status": row.status})
        return FollowUp("refund", payment)

    def record_refund(self, order_id, refund):
        """Record Stripe's word on the order's refund: done, still pending, or failed (retried, then parked)."""
        with self.transactions.begin() as session:
            row = self._lock(session, order_id)
            if row.status != Status.REFUND_PENDING:
                return
            if refund["status"] == "succeeded":
                payment = self._move(session, row, Status.REFUNDED, {
                    "refund_id": refund["refund_id"], "refund_status": "succeeded", "next_check_at": None})
                outbox_log.add(session, outbox, events.payment_refunded(payment))
                PAYMENTS.labels("refunded").inc()
            elif refund["status"] in ("failed", "canceled"):
                attempts = row.refund_attempts + 1
                failure = refund.get("failure_reason") or refund["status"]
                if attempts >= self.timing.max_refund_attempts:
                    self._move(session, row, Status.REFUND_FAILED, {
                        "refund_id": None, "refund_status": refund["status"], "refund_attempts": attempts,
                        "refund_failure": failure, "next_check_at": None})
                    PAYMENTS.labels("refund_failed").inc()
                    log.error("refund parked after %d failed attempts (%s): an operator must act",
                              attempts, failure, extra={"order_id": order_id})
                    return
                backoff = self.timing.refund_retry_seconds * 2 ** (attempts - 1)
                self._set(session, order_id, refund_id=None, refund_status=refund["status"],
                          refund_attempts=attempts, refund_failure=failure, next_check_at=self._after(backoff))
                log.warning("refund %s failed (%s), attempt %d; retrying in %ss", refund["refund_id"], failure,
                            attempts, backoff, extra={"order_id": order_id})
            else:  # pending: Stripe will tell us (webhook), or the timer looks again
                self._set(session, order_id, refund_id=refund["refund_id"], refund_status=refund["status"],
                          next_check_at=self._after(self.timing.refund_retry_seconds))

    def claim_due(self, limit=50):
        """Payments the timer must look at now (refunds to retry, intents to re-fetch), oldest due first.

        SKIP LOCKED and a lease on ``next_check_at``: two instances never
        take the same row, and a crashed one's rows come back after the lease.
        """
        with self.transactions.begin() as session:
            due = (select(payments.c.order_id).where(payments.c.next_check_at <= func.now())
                   .order_by(payments.c.next_check_at, payments.c.order_id).limit(limit)
                   .with_for_update(skip_locked=True)).scalar_subquery()
            rows = session.execute(
                update(payments).where(payments.c.order_id.in_(due))
                .values(next_check_at=self._after(self.timing.recheck_seconds))
                .returning(payments.c.order_id, payments.c.status, payments.c.next_check_at)
            ).all()
        return [(row.order_id, row.status) for row in sorted(rows, key=lambda row: row.order_id)]

    # -- webhooks, disputes, operators -----------------------------------------
    def order_of_intent(self, intent_id):
        with self.transactions.one_statement() as statement:
            return statement.execute(select(payments.c.order_id).where(payments.c.intent_id == intent_id)).scalar()

    def stripe_event_seen(self, event_id):
        with self.transactions.one_statement() as statement:
            return statement.execute(STRIPE_EVENT_SEEN, {"seen_id": event_id}).first() is not None

    def record_stripe_event(self, event_id, event_type, order_id):
        with self.transactions.one_statement() as statement:
            statement.execute(RECORDING_STRIPE_EVENT, {"event_id": event_id, "event_type": event_type,
                                                       "order_id": order_id})

    def record_dispute(self, dispute, order_id):
        with self.transactions.begin() as session:
            created = session.execute(insert(disputes).values(
                dispute_id=dispute["id"], order_id=order_id, intent_id=dispute.get("payment_intent"),
                amount_cents=dispute.get("amount"), currency=(dispute.get("currency") or "").upper() or None,
                reason=dispute.get("reason"), status=dispute.get("status"), raw=dispute,
            ).on_conflict_do_nothing()).rowcount == 1
        return created

    def payments_since(self, since):
        """Payments created since ``since`` (an aware datetime), for reconciliation."""
        with self.transactions.begin() as session:
            rows = session.execute(select(payments).where(payments.c.created_at >= since)).all()
        return [dict(payment_view(row), updated_epoch=row.updated_at.timestamp()) for row in rows]

    def claimed_intents(self, intent_ids):
        """Which of these intents a payment or an orphan refund already accounts for."""
        with self.transactions.begin() as session:
            claimed = set(session.execute(select(payments.c.intent_id)
                                          .where(payments.c.intent_id.in_(intent_ids))).scalars())
            refunded = set(session.execute(select(orphan_refunds.c.intent_id)
                                           .where(orphan_refunds.c.intent_id.in_(intent_ids))).scalars())
        return claimed | refunded

    def begin_orphan_refund(self, intent, reason):
        """Record the refund of a charge no payment claims before asking Stripe; False if already recorded."""
        with self.transactions.begin() as session:
            claimed = session.execute(select(payments.c.order_id)
                                      .where(payments.c.intent_id == intent["intent_id"])).first()
            if claimed is not None:
                raise IllegalPaymentTransition("this charge belongs to a payment: use refund(order_id, reason)",
                                               {"intent_id": intent["intent_id"], "order_id": claimed.order_id})
            return session.execute(insert(orphan_refunds).values(
                intent_id=intent["intent_id"], order_id=intent.get("order_id"), amount_cents=intent["amount_cents"],
                currency=intent["currency"], reason=reason,
            ).on_conflict_do_nothing()).rowcount == 1

    def finish_orphan_refund(self, intent_id, refund_id):
        with self.transactions.begin() as session:
            session.execute(update(orphan_refunds).where(orphan_refunds.c.intent_id == intent_id)
                            .values(refund_id=refund_id))

    def claim_reconciliation(self, interval_seconds):
        """The id of a new periodic reconciliation run when none started in the last ``interval_seconds``
        (of any instance), else None. A run that died unfinished is replaced after the interval."""
        with self.transactions.begin() as session:
            session.execute(text("SELECT pg_advisory_xact_lock(hashtext('payment:reconciliation'))"))
            recent = session.execute(
                select(reconciliation_runs.c.id)
                .where(reconciliation_runs.c.started_at > func.now() - seconds(interval_seconds))
            ).first()
            if recent is not None:
                return None
            return session.execute(reconciliation_runs.insert().returning(reconciliation_runs.c.id)).scalar_one()

    def finish_reconciliation(self, run_id, summary):
        with self.transactions.begin() as session:
            session.execute(update(reconciliation_runs).where(reconciliation_runs.c.id == run_id)
                            .values(finished_at=func.now(), summary=summary))

    def last_reconciliation(self):
        """The findings by kind of the latest finished run, or None before the first."""
        with self.transactions.one_statement() as statement:
            return statement.execute(
                select(reconciliation_runs.c.summary).where(reconciliation_runs.c.finished_at.is_not(None))
                .order_by(reconciliation_runs.c.finished_at.desc()).limit(1)
            ).scalar()

    def counts(self, statuses):
        """How many payments are in each of ``statuses`` (one absent: none), for the gauges."""
        with self.transactions.one_statement() as statement:
            rows = statement.execute(select(payments.c.status, func.count()).where(payments.c.status.in_(statuses))
                                     .group_by(payments.c.status)).all()
        return {status: count for status, count in rows}

    def get_payment(self, order_id):
        with self.transactions.one_statement() as statement:
            row = statement.execute(READING, {"paid_id": order_id}).first()
        if row is None:
            raise PaymentNotFound("no payment for this order", {"order_id": order_id})
        return payment_view(row)

    # -- helpers ---------------------------------------------------------------
    @staticmethod
    def _after(delay_seconds):
        return func.now() + seconds(delay_seconds)

    @staticmethod
    def _lock(session, order_id, statement=LOCKING, parameters=None):
        row = session.execute(statement, {"paid_id": order_id, **(parameters or {})}).first()
        if row is None:
            raise PaymentNotFound("no payment for this order", {"order_id": order_id})
        return row

    @staticmethod
    def _set(session, order_id, **values):
        updated = session.execute(
            update(payments).where(payments.c.order_id == order_id)
            .values(updated_at=func.now(), **values).returning(payments)
        ).one()
        return payment_view(updated)

    @classmethod
    def _move(cls, session, row, target, values, current=None):
        Status.check(current or row.status, target)
        if (current or row.status) == Status.PROCESSING:  # nobody holds a charge that is no longer in progress
            values = dict(values, charging_by=None, charging_until=None)
        return cls._set(session, row.order_id, status=target, **values)


class Payments(StoreProvider):
    store_class = PaymentStore

    def setup(self):
        super().setup()
        from nameko import config

        settings = config.get("PAYMENTS") or {}
        self.timing = Timing(**{key: int(value) for key, value in settings.items() if key in Timing.__annotations__})
        # AUTOCOMMIT for the whole pool: set per connection, SQLAlchemy reset it on every return.
        self.locks = make_engine(config["DATABASE_URL"], pool_size=LOCK_POOL_SIZE, isolation_level="AUTOCOMMIT")

    def stop(self):
        super().stop()
        self.locks.dispose()

    kill = stop

    def get_dependency(self, worker_ctx):
        return self.store_class(self.transactions, self.timing, self.locks)
