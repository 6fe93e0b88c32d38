"""The event envelope every Kafka message of the shop carries.

Value: JSON with ``event_id``, ``event_type``, ``event_version``,
``occurred_at``, ``order_id`` (where it concerns an order), ``producer`` and
``payload``. Key: the order id, so every event of one order lands on one
partition. Trace context rides in the message headers, not in the value.
"""
import json
import uuid
from datetime import datetime, timezone

ORDER_CREATED = "OrderCreated"
STOCK_UPDATED = "StockUpdated"
STOCK_UNAVAILABLE = "StockUnavailable"
STOCK_RESTORED = "StockRestored"
PAYMENT_SUCCESS = "PaymentSuccess"
PAYMENT_FAILED = "PaymentFailed"
PAYMENT_REFUNDED = "PaymentRefunded"
ORDER_COMPLETED = "OrderCompleted"

ORDERS_TOPIC = "shop.orders"
INVENTORY_TOPIC = "shop.inventory"
PAYMENTS_TOPIC = "shop.payments"
DEAD_LETTER_TOPIC = "shop.deadletter"

# One topic per producing domain keeps an order's events from one producer in order.
TOPIC_OF = {
    ORDER_CREATED: ORDERS_TOPIC,
    ORDER_COMPLETED: ORDERS_TOPIC,
    STOCK_UPDATED: INVENTORY_TOPIC,
    STOCK_UNAVAILABLE: INVENTORY_TOPIC,
    STOCK_RESTORED: INVENTORY_TOPIC,
    PAYMENT_SUCCESS: PAYMENTS_TOPIC,
    PAYMENT_FAILED: PAYMENTS_TOPIC,
    PAYMENT_REFUNDED: PAYMENTS_TOPIC,
}
ALL_TOPICS = (ORDERS_TOPIC, INVENTORY_TOPIC, PAYMENTS_TOPIC, DEAD_LETTER_TOPIC)


class MalformedEvent(ValueError):
    """A message value that is not a valid envelope."""


def now_iso():
    return datetime.now(timezone.utc).isoformat()


def new_event(event_type, payload, order_id=None, producer=None, version=1):
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "event_version": version,
        "occurred_at": now_iso(),
        "order_id": order_id,
        "producer": producer,
        "payload": payload,
    }


def encode(event):
    return json.dumps(event, separators=(",", ":")).encode()


def decode(raw):
    try:
        event = json.loads(raw)
    except (TypeError, ValueError) as exc:
        raise MalformedEvent(f"not JSON: {exc}")
    required = ("event_id", "event_type", "event_version", "occurred_at", "payload")
    if not isinstance(event, dict) or any(key not in event for key in required):
        raise MalformedEvent("missing envelope fields")
    if not isinstance(event["payload"], dict):
        raise MalformedEvent("payload is not an object")
    return event
