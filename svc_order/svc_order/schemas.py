"""Validation of order requests and the order's public shape."""
from shop_common.errors import ValidationError
from shop_common.money import format_amount

MAX_LINES = 50
MAX_QUANTITY = 1000


def order_request(body):
    """{"items": [{"product_id", "quantity"}], "payment_method"} -> (lines, payment_method)."""
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object", {"body": "must be an object"})
    errors = {}
    items = body.get("items")
    lines = []
    if not isinstance(items, list) or not items:
        errors["items"] = "must be a non-empty list"
    elif len(items) > MAX_LINES:
        errors["items"] = f"at most {MAX_LINES} lines"
    else:
        seen = set()
        for index, item in enumerate(items):
            product_id = item.get("product_id") if isinstance(item, dict) else None
            quantity = item.get("quantity") if isinstance(item, dict) else None
            if not isinstance(product_id, str) or not product_id or len(product_id) > 64:
                errors[f"items[{index}].product_id"] = "is required"
            elif product_id in seen:
                errors[f"items[{index}].product_id"] = "appears more than once"
            if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= MAX_QUANTITY:
                errors[f"items[{index}].quantity"] = f"must be a whole number from 1 to {MAX_QUANTITY}"
            seen.add(product_id)
            lines.append({"product_id": product_id, "quantity": quantity})
    payment_method = body.get("payment_method")
    if not isinstance(payment_method, str) or not payment_method.strip() or len(payment_method) > 100:
        errors["payment_method"] = "is required (a Stripe PaymentMethod id)"
    if errors:
        raise ValidationError("invalid order", errors)
    return lines, payment_method.strip()


def idempotency_key(value):
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 200:
        raise ValidationError("invalid Idempotency-Key", {"Idempotency-Key": "must be 1 to 200 characters"})
    return value


ORDER_STATUSES = ("PENDING", "PAID", "PAYMENT_FAILED", "CANCELLED")
MAX_SEARCH = 500


def order_search(status, older_than_seconds, limit):
    """An operator's order search -> keyword arguments for OrderStore.find."""
    errors = {}
    if status is not None and status not in ORDER_STATUSES:
        errors["status"] = f"one of {', '.join(ORDER_STATUSES)}"
    if older_than_seconds is not None and (isinstance(older_than_seconds, bool) or not isinstance(
            older_than_seconds, int) or older_than_seconds < 0):
        errors["older_than_seconds"] = "a whole number of seconds, 0 or more"
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SEARCH:
        errors["limit"] = f"a whole number from 1 to {MAX_SEARCH}"
    if errors:
        raise ValidationError("invalid order search", errors)
    return {"status": status, "older_than_seconds": older_than_seconds, "limit": limit}


def item_view(row, currency):
    return {"product_id": row.product_id, "name": row.name, "quantity": row.quantity,
            "unit_price": format_amount(row.unit_price_cents, currency)}


def order_view(order, items):
    return {
        "id": order.id,
        "user_id": order.user_id,
        "status": order.status,
        "items": [item_view(item, order.currency) for item in items],
        "total": format_amount(order.total_cents, order.currency),
        "currency": order.currency,
        "message": order.message,
        "shipping_address": order.shipping_address,
        "payment": payment_view(order),
        "created_at": order.created_at.isoformat(),
        "updated_at": order.updated_at.isoformat(),
    }


def payment_view(order):
    """Where the order's payment stands; while the shopper must authenticate, what Stripe.js needs for it."""
    view = {"status": order.payment_status.lower()}
    if order.payment_status == "REQUIRES_ACTION" and order.payment_action:
        view.update(order.payment_action)
    return view


def notification_view(row):
    return {"order_id": row.order_id, "kind": row.kind, "message": row.message,
            "created_at": row.created_at.isoformat()}


def history_view(row):
    return {"event_id": row.event_id, "event_type": row.event_type, "status_after": row.status_after,
            "detail": row.detail, "recorded_at": row.recorded_at.isoformat()}
