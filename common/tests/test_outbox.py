"""The outbox publisher against real PostgreSQL and a real broker: in order, marked after the ack, never lost."""
import json
import signal
import time
import uuid
from collections import Counter

import eventlet

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from sqlalchemy import func, select, text, update

from shop_common.messaging import event_signing, events, outbox
from shop_common.messaging.outbox import OutboxPublisher
from shop_common.telemetry.tracing import context, context_from, current_carrier

KEY = b"outbox-test-key-0123456789abcdef0123"


@pytest.fixture
def table():
    from svc_order.models import outbox as order_outbox  # any service's outbox table will do

    return order_outbox


@pytest.fixture
def transactions(transactions_for):
    return transactions_for("orders")


@pytest.fixture(scope="module")
def orders_topic(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker)
    if events.ORDERS_TOPIC not in admin.list_topics():
        admin.create_topics([NewTopic(events.ORDERS_TOPIC, 1, 1)])
    admin.close()
    return events.ORDERS_TOPIC


def stage(transactions, table, count, traceparent=None):
    order_id = str(uuid.uuid4())
    staged = [events.new_event(events.ORDER_CREATED, {
        "order_id": order_id, "user_id": "u1", "items": [{"product_id": f"p{n}", "quantity": 1, "unit_price_cents": 1}],
        "total_cents": 1, "currency": "USD", "payment_method": "pm_card_visa"}, order_id=order_id, version=1,
        producer="order_service")
              for n in range(count)]
    token = context.attach(context_from({"traceparent": traceparent})) if traceparent else None
    try:
        with transactions.begin() as session:
            for event in staged:
                outbox.add(session, table, event)
    finally:
        if token is not None:
            context.detach(token)
    return order_id, [event["event_id"] for event in staged]


def unpublished_ids(transactions, table, event_ids):
    with transactions.begin() as session:
        return set(session.execute(select(table.c.event_id).where(
            table.c.event_id.in_(event_ids), table.c.published_at.is_(None))).scalars())


def read_all(broker, topic):
    consumer = KafkaConsumer(bootstrap_servers=broker, enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    records = [record for batch in consumer.poll(timeout_ms=3000).values() for record in batch]
    consumer.close()
    return records


def publish_all(publisher):
    """Publish everything waiting; the publisher keeps the lease."""
    while publisher.publish_batch():
        pass


def drain(publisher):
    """Publish everything, then let the lease go as a stopping relay does (the next test's publisher takes it)."""
    publish_all(publisher)
    publisher.lease.release()


def test_rows_are_published_in_order_then_marked(broker, orders_topic, transactions, table):
    order_id, event_ids = stage(transactions, table, 5)
    producer = KafkaProducer(bootstrap_servers=broker, acks="all")
    drain(OutboxPublisher(transactions.engine, table, producer, "test", KEY))
    producer.close()
    assert unpublished_ids(transactions, table, event_ids) == set()
    mine = [record for record in read_all(broker, orders_topic) if record.key == order_id.encode()]
    assert [json.loads(record.value)["event_id"] for record in mine] == event_ids
    for record in mine:  # signed with the service's key (shop_common.messaging.event_signing)
        event_signing.verify(json.loads(record.value), orders_topic, {"order_service": KEY})
        with pytest.raises(event_signing.UntrustedEvent):
            event_signing.verify(json.loads(record.value), orders_topic, {"order_service": b"another key"})


def test_nothing_is_marked_when_the_broker_does_not_acknowledge(transactions, table):
    _, event_ids = stage(transactions, table, 2)
    producer = KafkaProducer(bootstrap_servers="127.0.0.1:9", request_timeout_ms=1000, max_block_ms=1000,
                             api_version=(3, 9))
    publisher = OutboxPublisher(transactions.engine, table, producer, "test", KEY)
    with pytest.raises(Exception):
        publisher.publish_batch()
    producer.close(timeout=1)
    assert unpublished_ids(transactions, table, event_ids) == set(event_ids)


def test_the_trace_context_of_the_write_travels_with_the_message(broker, orders_topic, transactions, table):
    caller = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    order_id, _ = stage(transactions, table, 1, traceparent=caller)
    producer = KafkaProducer(bootstrap_servers=broker, acks="all")
    drain(OutboxPublisher(transactions.engine, table, producer, "test", KEY))
    producer.close()
    record = next(record for record in read_all(broker, orders_topic) if record.key == order_id.encode())
    traceparent = dict(record.headers)["traceparent"].decode()
    assert traceparent.split("-")[1] == "a" * 32  # same trace; the span is the relay's publish span
    assert current_carrier() == {}  # nothing leaked into the test's own context


def test_rows_queued_but_never_acknowledged_stay_unpublished(own_broker, transactions, table):
    """The producer accepts the sends (metadata is warm, ``send`` returns futures) but the
    broker is frozen before it answers: the relay must wait for the acknowledgement, time
    out, and mark nothing. Once the broker answers again, the same rows go out and are marked."""
    process, address = own_broker
    admin = KafkaAdminClient(bootstrap_servers=address)
    admin.create_topics([NewTopic(events.ORDERS_TOPIC, 1, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=address, acks="all", request_timeout_ms=1000, retries=0)
    producer.send(events.ORDERS_TOPIC, value=b"warm-up").get(timeout=10)  # metadata cached: sends just queue
    publisher = OutboxPublisher(transactions.engine, table, producer, "test", KEY, ack_timeout_seconds=2)
    drain(publisher)  # rows other tests left behind are not this test's business
    order_id, event_ids = stage(transactions, table, 3)

    process.send_signal(signal.SIGSTOP)
    try:
        with pytest.raises(Exception):
            publisher.publish_batch()
        assert unpublished_ids(transactions, table, event_ids) == set(event_ids)
    finally:
        process.send_signal(signal.SIGCONT)

    producer.close(timeout=1)
    producer = KafkaProducer(bootstrap_servers=address, acks="all")
    drain(OutboxPublisher(transactions.engine, table, producer, "test", KEY))
    producer.close()
    assert unpublished_ids(transactions, table, event_ids) == set()
    delivered = {json.loads(record.value)["event_id"] for record in read_all(address, events.ORDERS_TOPIC)
                 if record.key == order_id.encode()}
    assert delivered == set(event_ids)


def test_one_relay_per_service_publishes_at_a_time(broker, orders_topic, transactions, table):
    """Two instances of a service both run a relay; the lease lets one publish, so an order's events
    keep their order. The holder keeps it between batches; the other takes over once the holder's
    connection ends (its process stopped), and publishes what was left."""
    producer = KafkaProducer(bootstrap_servers=broker, acks="all")
    first = OutboxPublisher(transactions.engine, table, producer, "twins", KEY)
    second = OutboxPublisher(transactions.engine, table, producer, "twins", KEY)
    publish_all(first)
    _, event_ids = stage(transactions, table, 2)
    assert second.publish_batch() == 0
    assert unpublished_ids(transactions, table, event_ids) == set(event_ids)
    assert first.publish_batch() == 2
    _, later_ids = stage(transactions, table, 1)
    assert second.publish_batch() == 0  # between batches too
    first.lease.release()  # what its process's exit does
    assert second.publish_batch() == 1
    assert unpublished_ids(transactions, table, later_ids) == set()
    assert first.publish_batch() == 0  # the lease has moved on
    second.lease.release()
    producer.close()


def test_a_holder_cut_off_by_the_database_fails_and_another_takes_over(broker, orders_topic, transactions, table):
    """The holder's connection is terminated (a database restart, a proxy): its next batch fails
    rather than publish without the lease, and another instance publishes the rows."""
    producer = KafkaProducer(bootstrap_servers=broker, acks="all")
    first = OutboxPublisher(transactions.engine, table, producer, "cut", KEY)
    second = OutboxPublisher(transactions.engine, table, producer, "cut", KEY)
    publish_all(first)
    with transactions.begin() as session:
        holder = session.execute(text("SELECT pid FROM pg_locks WHERE locktype = 'advisory' "
                                      "AND objid::int = hashtext('shop_outbox_relay:cut')")).scalar_one()
        assert session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": holder}).scalar()
    wait_for(lambda: not backend_alive(transactions, holder), 10)  # termination is a signal, not instant
    _, event_ids = stage(transactions, table, 2)
    with pytest.raises(Exception):
        first.publish_batch()
    assert second.publish_batch() == 2
    assert unpublished_ids(transactions, table, event_ids) == set()
    second.lease.release()
    producer.close()


def test_a_hung_holder_loses_the_lease_after_its_idle_time(broker, orders_topic, transactions, table):
    """A holder that stops running statements (a hung process keeps its sockets open) is cut off by
    PostgreSQL after the lease's idle time, so the shop's events do not wait for it."""
    producer = KafkaProducer(bootstrap_servers=broker, acks="all")
    # 3 s: the other's first try must come while the holder still holds, even on a slow machine.
    hung = OutboxPublisher(transactions.engine, table, producer, "hung", KEY, lease_idle_seconds=3)
    other = OutboxPublisher(transactions.engine, table, producer, "hung", KEY, lease_idle_seconds=3)
    publish_all(hung)
    _, event_ids = stage(transactions, table, 1)
    assert other.publish_batch() == 0
    deadline = time.monotonic() + 10
    while not other.publish_batch():
        assert time.monotonic() < deadline, "the hung holder kept the lease"
        time.sleep(0.2)
    assert unpublished_ids(transactions, table, event_ids) == set()
    other.lease.release()
    producer.close()


def test_a_holder_that_cannot_publish_lets_another_instance_take_over(broker, orders_topic, transactions, table):
    """A relay whose broker connection fails (only its own, say) gives the lease up with the failure,
    so a healthy instance publishes while it waits to retry."""
    stranded = KafkaProducer(bootstrap_servers="127.0.0.1:9", request_timeout_ms=1000, max_block_ms=1000,
                             api_version=(3, 9))
    producer = KafkaProducer(bootstrap_servers=broker, acks="all")
    failing = OutboxPublisher(transactions.engine, table, stranded, "stranded", KEY)
    healthy = OutboxPublisher(transactions.engine, table, producer, "stranded", KEY)
    _, event_ids = stage(transactions, table, 2)
    with pytest.raises(Exception):
        failing.publish_batch()
    publish_all(healthy)
    assert unpublished_ids(transactions, table, event_ids) == set()
    healthy.lease.release()
    stranded.close(timeout=1)
    producer.close()


def test_the_holder_publishes_a_batch_in_two_statements(broker, orders_topic, transactions, table):
    """The read and the marking, in autocommit on the lease's connection: no BEGIN, lock or COMMIT
    per batch once the lease is held (docs/performance.md, item 28)."""
    from sqlalchemy import event as sql_event

    producer = KafkaProducer(bootstrap_servers=broker, acks="all")
    publisher = OutboxPublisher(transactions.engine, table, producer, "counted", KEY)
    publish_all(publisher)
    statements = []
    sql_event.listen(publisher.lease.engine, "before_cursor_execute",
                     lambda conn, cursor, statement, *rest: statements.append(statement))
    _, event_ids = stage(transactions, table, 3)
    assert publisher.publish_batch() == 3
    assert [statement.split()[0] for statement in statements] == ["SELECT", "UPDATE"]
    assert unpublished_ids(transactions, table, event_ids) == set()
    publisher.lease.release()
    producer.close()


def test_old_published_rows_and_old_inbox_claims_are_pruned(transactions, table):
    from svc_order.models import inbox

    _, event_ids = stage(transactions, table, 3)
    with transactions.begin() as session:
        session.execute(update(table).where(table.c.event_id.in_(event_ids[:2]))
                        .values(published_at=text("now() - interval '8 days'")))
        session.execute(inbox.delete().where(inbox.c.consumer == "test"))
        session.execute(inbox.insert().values(event_id="old-claim", consumer="test", event_type="Thing",
                                              processed_at=text("now() - interval '8 days'")))
        session.execute(inbox.insert().values(event_id="new-claim", consumer="test", event_type="Thing"))
    week = 7 * 24 * 3600
    with transactions.begin() as session:
        assert outbox.prune(session, table, "published_at", week) >= 2
        assert outbox.prune(session, inbox, "processed_at", week) >= 1
    with transactions.begin() as session:
        left = set(session.execute(select(table.c.event_id).where(table.c.event_id.in_(event_ids))).scalars())
        claims = set(session.execute(select(inbox.c.event_id).where(inbox.c.consumer == "test")).scalars())
    assert left == {event_ids[2]}  # never published: kept whatever its age
    assert claims == {"new-claim"}


def test_after_a_hung_broker_every_row_is_published_and_sent_once_per_attempt(own_broker, transactions, table,
                                                                            unit_databases):
    """The relay in a service, the broker hung for 22 s: each attempt gives up after the ack timeout
    (longer than the producer's delivery timeout) and the next starts with a fresh producer after a
    growing pause, so when the broker answers again every row is published and marked, having been
    sent at most once per attempt (2 here), never once per second of the outage."""
    from nameko import config
    from nameko.containers import ServiceContainer

    from shop_common.messaging.outbox import OutboxRelay

    process, address = own_broker
    admin = KafkaAdminClient(bootstrap_servers=address)
    admin.create_topics([NewTopic(events.ORDERS_TOPIC, 1, 1)])
    admin.close()
    drain(OutboxPublisher(transactions.engine, table, KafkaProducer(bootstrap_servers=address), "test", KEY))

    class Relaying:
        name = "relaying"
        relay = OutboxRelay(table)

    with config.patch({"DATABASE_URL": unit_databases["orders"], "KAFKA": {"bootstrap_servers": address},
                       "EVENTS": {"keys": f"relaying={KEY.decode()}"}}):
        container = ServiceContainer(Relaying)
        container.start()
    try:
        order_id, _ = stage(transactions, table, 1)  # warm: the relay's producer has its metadata
        wait_for(lambda: not unpublished_ids(transactions, table, _), 20)
        process.send_signal(signal.SIGSTOP)
        try:
            order_id, event_ids = stage(transactions, table, 3)
            eventlet.sleep(22)
        finally:
            process.send_signal(signal.SIGCONT)
        wait_for(lambda: not unpublished_ids(transactions, table, event_ids), 60)
    finally:
        container.stop()
    copies = Counter(json.loads(record.value)["event_id"] for record in read_all(address, events.ORDERS_TOPIC)
                     if record.key == order_id.encode())
    assert set(copies) == set(event_ids)
    assert max(copies.values()) <= 3, copies  # attempts at about 0 and 13 s; a retry inside one at most


def backend_alive(transactions, pid):
    with transactions.begin() as session:
        return session.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}).scalar()


def wait_for(condition, timeout):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        eventlet.sleep(0.2)


def test_the_outbox_wakes_its_relay_at_commit_when_a_row_needs_publishing(transactions_for, unit_databases, table):
    """Its trigger notifies: new rows and rows marked again wake the relay, rows marked published do not,
    and a rolled-back row never does (writers send no pg_notify of their own)."""
    import select as selectors

    import psycopg2

    listener = psycopg2.connect(unit_databases["orders"].replace("postgresql+psycopg2", "postgresql"))
    listener.autocommit = True
    listener.cursor().execute(f"LISTEN {outbox.NOTIFY_CHANNEL}")

    def woken():
        listener.notifies.clear()
        selectors.select([listener], [], [], 1.0)
        listener.poll()
        return any(note.channel == outbox.NOTIFY_CHANNEL for note in listener.notifies)

    transactions = transactions_for("orders")
    try:
        woken()  # whatever earlier tests left
        order_id, event_ids = stage(transactions, table, 2)
        assert woken()
        with transactions.begin() as session:
            session.execute(update(table).where(table.c.event_id.in_(event_ids)).values(published_at=func.now()))
        assert not woken()
        with transactions.begin() as session:
            assert outbox.republish(session, table, order_id, [events.ORDER_CREATED]) == 2
        assert woken()
        with pytest.raises(RuntimeError), transactions.begin() as session:
            outbox.add(session, table, events.new_event(events.ORDER_COMPLETED, {
                "order_id": order_id, "user_id": "u1", "status": "PAID"}, order_id=order_id, producer="order_service"))
            raise RuntimeError("rolled back")
        assert not woken()
    finally:
        listener.close()
