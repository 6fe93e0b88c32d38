"""Reconciliation: what Stripe holds against what the shop recorded, for one window of time.

A pure comparison (no I/O): the service feeds it Stripe's intents and
refunds and our payment rows, and gets findings back. Anything younger than
the grace period is still in flight and not judged.
"""
from collections import defaultdict

from svc_payment.models import PaymentStatus as Status

KINDS = (
    "orphan_charge",          # money taken that no payment of ours claims: refund it (refund_orphan)
    "charge_not_recorded",    # money taken for a payment we recorded as not charged
    "charged_order_not_paid",  # money kept for an order that ended unpaid
    "paid_without_charge",    # an order PAID with no succeeded charge at Stripe
    "amount_mismatch",        # Stripe charged another amount or currency than we recorded
    "refund_mismatch",        # refunded at Stripe and not here, or here and not at Stripe
)
NOT_CHARGED = (Status.PROCESSING, Status.REQUIRES_ACTION, Status.SETTLING, Status.FAILED, Status.VOIDED)


def compare(intents, refunds, payments, settled_before):
    """Findings [{kind, order_id, intent_id, detail}] for intents and payments older than ``settled_before``.

    ``intents``: Stripe's {id, status, amount, currency, created, metadata};
    ``refunds``: Stripe's {payment_intent, status, amount};
    ``payments``: our payment views with ``order_status`` and ``updated_epoch`` (a payment changed
    within the grace period is still in flight).
    """
    refunded = defaultdict(int)
    for refund in refunds:
        if refund["status"] == "succeeded":
            refunded[refund["payment_intent"]] += refund["amount"]
    by_intent = {payment["intent_id"]: payment for payment in payments if payment["intent_id"]}
    findings = []

    def found(kind, payment, intent_id, detail):
        findings.append({"kind": kind, "order_id": payment["order_id"] if payment else None,
                         "intent_id": intent_id, "detail": detail})

    charged = {intent["id"] for intent in intents if intent["status"] == "succeeded"}
    for intent in intents:
        if intent["status"] != "succeeded" or intent["created"] >= settled_before:
            continue
        back = refunded[intent["id"]] >= intent["amount"]
        payment = by_intent.get(intent["id"])
        if payment is None:
            if not back:
                found("orphan_charge", None, intent["id"], {
                    "order_id_in_metadata": (intent.get("metadata") or {}).get("order_id"),
                    "amount": intent["amount"], "currency": intent["currency"].upper()})
            continue
        if (payment["amount_cents"], payment["currency"]) != (intent["amount"], intent["currency"].upper()):
            found("amount_mismatch", payment, intent["id"], {
                "stripe": [intent["amount"], intent["currency"].upper()],
                "shop": [payment["amount_cents"], payment["currency"]]})
        if payment["status"] in NOT_CHARGED and not back:
            found("charge_not_recorded", payment, intent["id"], {"status": payment["status"]})
        elif payment["status"] == Status.REFUNDED and not back:
            found("refund_mismatch", payment, intent["id"], {"shop": "refunded", "stripe": "not refunded"})
        elif payment["status"] == Status.SUCCEEDED and back:
            found("refund_mismatch", payment, intent["id"], {"shop": "charged", "stripe": "refunded"})
        elif payment["status"] == Status.SUCCEEDED and payment["order_status"] not in (None, "PAID"):
            found("charged_order_not_paid", payment, intent["id"], {"order_status": payment["order_status"]})
    for payment in payments:
        if payment["order_status"] == "PAID" and payment["updated_epoch"] < settled_before and (
                payment["status"] not in (Status.SUCCEEDED, Status.REFUND_PENDING, Status.REFUNDED,
                                          Status.REFUND_FAILED) or payment["intent_id"] not in charged):
            found("paid_without_charge", payment, payment["intent_id"], {"status": payment["status"]})
    return findings


def summary(findings):
    counts = {kind: 0 for kind in KINDS}
    for finding in findings:
        counts[finding["kind"]] += 1
    return counts
