"""Helpers for every service's tests: valid events with only the fields a test cares about,
fresh databases, an order's outbox rows as published or not, a count of the AMQP queue declarations a process sends, and an echo service for RPC."""
import uuid

import amqp.channel
import psycopg2
from nameko.rpc import rpc
from sqlalchemy import text

from shop_common.messaging import events

POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432"

_DEFAULTS = {
    events.ORDER_CREATED: lambda: {
        "user_id": "user-1", "items": [{"product_id": "p1", "quantity": 1, "unit_price": {"amount_minor": 500,
                                                                                         "currency": "USD"}}],
        "total": {"amount_minor": 500, "currency": "USD"}, "payment_method": "pm_card_visa"},
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


def order_created(lines=(("p1", 1),), order_id=None, unit_price_cents=500, currency="USD", **payload):
    """OrderCreated (latest version) for [(product_id, quantity)], every unit at ``unit_price_cents``."""
    items = [{"product_id": product_id, "quantity": quantity,
              "unit_price": {"amount_minor": unit_price_cents, "currency": currency}} for product_id, quantity in lines]
    total = {"amount_minor": sum(quantity * unit_price_cents for _, quantity in lines), "currency": currency}
    return event(events.ORDER_CREATED, order_id, items=items, total=total, **payload)


def mark_published(transactions, order_id):
    """As if the relay had published every outbox row of the order."""
    with transactions.begin() as session:
        session.execute(text("UPDATE outbox SET published_at = now() WHERE message_key = :id"), {"id": order_id})


def unpublished(transactions, order_id):
    """The event types of the order's outbox rows waiting to be published, oldest first."""
    with transactions.begin() as session:
        return session.execute(text("SELECT event_type FROM outbox WHERE message_key = :id "
                                    "AND published_at IS NULL ORDER BY id"), {"id": order_id}).scalars().all()


def records_of(bootstrap_servers, *topics):
    """Every record now on ``topics`` (all partitions), read from the start."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False, consumer_timeout_ms=1500)
    try:
        partitions = [TopicPartition(topic, partition) for topic in topics
                      for partition in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        return list(consumer)
    finally:
        consumer.close()


def recreate_database(name):
    """An empty database ``name`` (dropped first if it exists); returns its SQLAlchemy URL."""
    connection = psycopg2.connect(f"{POSTGRES.replace('+psycopg2', '')}/postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()
    return f"{POSTGRES}/{name}"


def count_queue_declarations(monkeypatch):
    """A list that receives the name of every queue.declare any AMQP channel of this process sends."""
    declared = []
    original = amqp.channel.Channel.queue_declare

    def counting(channel, queue="", *args, **kwargs):
        declared.append(queue)
        return original(channel, queue, *args, **kwargs)

    monkeypatch.setattr(amqp.channel.Channel, "queue_declare", counting)
    return declared


def echo_service():
    """A Nameko service class, under a name of its own, whose ``echo`` RPC answers its argument."""

    class Echo:
        name = f"echo_{uuid.uuid4().hex[:8]}"

        @rpc
        def echo(self, value):
            return value

    return Echo
