"""Events the Order service publishes."""
from shop_common import events


def order_created(order_id, user_id, lines, total_cents, currency, payment_method):
    return events.new_event(
        events.ORDER_CREATED,
        {
            "order_id": order_id,
            "user_id": user_id,
            "items": lines,
            "total_cents": total_cents,
            "currency": currency,
            "payment_method": payment_method,
        },
        order_id=order_id, producer="order_service",
    )


def order_completed(order_id, user_id, status, reason=None):
    """The final status; for anything but PAID, Inventory and Payment compensate."""
    return events.new_event(
        events.ORDER_COMPLETED,
        {"order_id": order_id, "user_id": user_id, "status": status, "reason": reason},
        order_id=order_id, producer="order_service",
    )
