"""Validation of order requests and the order's public shape."""
import hashlib
import json

from shop_common.errors import ValidationError
from shop_common.http import api
from shop_common.money import format_amount


def order_request(body):
    """{"items": [{"product_id", "quantity"}], "payment_method"} -> (lines, payment_method).

    Lines of one product add up to one line (at most MAX_QUANTITY units), in the order each product
    first appears: JSON Schema cannot say "unique by product id", so the contract allows repeats.
    """
    order = api.parse(api.NewOrder, body, "invalid order")
    quantities = {}
    for index, line in enumerate(order.items):
        quantities[line.product_id] = quantities.get(line.product_id, 0) + line.quantity
        if quantities[line.product_id] > api.MAX_QUANTITY:
            raise ValidationError("invalid order", {f"items[{index}].quantity": "one product's lines add up to at "
                                                                                f"most {api.MAX_QUANTITY}"})
    return [{"product_id": product_id, "quantity": quantity} for product_id, quantity in quantities.items()], \
        order.payment_method


def idempotency_key(value):
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 200:
        raise ValidationError("invalid Idempotency-Key", {"Idempotency-Key": "must be 1 to 200 characters"})
    return value


def request_fingerprint(lines, payment_method):
    """What an order request asks for, whatever the order of its lines: tells a retry from a reused key."""
    canonical = json.dumps({"items": sorted(lines, key=lambda line: line["product_id"]),
                            "payment_method": payment_method}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def order_search(email, status, older_than_seconds, limit):
    """An operator's order search -> its email, and keyword arguments for OrderStore.find."""
    return api.parse(api.OrderSearch, {"email": email, "status": status, "older_than_seconds": older_than_seconds,
                                       "limit": limit}, "invalid order search").model_dump()


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
