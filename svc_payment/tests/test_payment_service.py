"""PaymentService entrypoints with Nameko's worker_factory: which Stripe work follows which transition."""
from nameko.testing.services import worker_factory

from shop_common import testing
from shop_common.messaging import events
from svc_payment.service import PaymentService
from svc_payment.store import FollowUp

EVENT = testing.order_created(order_id="o1", unit_price_cents=500)
SUCCEEDED = {"intent_id": "pi_1", "status": "succeeded"}


def test_nothing_to_charge_means_no_stripe_call():
    service = worker_factory(PaymentService)
    service.payments.begin_charge.return_value = None
    service.on_order_created(EVENT)
    service.provider.charge.assert_not_called()
    service.payments.apply_intent.assert_not_called()


def test_charge_then_record_what_stripe_said():
    service = worker_factory(PaymentService)
    service.payments.begin_charge.return_value = {"order_id": "o1", "intent_id": None}
    service.provider.charge.return_value = SUCCEEDED
    service.payments.apply_intent.return_value = None
    service.on_order_created(EVENT)
    service.payments.begin_charge.assert_called_once_with(
        EVENT, {"order_id": "o1", "amount_cents": 500, "currency": "USD", "payment_method": "pm_card_visa"})
    service.payments.apply_intent.assert_called_once_with("o1", SUCCEEDED, event=EVENT)
    service.provider.refund.assert_not_called()


def test_refund_when_the_order_ended_meanwhile():
    service = worker_factory(PaymentService)
    service.payments.begin_charge.return_value = {"order_id": "o1", "intent_id": None}
    service.provider.charge.return_value = SUCCEEDED
    pending = {"order_id": "o1", "intent_id": "pi_1", "status": "REFUND_PENDING"}
    service.payments.apply_intent.return_value = FollowUp("refund", pending)
    service.payments.payment_in.return_value = pending
    service.provider.refund.return_value = {"refund_id": "re_1", "status": "succeeded"}
    service.on_order_created(EVENT)
    service.provider.refund.assert_called_once_with(pending)
    service.payments.record_refund.assert_called_once_with("o1", {"refund_id": "re_1", "status": "succeeded"})


def test_a_replayed_webhook_is_applied_once():
    service = worker_factory(PaymentService)
    service.payments.stripe_event_seen.return_value = True
    body = {"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {"id": "pi_1"}}}
    assert service.apply_stripe_event(body)["applied"] is False
    service.provider.intent.assert_not_called()
    service.payments.record_stripe_event.assert_not_called()


def test_a_webhook_for_a_settled_payment_takes_no_lock_and_asks_stripe_nothing():
    service = worker_factory(PaymentService)
    service.payments.stripe_event_seen.return_value = False
    service.payments.payment_in.return_value = None  # not open: succeeded, failed, refunded...
    body = {"id": "evt_1", "type": "payment_intent.succeeded",
            "data": {"object": {"id": "pi_1", "object": "payment_intent", "metadata": {"order_id": "o1"}}}}
    assert service.apply_stripe_event(body) == {"event_id": "evt_1", "applied": True, "order_id": "o1"}
    service.payments.exclusive.assert_not_called()
    service.provider.intent.assert_not_called()
    service.payments.record_stripe_event.assert_called_once_with("evt_1", "payment_intent.succeeded", "o1")


def test_a_webhook_for_an_open_payment_fetches_the_intent_under_the_lock():
    service = worker_factory(PaymentService)
    service.payments.stripe_event_seen.return_value = False
    waiting = {"order_id": "o1", "intent_id": "pi_1", "status": "REQUIRES_ACTION"}
    service.payments.payment_in.return_value = waiting
    service.provider.intent.return_value = SUCCEEDED
    service.payments.apply_intent.return_value = None
    body = {"id": "evt_1", "type": "payment_intent.succeeded",
            "data": {"object": {"id": "pi_1", "object": "payment_intent", "metadata": {"order_id": "o1"}}}}
    service.apply_stripe_event(body)
    service.payments.exclusive.assert_called_once_with("o1", wait_seconds=5.0)
    service.payments.apply_intent.assert_called_once_with("o1", SUCCEEDED)


def test_a_paid_order_is_recorded_without_a_lock_an_unpaid_one_under_it():
    service = worker_factory(PaymentService)
    service.payments.release_for_order.return_value = None
    paid = testing.event(events.ORDER_COMPLETED, "o1", status="PAID")
    service.on_order_completed(paid)
    service.payments.release_for_order.assert_called_once_with(paid)
    service.payments.exclusive.assert_not_called()
    cancelled = testing.event(events.ORDER_COMPLETED, "o2", status="CANCELLED", reason="sold_out")
    service.on_order_completed(cancelled)
    service.payments.exclusive.assert_called_once_with("o2")


def test_an_expired_authentication_is_cancelled_by_the_timer():
    service = worker_factory(PaymentService)
    waiting = {"order_id": "o1", "intent_id": "pi_1", "status": "REQUIRES_ACTION"}
    service.payments.claim_due.return_value = [("o1", "REQUIRES_ACTION")]
    service.payments.payment_in.return_value = waiting
    service.payments.action_expired.return_value = True
    service.provider.cancel.return_value = {"intent_id": "pi_1", "status": "canceled"}
    service.payments.apply_intent.return_value = None
    service.look_after_payments()
    service.provider.cancel.assert_called_once_with("pi_1")
    service.payments.apply_intent.assert_called_once_with("o1", {"intent_id": "pi_1", "status": "canceled"})


def test_one_failing_payment_does_not_stop_the_timer():
    service = worker_factory(PaymentService)
    service.payments.claim_due.return_value = [("o1", "REFUND_PENDING"), ("o2", "REFUND_PENDING")]
    service.payments.payment_in.side_effect = lambda order_id, statuses: {"order_id": order_id}
    service.provider.refund.side_effect = [RuntimeError("Stripe down"), {"refund_id": "re_2", "status": "succeeded"}]
    service.look_after_payments()
    service.payments.record_refund.assert_called_once_with("o2", {"refund_id": "re_2", "status": "succeeded"})


def test_the_periodic_reconciliation_runs_only_on_the_instance_that_claims_it():
    service = worker_factory(PaymentService)
    service.payments.claim_reconciliation.return_value = None  # another instance ran it this interval
    service.reconcile_recent_payments()
    service.provider.intents_since.assert_not_called()
    service.payments.finish_reconciliation.assert_not_called()

    service.payments.claim_reconciliation.return_value = 7
    service.provider.intents_since.return_value = []
    service.provider.refunds_since.return_value = []
    service.payments.payments_since.return_value = []
    service.payments.counts.return_value = {}
    service.payments.last_reconciliation.return_value = None
    service.reconcile_recent_payments()
    run_id, summary = service.payments.finish_reconciliation.call_args.args
    assert run_id == 7 and set(summary.values()) == {0}
