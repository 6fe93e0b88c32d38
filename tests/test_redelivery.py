"""At-least-once delivery: a redelivered OrderCreated changes nothing."""
import json
import time

import psycopg2
from kafka import KafkaAdminClient, KafkaProducer


def _outbox_row(shop, order_id):
    connection = psycopg2.connect(shop.profile.database_url("orders").replace("+psycopg2", ""))
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT topic, message_key, envelope, headers FROM outbox "
                       "WHERE message_key = %s AND event_type = 'OrderCreated'", (order_id,))
        row = cursor.fetchone()
    connection.close()
    return row


def _wait_until_consumed(shop, group, partition_offset, timeout=30):
    topic, partition, offset = partition_offset
    admin = KafkaAdminClient(bootstrap_servers=shop.env["KAFKA_BOOTSTRAP_SERVERS"])
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            committed = admin.list_group_offsets(group)[group]
            position = next((meta.offset for tp, meta in committed.items()
                             if tp.topic == topic and tp.partition == partition), -1)
            if position > offset:
                return
            time.sleep(0.2)
    finally:
        admin.close()
    raise AssertionError(f"{group} did not consume {topic}[{partition}]@{offset} within {timeout}s")


def test_redelivered_order_created_does_not_deduct_or_charge_twice(shop, shopper, admin, rpc, stripe_client):
    product = admin.create_product(admin, stock=5, price="7.00")
    order = shopper.place_order(product["id"], quantity=2).json()
    assert shopper.wait_for_final(order["id"])["status"] == "PAID"
    assert shopper.stock(product["id"]) == 3
    history_before = rpc.order_service.get_order_with_history(order["id"])["history"]

    topic, key, envelope, headers = _outbox_row(shop, order["id"])
    producer = KafkaProducer(bootstrap_servers=shop.env["KAFKA_BOOTSTRAP_SERVERS"], acks="all")
    sent = producer.send(topic, key=key.encode(), value=json.dumps(envelope).encode(),
                         headers=[(k, str(v).encode()) for k, v in headers.items()]).get(timeout=10)
    producer.close()
    for group in ("inventory_service", "payment_service"):
        _wait_until_consumed(shop, group, (sent.topic, sent.partition, sent.offset))

    assert shopper.stock(product["id"]) == 3
    payment = rpc.payment_service.get_payment(order["id"])
    assert payment["status"] == "SUCCEEDED"
    intents = [intent for intent in stripe_client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
               if intent.to_dict()["metadata"].get("order_id") == order["id"]]
    assert [intent.id for intent in intents] == [payment["intent_id"]]
    assert shopper.get(f"/orders/{order['id']}").json()["status"] == "PAID"
    assert rpc.order_service.get_order_with_history(order["id"])["history"] == history_before
