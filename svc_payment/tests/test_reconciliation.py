"""The comparison of Stripe's records with ours: each kind of difference found, and nothing else."""
from svc_payment.reconciliation import compare, summary

NOW = 1_800_000_000
OLD = NOW - 3600


def intent(intent_id, status="succeeded", amount=1000, currency="usd", created=OLD, order_id=None):
    return {"id": intent_id, "status": status, "amount": amount, "currency": currency, "created": created,
            "metadata": {"order_id": order_id} if order_id else {}}


def payment(order_id, intent_id, status="SUCCEEDED", order_status="PAID", amount=1000, currency="USD"):
    return {"order_id": order_id, "intent_id": intent_id, "status": status, "order_status": order_status,
            "amount_cents": amount, "currency": currency, "updated_epoch": OLD}


def refund(intent_id, status="succeeded", amount=1000):
    return {"payment_intent": intent_id, "status": status, "amount": amount}


def kinds(findings):
    return sorted((finding["kind"], finding["intent_id"]) for finding in findings)


def test_records_that_agree_give_no_finding():
    intents = [intent("pi_paid"), intent("pi_refunded"), intent("pi_declined", status="requires_payment_method")]
    payments = [payment("o1", "pi_paid"), payment("o2", "pi_refunded", "REFUNDED", "CANCELLED"),
                payment("o3", "pi_declined", "FAILED", "PAYMENT_FAILED")]
    assert compare(intents, [refund("pi_refunded")], payments, settled_before=NOW) == []


def test_every_kind_of_difference_is_found():
    intents = [intent("pi_orphan", order_id="o-gone"), intent("pi_late"), intent("pi_kept"), intent("pi_amount"),
               intent("pi_not_refunded"), intent("pi_refunded_there"), intent("pi_failed_refund")]
    payments = [payment("o1", "pi_late", "FAILED", "PAYMENT_FAILED"), payment("o2", "pi_kept", "SUCCEEDED", "CANCELLED"),
                payment("o3", "pi_amount", amount=999), payment("o4", "pi_not_refunded", "REFUNDED", "CANCELLED"),
                payment("o5", "pi_refunded_there"), payment("o6", None, "FAILED", "PAID"),
                payment("o7", "pi_failed_refund", "REFUNDED", "CANCELLED")]
    refunds = [refund("pi_refunded_there"), refund("pi_failed_refund", status="failed")]
    found = compare(intents, refunds, payments, settled_before=NOW)
    assert kinds(found) == sorted([
        ("orphan_charge", "pi_orphan"), ("charge_not_recorded", "pi_late"), ("charged_order_not_paid", "pi_kept"),
        ("amount_mismatch", "pi_amount"), ("refund_mismatch", "pi_not_refunded"),
        ("refund_mismatch", "pi_refunded_there"), ("paid_without_charge", None),
        ("refund_mismatch", "pi_failed_refund")])
    orphan = next(finding for finding in found if finding["kind"] == "orphan_charge")
    assert orphan["detail"] == {"order_id_in_metadata": "o-gone", "amount": 1000, "currency": "USD"}
    assert summary(found)["refund_mismatch"] == 3 and summary(found)["orphan_charge"] == 1


def test_what_is_still_in_flight_is_not_judged():
    fresh = intent("pi_fresh", created=NOW + 1)
    assert compare([fresh], [], [payment("o1", "pi_fresh", "PROCESSING", None)], settled_before=NOW) == []


def test_a_refunded_orphan_is_settled():
    assert compare([intent("pi_orphan")], [refund("pi_orphan")], [], settled_before=NOW) == []


def test_a_paid_order_whose_charge_is_younger_than_the_grace_is_not_judged_without_it():
    """Stripe slow: the payment row is old, its intent was created (and succeeded) only just now."""
    late = intent("pi_slow", created=NOW + 1)
    assert compare([late], [], [payment("o1", "pi_slow")], settled_before=NOW) == []
