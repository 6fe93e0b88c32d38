"""Events the Order service publishes."""
from shop_common.messaging import events
from svc_order.service_name import NAME


def order_created(order_id, user_id, lines, total_cents, currency, payment_method, version=None):
    """OrderCreated, of ``version`` (config ORDER_CREATED_VERSION) while consumers still learn the latest."""
    event = events.new_event(
        events.ORDER_CREATED,
        {
            "order_id": order_id,
            "user_id": user_id,
            "items": [{"product_id": line["product_id"], "quantity": line["quantity"],
                       "unit_price": {"amount_minor": line["unit_price_cents"], "currency": currency}}
                      for line in lines],
            "total": {"amount_minor": total_cents, "currency": currency},
            "payment_method": payment_method,
        },
        order_id=order_id, producer=NAME,
    )
    return event if version in (None, event["event_version"]) else events.as_version(event, version)


def order_completed(order_id, user_id, status, reason=None):
    """The final status; for anything but PAID, Inventory and Payment compensate."""
    return events.new_event(
        events.ORDER_COMPLETED,
        {"order_id": order_id, "user_id": user_id, "status": status, "reason": reason},
        order_id=order_id, producer=NAME,
    )
