"""Events the Payment service publishes."""
from shop_common.messaging import events
from shop_common.money import format_amount
from svc_payment.service_name import NAME


def payment_success(payment):
    return events.new_event(
        events.PAYMENT_SUCCESS,
        {
            "order_id": payment["order_id"],
            "amount": format_amount(payment["amount_cents"], payment["currency"]),
            "currency": payment["currency"],
            "payment_intent": payment["intent_id"],
        },
        order_id=payment["order_id"], producer=NAME,
    )


def payment_failed(payment):
    return events.new_event(
        events.PAYMENT_FAILED,
        {
            "order_id": payment["order_id"],
            "failure_code": payment["failure_code"],
            "failure_message": payment["failure_message"],
        },
        order_id=payment["order_id"], producer=NAME,
    )


def payment_refunded(payment):
    """The money went back; an operator's refund says who asked and why (the order's history shows it)."""
    by_hand = {"reason": payment["refund_reason"], "requested_by": payment["refund_requested_by"]} \
        if payment["refund_requested_by"] else {}
    return events.new_event(
        events.PAYMENT_REFUNDED,
        {"order_id": payment["order_id"], "refund_id": payment["refund_id"],
         "amount": format_amount(payment["amount_cents"], payment["currency"]), "currency": payment["currency"],
         **by_hand},
        order_id=payment["order_id"], producer=NAME,
    )


def payment_voided(order_id):
    """No money was taken for the order, and none will be."""
    return events.new_event(events.PAYMENT_VOIDED, {"order_id": order_id}, order_id=order_id,
                            producer=NAME)


def payment_action_required(payment, intent):
    """The shopper must authenticate with Stripe.js (the client secret) before the deadline."""
    return events.new_event(
        events.PAYMENT_ACTION_REQUIRED,
        {"order_id": payment["order_id"], "client_secret": intent["client_secret"],
         "next_action": intent["next_action"], "expires_at": payment["action_expires_at"]},
        order_id=payment["order_id"], producer=NAME,
    )
