"""Events the Inventory service publishes."""
from shop_common.messaging import events
from svc_inventory.service_name import NAME


def stock_updated(order_id, lines):
    return events.new_event(
        events.STOCK_UPDATED,
        {"order_id": order_id, "reason": "order_placed", "items": lines},
        order_id=order_id, producer=NAME,
    )


def stock_unavailable(order_id, product_id, requested):
    return events.new_event(
        events.STOCK_UNAVAILABLE,
        {"order_id": order_id, "product_id": product_id, "requested": requested},
        order_id=order_id, producer=NAME,
    )


def stock_restored(order_id, lines, reason):
    """The order holds no stock any more; ``lines`` is what it gave back (maybe nothing)."""
    return events.new_event(
        events.STOCK_RESTORED,
        {"order_id": order_id, "reason": reason, "items": lines},
        order_id=order_id, producer=NAME,
    )


def stock_adjusted(product_id, delta, stock, reason, by):
    return events.new_event(
        events.STOCK_ADJUSTED,
        {"product_id": product_id, "delta": delta, "stock": stock, "reason": reason, "by": by},
        producer=NAME,
    )
