"""At-least-once delivery: a redelivered OrderCreated changes nothing."""
import json
import time

import psycopg2
from kafka import KafkaAdminClient, KafkaProducer, TopicPartition
from kafka.admin import OffsetSpec
from kafka.structs import OffsetAndMetadata

from shop_common.messaging import event_signing
from shop_common.messaging.kafka import make_consumer


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
    # Signed as the Order service's relay signs it: a genuine duplicate, not a forgery.
    signed = event_signing.sign(envelope, event_signing.parse_keys(shop.env["SHOP_EVENT_KEYS"])["order_service"])
    sent = producer.send(topic, key=key.encode(), value=json.dumps(signed).encode(),
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


def _published(shop, order_id, timeout=15):
    deadline = time.monotonic() + timeout
    connection = psycopg2.connect(shop.profile.database_url("orders").replace("+psycopg2", ""))
    connection.autocommit = True
    try:
        while time.monotonic() < deadline:
            with connection.cursor() as cursor:
                cursor.execute("SELECT published_at IS NOT NULL FROM outbox "
                               "WHERE message_key = %s AND event_type = 'OrderCreated'", (order_id,))
                if cursor.fetchone()[0]:
                    return
            time.sleep(0.1)
    finally:
        connection.close()
    raise AssertionError("OrderCreated was not published")


def _skip_to_the_end(bootstrap, group, topic, ends, timeout=60):
    """Move ``group``'s committed offsets on ``topic`` to ``ends``, as one of its members: the broker
    refuses an outsider's commit while the group has members, and its stopped members (which do not
    send LeaveGroup on Tansu) are only expired when the group rebalances, as this join makes it."""
    consumer = make_consumer(bootstrap, group, leave_group=False)
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while set(consumer.assignment()) != set(ends):
            assert time.monotonic() < deadline, f"{group}: not given every partition of {topic}"
            consumer.poll(timeout_ms=200, max_records=1)
        consumer.commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in ends.items()})
    finally:
        consumer.close(autocommit=False)


def test_an_order_whose_event_the_broker_lost_is_redriven_to_its_outcome(shop, shopper, admin, rpc):
    product = admin.create_product(admin, stock=4)
    with shop.held("svc_inventory", "svc_payment"):
        order = shopper.place_order(product["id"], quantity=2).json()
        _published(shop, order["id"])
        # The broker "loses" the message: both consumer groups skip to the end of shop.orders.
        admin_client = KafkaAdminClient(bootstrap_servers=shop.env["KAFKA_BOOTSTRAP_SERVERS"])
        try:
            ends = {tp: info.offset for tp, info in admin_client.list_partition_offsets(
                {TopicPartition("shop.orders", p): OffsetSpec.LATEST for p in range(3)}).items()}
        finally:
            admin_client.close()
        for group in ("inventory_service", "payment_service"):
            _skip_to_the_end(shop.env["KAFKA_BOOTSTRAP_SERVERS"], group, "shop.orders", ends)

    final = shopper.wait_for_final(order["id"], timeout=60)
    assert final["status"] == "PAID"
    assert shopper.stock(product["id"]) == 2
    history = [entry["event_type"] for entry in rpc.order_service.get_order_with_history(order["id"])["history"]]
    assert "OrderCreatedRedriven" in history
