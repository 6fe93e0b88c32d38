"""Helpers for every service's tests: valid events with only the fields a test cares about, and
fresh databases."""
import uuid

import psycopg2

from shop_common import events

POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432"

_DEFAULTS = {
    events.ORDER_CREATED: lambda: {
        "user_id": "user-1", "items": [{"product_id": "p1", "quantity": 1, "unit_price_cents": 500}],
        "total_cents": 500, "currency": "USD", "payment_method": "pm_card_visa"},
    events.ORDER_COMPLETED: lambda: {"user_id": "user-1", "status": "PAYMENT_FAILED"},
    events.STOCK_UPDATED: lambda: {"items": [{"product_id": "p1", "quantity": 1, "stock": 0}]},
    events.STOCK_UNAVAILABLE: lambda: {"product_id": "p1", "requested": 1},
    events.STOCK_RESTORED: lambda: {"items": []},
    events.PAYMENT_SUCCESS: lambda: {"amount": "5.00", "currency": "USD", "payment_intent": "pi_1"},
    events.PAYMENT_FAILED: lambda: {"failure_code": "card_declined", "failure_message": "declined"},
    events.PAYMENT_REFUNDED: lambda: {"refund_id": "re_1", "amount": "5.00", "currency": "USD"},
    events.PAYMENT_VOIDED: dict,
    events.PAYMENT_ACTION_REQUIRED: lambda: {
        "client_secret": "pi_1_secret_x", "next_action": {"type": "use_stripe_sdk"},
        "expires_at": "2030-01-01T00:00:00+00:00"},
}


def event(event_type, order_id=None, **payload):
    """A valid ``event_type`` event for ``order_id`` (a new one by default); ``payload`` overrides fields."""
    order_id = order_id or str(uuid.uuid4())
    return events.new_event(event_type, {**_DEFAULTS[event_type](), **payload, "order_id": order_id},
                            order_id=order_id, producer="test")


def order_created(lines, order_id=None, **payload):
    """OrderCreated for [(product_id, quantity)] at 5.00 a unit."""
    items = [{"product_id": product_id, "quantity": quantity, "unit_price_cents": 500}
             for product_id, quantity in lines]
    total = sum(item["quantity"] * item["unit_price_cents"] for item in items)
    return event(events.ORDER_CREATED, order_id, items=items, total_cents=total, **payload)


def recreate_database(name):
    """An empty database ``name`` (dropped first if it exists); returns its SQLAlchemy URL."""
    connection = psycopg2.connect(f"{POSTGRES.replace('+psycopg2', '')}/postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()
    return f"{POSTGRES}/{name}"
