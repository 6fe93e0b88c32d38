"""What Payment reads from OrderCreated, and the payment's operator view."""
from shop_common.errors import ValidationError


def charge_request(event):
    payload = event["payload"]
    try:
        request = {
            "order_id": event["order_id"],
            "amount_cents": int(payload["total_cents"]),
            "currency": str(payload["currency"]),
            "payment_method": str(payload["payment_method"]),
        }
    except (KeyError, TypeError, ValueError):
        raise ValidationError("OrderCreated without amount or payment method", {"event_id": event["event_id"]})
    return request


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
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }
