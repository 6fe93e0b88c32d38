"""What Payment reads from OrderCreated and from Stripe's webhook events, and the payment's operator view."""
from datetime import datetime

from shop_common.errors import ValidationError
from shop_common.messaging import events
from shop_common.money import check_currency

# Webhook events after which the order's refund is looked at again.
REFUND_EVENTS = ("charge.refunded", "charge.refund.updated", "refund.created", "refund.updated", "refund.failed")


def charge_request(event):
    """What to charge for a decoded OrderCreated (its latest version)."""
    order = events.payload_of(event)
    return {
        "order_id": order.order_id,
        "amount_cents": order.total.amount_minor,
        "currency": check_currency(order.total.currency),
        "payment_method": order.payment_method,
    }


def stripe_event(body):
    """A verified webhook event -> {"id", "type", "object"} (the object as Stripe sent it)."""
    try:
        event = {"id": body["id"], "type": body["type"], "object": body["data"]["object"]}
    except (KeyError, TypeError):
        raise ValidationError("not a Stripe event", {"body": "needs id, type and data.object"})
    if not (isinstance(event["id"], str) and 0 < len(event["id"]) <= 255 and isinstance(event["type"], str)
            and 0 < len(event["type"]) <= 100 and isinstance(event["object"], dict)):
        raise ValidationError("not a Stripe event", {"body": "id and type must be short strings, data.object a map"})
    return event


def point_in_time(value):
    """Epoch seconds from epoch seconds or an ISO 8601 time with its offset."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is not None:
                return moment.timestamp()
        except ValueError:
            pass
    raise ValidationError("invalid time", {"since": "epoch seconds, or ISO 8601 with an offset"})


def intent_id(value):
    if not isinstance(value, str) or not value.startswith("pi_") or len(value) > 100:
        raise ValidationError("invalid intent id", {"intent_id": "a PaymentIntent id, pi_..."})
    return value


def _time(value):
    return value.isoformat() if value is not None else None


def payment_view(row):
    return {
        "order_id": row.order_id,
        "status": row.status,
        "amount_cents": row.amount_cents,
        "currency": row.currency,
        "payment_method": row.payment_method,
        "intent_id": row.intent_id,
        "refund_requested": row.refund_requested,
        "refund_id": row.refund_id,
        "failure_code": row.failure_code,
        "failure_message": row.failure_message,
        "charge_attempts": row.charge_attempts,
        "action_expires_at": _time(row.action_expires_at),
        "refund_status": row.refund_status,
        "refund_attempts": row.refund_attempts,
        "refund_failure": row.refund_failure,
        "refund_reason": row.refund_reason,
        "refund_requested_by": row.refund_requested_by,
        "order_status": row.order_status,
        "next_check_at": _time(row.next_check_at),
        "charging_by": row.charging_by,
        "charging_until": _time(row.charging_until),
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }
