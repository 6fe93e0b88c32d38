"""PaymentService entrypoints with Nameko's worker_factory."""
from nameko.testing.services import worker_factory

from shop_common import events, testing
from svc_payment.service import PaymentService

EVENT = testing.event(events.ORDER_CREATED, "o1", total_cents=500)


def test_nothing_to_charge_means_no_stripe_call():
    service = worker_factory(PaymentService)
    service.payments.begin_charge.return_value = None
    service.on_order_created(EVENT)
    service.provider.charge.assert_not_called()
    service.payments.finish_charge.assert_not_called()


def test_charge_then_record_outcome():
    service = worker_factory(PaymentService)
    payment = {"order_id": "o1", "intent_id": None}
    service.payments.begin_charge.return_value = payment
    service.provider.charge.return_value = {"succeeded": True, "intent_id": "pi_1"}
    service.payments.finish_charge.return_value = None
    service.on_order_created(EVENT)
    service.payments.begin_charge.assert_called_once_with(
        EVENT, {"order_id": "o1", "amount_cents": 500, "currency": "USD", "payment_method": "pm_card_visa"})
    service.payments.finish_charge.assert_called_once_with(EVENT, {"succeeded": True, "intent_id": "pi_1"})
    service.provider.refund.assert_not_called()


def test_refund_when_stock_ran_out_meanwhile():
    service = worker_factory(PaymentService)
    service.payments.begin_charge.return_value = {"order_id": "o1", "intent_id": None}
    service.provider.charge.return_value = {"succeeded": True, "intent_id": "pi_1"}
    pending = {"order_id": "o1", "intent_id": "pi_1", "status": "REFUND_PENDING"}
    service.payments.finish_charge.return_value = pending
    service.provider.refund.return_value = "re_1"
    service.on_order_created(EVENT)
    service.provider.refund.assert_called_once_with(pending)
    service.payments.finish_refund.assert_called_once_with("o1", "re_1")
