"""Shapes Inventory reads from events and shows to operators."""
from shop_common.errors import ValidationError


def order_lines(event):
    """[(product_id, quantity)] of an OrderCreated event, sorted by product id.

    Sorted so concurrent orders lock product rows in one order: no deadlocks.
    """
    try:
        items = event["payload"]["items"]
        lines = sorted((str(item["product_id"]), int(item["quantity"])) for item in items)
    except (KeyError, TypeError, ValueError):
        raise ValidationError("OrderCreated without valid items", {"event_id": event.get("event_id")})
    if not lines or any(quantity < 1 for _, quantity in lines):
        raise ValidationError("OrderCreated without valid items", {"event_id": event.get("event_id")})
    return lines


def reservation_view(row):
    return {
        "order_id": row.order_id,
        "state": row.state,
        "items": row.items,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }
