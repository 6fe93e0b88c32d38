"""The kafka_event entrypoint against a real Tansu broker: retries, dead letters, commits after success."""
import time
import uuid

import eventlet
import eventlet.event
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from nameko import config
from nameko.containers import ServiceContainer
from nameko.extensions import DependencyProvider

from shop_common.messaging import event_signing, events
from shop_common.errors import DomainError
from shop_common.messaging.kafka import kafka_event


# Every test topic is the tester's: it signs what it publishes there, as a producing service does.
PRODUCER, KEY = "tester", "kafka-entrypoint-test-key-0123456789"


def owned(name):
    event_signing.TOPIC_OWNERS[name] = PRODUCER
    return name


class WorkerContextProvider(DependencyProvider):
    def get_dependency(self, worker_ctx):
        return worker_ctx


@pytest.fixture
def topic(broker):
    name = f"test.{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=broker)
    admin.create_topics([NewTopic(name, 1, 1), NewTopic(events.DEAD_LETTER_TOPIC, 1, 1)]
                        if events.DEAD_LETTER_TOPIC not in admin.list_topics() else [NewTopic(name, 1, 1)])
    admin.close()
    return owned(name)


def new_topic(broker, partitions=1, name=None):
    """A topic of its own for one test (``name`` again: the same one, if the broker lacks it): its name."""
    again = name is not None
    name = name or f"test.{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=broker)
    try:
        if name not in admin.list_topics():
            admin.create_topics([NewTopic(name, partitions, 1)])
    except TopicAlreadyExistsError:
        # Asked for again after a broker lost it: a running member's metadata request may have
        # re-created it between our look and our create (Tansu creates topics on first ask).
        if not again:
            raise
    finally:
        admin.close()
    return owned(name)


def event_consumer(container):
    """The container's shared KafkaEventConsumer."""
    from shop_common.messaging.kafka import KafkaEventConsumer

    return next(ext for ext in container.extensions if isinstance(ext, KafkaEventConsumer))


def publish(broker, topic, values):
    producer = KafkaProducer(bootstrap_servers=broker)
    for value in values:
        producer.send(topic, key=b"order-1", value=value, headers=[("traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01")])
    producer.flush()
    producer.close()


def signed(event):
    return events.encode(event_signing.sign(event, KEY.encode()))


def envelope(event_type="Thing", **payload):
    return signed(events.new_event(event_type, payload, order_id="order-1", producer=PRODUCER))


def run_service(broker, service_cls, group, **kafka):
    with config.patch({"KAFKA": {"bootstrap_servers": broker, "group_id": group, **kafka},
                       "EVENTS": {"keys": f"{PRODUCER}={KEY}"}}):
        container = ServiceContainer(service_cls)
        container.start()
    return container


def wait_until(condition, timeout=20, every=0.2):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        eventlet.sleep(every)


def committed(broker, group, topic, partition=0):
    consumer = KafkaConsumer(bootstrap_servers=broker, group_id=group, enable_auto_commit=False)
    offset = consumer.committed(TopicPartition(topic, partition))
    consumer.close()
    return offset


def test_transient_errors_are_retried_and_the_offset_committed_after_success(broker, topic):
    seen = []

    class Flaky:
        name = "flaky"

        @kafka_event(topic, "Thing")
        def handle(self, event):
            seen.append(event["event_id"])
            if len(seen) < 3:
                raise ConnectionError("database is away")

    group = f"g-{uuid.uuid4().hex[:6]}"
    container = run_service(broker, Flaky, group)
    try:
        publish(broker, topic, [envelope(n=1)])
        wait_until(lambda: len(seen) == 3)
        wait_until(lambda: committed(broker, group, topic) == 1)
    finally:
        container.stop()
    assert len(set(seen)) == 1  # the same event, three attempts


def test_domain_errors_and_malformed_messages_go_to_the_dead_letter_topic(broker, topic):
    handled = []

    class Strict:
        name = "strict"

        @kafka_event(topic, "Thing")
        def handle(self, event):
            if event["payload"].get("bad"):
                raise DomainError("cannot apply", {"why": "bad"})
            handled.append(event["payload"]["n"])

    group = f"g-{uuid.uuid4().hex[:6]}"
    container = run_service(broker, Strict, group)
    try:
        publish(broker, topic, [b"{not json", envelope(bad=True), envelope(n=7), envelope("Other", n=8)])
        wait_until(lambda: committed(broker, group, topic) == 4)
    finally:
        container.stop()
    assert handled == [7]  # events of other types are skipped, not handled

    dead = KafkaConsumer(bootstrap_servers=broker, enable_auto_commit=False)
    dead.assign([TopicPartition(events.DEAD_LETTER_TOPIC, 0)])
    dead.seek_to_beginning()
    records = [record for batch in dead.poll(timeout_ms=5000).values() for record in batch
               if dict(record.headers).get("x-original-topic") == topic.encode()]
    dead.close()
    assert [record.value for record in records][0] == b"{not json"
    errors = [dict(record.headers)["x-error"].decode() for record in records]
    assert errors[0].startswith("malformed") and "cannot apply" in errors[1]
    assert all(dict(record.headers)["x-consumer"] == b"strict" for record in records)


def test_an_unfinished_record_is_delivered_again_after_a_restart(broker, topic):
    started, finished = [], []
    release = eventlet.event.Event()

    class Slow:
        name = "slow"

        @kafka_event(topic, "Thing")
        def handle(self, event):
            started.append(event["event_id"])
            if len(started) == 1:
                release.wait()  # the first delivery never finishes: the process dies
            finished.append(event["event_id"])

    group = f"g-{uuid.uuid4().hex[:6]}"
    container = run_service(broker, Slow, group)
    publish(broker, topic, [envelope(n=1)])
    wait_until(lambda: len(started) == 1)
    container.kill()  # a crash: nothing was committed
    assert committed(broker, group, topic) is None

    container = run_service(broker, Slow, group)
    try:
        wait_until(lambda: len(finished) == 1, timeout=30)
        wait_until(lambda: committed(broker, group, topic) == 1)
    finally:
        container.stop()
    assert started[0] == started[1] == finished[0]


def test_headers_and_order_id_reach_the_worker_context(broker, topic):
    contexts = []

    class Context:
        name = "context"

        @kafka_event(topic, "Thing")
        def handle(self, event):
            contexts.append(dict(self.worker_ctx.data))

    Context.worker_ctx = WorkerContextProvider()
    container = run_service(broker, Context, f"g-{uuid.uuid4().hex[:6]}")
    try:
        publish(broker, topic, [envelope(n=1)])
        wait_until(lambda: contexts)
    finally:
        container.stop()
    assert contexts[0]["order_id"] == "order-1"
    assert contexts[0]["traceparent"] == "00-" + "1" * 32 + "-" + "2" * 16 + "-01"


def dead_letters_from(broker, topic):
    dead = KafkaConsumer(bootstrap_servers=broker, enable_auto_commit=False)
    dead.assign([TopicPartition(events.DEAD_LETTER_TOPIC, 0)])
    dead.seek_to_beginning()
    records = [record for batch in dead.poll(timeout_ms=5000).values() for record in batch
               if dict(record.headers).get("x-original-topic") == topic.encode()]
    dead.close()
    return records


def order_created(order_id="order-1", **changes):
    """A valid OrderCreated, then ``changes`` applied as a forger would (no validation)."""
    event = events.new_event(events.ORDER_CREATED, {
        "order_id": "order-1", "user_id": "u1", "items": [{"product_id": "p1", "quantity": 1, "unit_price_cents": 100}],
        "total_cents": 100, "currency": "USD", "payment_method": "pm_card_visa"}, order_id="order-1", version=1,
        producer=PRODUCER)
    event = dict(event, order_id=order_id, payload=dict(event["payload"], order_id=order_id))
    return dict(event, **changes)


def test_poison_events_are_dead_lettered_at_once_and_the_partition_moves_on(broker, topic):
    handled = []

    class Orders:
        name = "orders"

        @kafka_event(topic, events.ORDER_CREATED)
        def handle(self, event):
            handled.append(event["order_id"])

    no_order_id = order_created()
    del no_order_id["order_id"]
    poison = [  # signed by the topic's owner, so only their contents are wrong
        signed(dict(no_order_id, payload={k: v for k, v in no_order_id["payload"].items() if k != "order_id"})),
        signed(order_created("x" * 37)),  # an order id longer than any the shop makes
        signed(order_created(event_version=9)),  # a version nobody here knows
        signed(order_created(payload={"order_id": "order-1", "items": "many"})),
    ]
    group = f"g-{uuid.uuid4().hex[:6]}"
    container = run_service(broker, Orders, group)
    try:
        publish(broker, topic, poison + [signed(order_created("order-2"))])
        wait_until(lambda: committed(broker, group, topic) == 5)
    finally:
        container.stop()
    assert handled == ["order-2"]
    errors = [dict(record.headers)["x-error"].decode() for record in dead_letters_from(broker, topic)]
    assert len(errors) == 4 and all(error.startswith("malformed") for error in errors), errors
    assert "unknown version 9" in errors[2]


def test_events_their_topic_s_owner_did_not_sign_are_dead_lettered_as_untrusted_and_counted(broker, topic):
    from shop_common.telemetry.metrics import EVENTS_UNTRUSTED

    handled = []

    class Orders:
        name = "orders_trusting"

        @kafka_event(topic, events.ORDER_CREATED)
        def handle(self, event):
            handled.append(event["order_id"])

    genuine = event_signing.sign(order_created("order-ok"), KEY.encode())
    forged = [
        events.encode(order_created("order-unsigned")),
        events.encode(event_signing.sign(order_created("order-wrong-key"), b"a key that is not the producer's")),
        signed(dict(order_created("order-impostor"), producer="payment_service")),  # not this topic's owner
        events.encode(dict(genuine, payload=dict(genuine["payload"], total_cents=1))),  # altered after signing
    ]
    untrusted = EVENTS_UNTRUSTED.labels("orders_trusting", topic)
    before = untrusted._value.get()
    group = f"g-{uuid.uuid4().hex[:6]}"
    container = run_service(broker, Orders, group)
    try:
        publish(broker, topic, forged + [events.encode(genuine)])
        wait_until(lambda: committed(broker, group, topic) == 5)
    finally:
        container.stop()
    assert handled == ["order-ok"]
    errors = [dict(record.headers)["x-error"].decode() for record in dead_letters_from(broker, topic)]
    assert errors == ["untrusted: unsigned", "untrusted: the signature does not match",
                      f"untrusted: producer 'payment_service' may not publish on {topic}",
                      "untrusted: the signature does not match"]
    assert untrusted._value.get() - before == 4


def test_a_failing_partition_stalls_only_itself_and_lag_counts_from_the_committed_offset(broker):
    from shop_common.telemetry.metrics import KAFKA_CONSUMER_LAG

    topic_name = new_topic(broker, partitions=2)
    handled = []

    class Picky:
        name = "picky"

        @kafka_event(topic_name, "Thing")
        def handle(self, event):
            if event["payload"]["partition"] == 0:
                raise ConnectionError("this partition's database is away")
            handled.append(event["payload"]["n"])

    group = f"g-{uuid.uuid4().hex[:6]}"
    container = run_service(broker, Picky, group)
    producer = KafkaProducer(bootstrap_servers=broker)
    try:
        for n in range(3):
            for partition in (0, 1):
                producer.send(topic_name, partition=partition, value=envelope(partition=partition, n=n))
        producer.flush()
        wait_until(lambda: len(handled) == 3)
        wait_until(lambda: committed(broker, group, topic_name, partition=1) == 3)
        # Partition 0 is retrying its first record: nothing committed, and lag says so.
        lag = KAFKA_CONSUMER_LAG.labels("picky", topic_name, "0")
        wait_until(lambda: lag._value.get() == 3, timeout=20)
        producer.send(topic_name, partition=0, value=envelope(partition=0, n=3))
        producer.send(topic_name, partition=1, value=envelope(partition=1, n=3))
        producer.flush()
        wait_until(lambda: handled == [0, 1, 2, 3])
        wait_until(lambda: lag._value.get() == 4, timeout=20)
        assert committed(broker, group, topic_name, partition=0) is None
    finally:
        producer.close()
        container.stop()


def test_other_errors_are_dead_lettered_after_bounded_attempts(broker, topic):
    from shop_common.messaging.kafka import MAX_ATTEMPTS

    attempts = []

    class Buggy:
        name = "buggy"

        @kafka_event(topic, "Thing")
        def handle(self, event):
            attempts.append(event["event_id"])
            raise KeyError("a bug, not an outage")

    group = f"g-{uuid.uuid4().hex[:6]}"
    container = run_service(broker, Buggy, group)
    try:
        publish(broker, topic, [envelope(n=1)])
        wait_until(lambda: committed(broker, group, topic) == 1, timeout=30)
    finally:
        container.stop()
    assert len(attempts) == MAX_ATTEMPTS
    [record] = dead_letters_from(broker, topic)
    assert f"failed {MAX_ATTEMPTS} times" in dict(record.headers)["x-error"].decode()


def test_a_dead_letter_that_cannot_be_sent_is_retried_before_the_record_is_committed(broker, topic):
    handled = []

    class Strict:
        name = "strict2"

        @kafka_event(topic, "Thing")
        def handle(self, event):
            handled.append(event["event_id"])
            raise DomainError("cannot apply")

    group = f"g-{uuid.uuid4().hex[:6]}"
    container = run_service(broker, Strict, group)
    consumer = event_consumer(container)
    consumer._dead_letters.close(timeout=1)
    # The first send fails: nobody listens there. The consumer must make itself a working producer.
    consumer._dead_letters = KafkaProducer(bootstrap_servers="127.0.0.1:9", api_version=(3, 9), max_block_ms=1000)
    try:
        publish(broker, topic, [envelope(n=1)])
        wait_until(lambda: committed(broker, group, topic) == 1, timeout=40)
    finally:
        container.stop()
    assert len(handled) == 1  # the handler ran once; only the dead-letter send was retried
    assert len(dead_letters_from(broker, topic)) == 1


def test_a_partition_kept_across_a_rebalance_is_read_on(broker):
    """A member keeps its partition when another joins the group (kafka-python keeps the partition's
    paused flag and position across the rebalance): what it had in hand is finished and committed,
    and the partition is resumed, so the records after it are handled too."""
    kept, other = new_topic(broker), new_topic(broker)
    handled, release = [], eventlet.event.Event()

    class Keeper:
        name = "keeper"

        @kafka_event(kept, "Thing")
        def handle(self, event):
            if event["payload"]["n"] == 0:
                release.wait()  # in hand while the group rebalances
            handled.append(event["payload"]["n"])

        # Also subscribed to the newcomer's topic, as every instance of a shop service is to all of
        # its group's topics: a leader without metadata for a member's topic rebalances a second
        # time, and Tansu then leaves a member's JoinGroup unanswered (seen in 3 runs of 4).
        @kafka_event(other, "Thing")
        def handle_other(self, event):
            pass

    class Newcomer:  # same group, another topic: the range assignor leaves `kept` with Keeper
        name = "newcomer"

        @kafka_event(other, "Thing")
        def handle(self, event):
            pass

    group = f"g-{uuid.uuid4().hex[:6]}"
    keeper = run_service(broker, Keeper, group)
    newcomer = None
    try:
        publish(broker, kept, [envelope(n=0)])
        wait_until(lambda: keeper.extensions and not handled and _started(keeper))
        newcomer = run_service(broker, Newcomer, group)
        eventlet.spawn_after(2, release.send)  # finishes while the keeper waits in its revoke callback
        publish(broker, kept, [envelope(n=1), envelope(n=2)])
        wait_until(lambda: handled == [0, 1, 2], timeout=40)
        wait_until(lambda: committed(broker, group, kept) == 3, timeout=20)
    finally:
        keeper.stop()
        if newcomer is not None:
            newcomer.stop()


def _started(container):
    return bool(event_consumer(container)._in_flight)


def one_busy_partition_beside_a_flowing_one(broker, timeout, **kafka):
    """40 records of partition 0 fetched at once while a slow handler takes 5 at a time (so the
    partition is paused with records parked), and partition 1 flowing meanwhile. Returns what the
    handler saw of each partition."""
    topic_name = new_topic(broker, partitions=2)
    handled = {0: [], 1: []}

    class Busy:
        name = "busy"

        @kafka_event(topic_name, "Thing")
        def handle(self, event):
            eventlet.sleep(0.05)
            handled[event["payload"]["partition"]].append(event["payload"]["n"])

    group = f"g-{uuid.uuid4().hex[:6]}"
    container = run_service(broker, Busy, group, max_poll_records=5, **kafka)
    producer = KafkaProducer(bootstrap_servers=broker, linger_ms=50)
    try:
        for n in range(40):
            producer.send(topic_name, partition=0, value=envelope(partition=0, n=n))
        producer.flush()
        for n in range(60):  # the other partition keeps flowing meanwhile
            producer.send(topic_name, partition=1, value=envelope(partition=1, n=n))
            producer.flush()
            eventlet.sleep(0.05)
        wait_until(lambda: len(handled[0]) == 40 and len(handled[1]) == 60, timeout=timeout)
    finally:
        producer.close()
        container.stop()
    return handled


def test_a_partition_paused_with_records_still_fetched_is_not_stranded(broker):
    """When the worker is done, the parked rest of the busy partition must be read (kafka-python
    3.0.12 alone would never hand it back, and never fetch that partition again)."""
    handled = one_busy_partition_beside_a_flowing_one(broker, timeout=30)
    assert handled[0] == list(range(40)) and handled[1] == list(range(60))


def test_a_stranded_partition_is_fetched_afresh(broker, monkeypatch):
    """The safety net under the fixes above: with the resume-time fix switched off, kafka-python
    strands the partition (its parked records are never handed back); the consumer notices a
    partition that has records to read but does not move, and fetches it again. Each time the
    partition strands again (the fix is off), it waits for the next check."""
    from shop_common.messaging.kafka import KafkaEventConsumer

    monkeypatch.setattr(KafkaEventConsumer, "_unpark", lambda self, tp: None)
    handled = one_busy_partition_beside_a_flowing_one(broker, timeout=90, stall_seconds=1,
                                                   lag_refresh_seconds=0.5)
    assert handled[0] == list(range(40)) and handled[1] == list(range(60))


def test_a_group_whose_members_all_left_is_served_again(broker):
    """Every instance of a service stops, then they start again one after the other: the group must
    be served. Tansu, once every member has left with LeaveGroup after a rebalance, keeps a departed
    member as the leader and never assigns the next members anything (most such cycles, for good);
    members configured as the stack runs them (leave_group: false) are expired instead."""
    topic_name = new_topic(broker, partitions=2)
    handled = []

    class Member:
        name = "member"

        @kafka_event(topic_name, "Thing")
        def handle(self, event):
            handled.append(event["payload"]["n"])

    group = f"g-{uuid.uuid4().hex[:6]}"
    producer = KafkaProducer(bootstrap_servers=broker)

    def served(n):
        for partition in (0, 1):
            producer.send(topic_name, partition=partition, value=envelope(n=n + partition))
        producer.flush()
        wait_until(lambda: {n, n + 1} <= set(handled), timeout=40)

    try:
        for cycle in range(2):  # the bug showed in most cycles; two keep the test quick
            members = [run_service(broker, Member, group, leave_group=False)]
            try:
                served(cycle * 10)
                members.append(run_service(broker, Member, group, leave_group=False))  # a rebalance
                served(cycle * 10 + 5)
            finally:  # both at once, as `supervisorctl stop svc_x:*` does
                for stop in [eventlet.spawn(member.stop) for member in members]:
                    stop.wait()
    finally:
        producer.close()
    assert sorted(handled) == [0, 1, 5, 6, 10, 11, 15, 16]


def test_a_slow_order_does_not_hold_up_other_orders_and_the_commit_waits_for_it(broker, topic):
    """Keys (orders) of one partition's batch run side by side, each in its own order; the commit
    never passes the first unfinished record."""
    handled, release = [], eventlet.event.Event()

    class PerOrder:
        name = "per_order"

        @kafka_event(topic, "Thing")
        def handle(self, event):
            payload = event["payload"]
            if (payload["order"], payload["n"]) == ("A", 1):
                release.wait()  # a payment waiting on Stripe
            handled.append((payload["order"], payload["n"]))

    producer = KafkaProducer(bootstrap_servers=broker)
    for order, n in (("A", 1), ("B", 1), ("B", 2), ("A", 2), ("C", 1)):
        producer.send(topic, key=order.encode(), value=envelope(order=order, n=n))
    producer.flush()
    producer.close()
    group = f"g-{uuid.uuid4().hex[:6]}"
    container = run_service(broker, PerOrder, group)
    try:
        wait_until(lambda: {("B", 1), ("B", 2), ("C", 1)} <= set(handled))
        eventlet.sleep(1.5)  # time enough for a wrong commit to land
        assert ("A", 2) not in handled  # an order's own events stay in order
        assert committed(broker, group, topic) in (None, 0)  # offset 0 (A 1) is not finished
        release.send()
        wait_until(lambda: committed(broker, group, topic) == 5)
    finally:
        container.stop()
    assert handled.index(("A", 1)) < handled.index(("A", 2))
    assert handled.index(("B", 1)) < handled.index(("B", 2)) < handled.index(("A", 1))


def test_key_concurrency_one_handles_a_partition_strictly_in_turn(broker, topic):
    """KAFKA.key_concurrency (KAFKA_KEY_CONCURRENCY) is honoured: with 1, a slow order holds up the rest."""
    handled, release = [], eventlet.event.Event()

    class InTurn:
        name = "in_turn"

        @kafka_event(topic, "Thing")
        def handle(self, event):
            if event["payload"]["order"] == "A":
                release.wait()
            handled.append(event["payload"]["order"])

    publish_keyed(broker, topic, ("A", "B", "C"))
    container = run_service(broker, InTurn, f"g-{uuid.uuid4().hex[:6]}", key_concurrency=1)
    try:
        eventlet.sleep(2)
        assert handled == []  # B and C wait behind A
        release.send()
        wait_until(lambda: len(handled) == 3)
    finally:
        container.stop()
    assert handled[0] == "A"


def publish_keyed(broker, topic, orders):
    producer = KafkaProducer(bootstrap_servers=broker)
    for order in orders:
        producer.send(topic, key=order.encode(), value=envelope(order=order, n=1))
    producer.flush()
    producer.close()


def test_probes_say_live_and_ready_while_the_consumer_polls_and_not_ready_once_it_stops(broker, topic):
    """What Kubernetes and compose probe on each service's metrics port."""
    import requests

    from shop_common.telemetry.metrics import LIVENESS_CHECKS, READINESS_CHECKS, ServiceTelemetry
    from stack import free_port

    class Probed:
        name = "probed"
        telemetry = ServiceTelemetry()

        @kafka_event(topic, "Thing")
        def handle(self, event):
            pass

    READINESS_CHECKS.clear()  # containers of earlier tests in this process registered theirs
    LIVENESS_CHECKS.clear()
    port = free_port()
    with config.patch({"METRICS_PORT": port}):
        container = run_service(broker, Probed, f"g-{uuid.uuid4().hex[:6]}")
    base = f"http://127.0.0.1:{port}"
    try:
        live = requests.get(f"{base}/health/live", timeout=5)
        assert live.status_code == 200 and live.json()["checks"] == {"probed.kafka_poller": "polling"}
        ready = requests.get(f"{base}/health/ready", timeout=5)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"probed": "started", "probed.kafka_consumer": "polling"}
        assert "shop_build_info" in requests.get(f"{base}/metrics", timeout=5).text
    finally:
        container.stop()
    stopped = requests.get(f"{base}/health/ready", timeout=5)
    assert stopped.status_code == 503 and stopped.json()["status"] == "not_ready"
    assert requests.get(f"{base}/health/live", timeout=5).status_code == 200


def test_a_wedged_poller_fails_the_liveness_probe_until_it_comes_round_again(broker, topic, monkeypatch):
    """Kubernetes restarts a process whose /health/live fails: a Kafka poller stuck in a call that
    never returns must fail it, though the process itself still answers."""
    import requests

    from shop_common.messaging import kafka as shop_kafka
    from shop_common.telemetry.metrics import LIVENESS_CHECKS, ServiceTelemetry
    from stack import free_port

    class Polled:
        name = "polled"
        telemetry = ServiceTelemetry()

        @kafka_event(topic, "Thing")
        def handle(self, event):
            pass

    LIVENESS_CHECKS.clear()
    monkeypatch.setattr(shop_kafka, "POLLER_LIVE_SECONDS", 1.0)
    port = free_port()
    with config.patch({"METRICS_PORT": port}):
        container = run_service(broker, Polled, f"g-{uuid.uuid4().hex[:6]}")
    live_url = f"http://127.0.0.1:{port}/health/live"
    consumer = event_consumer(container)
    release = eventlet.event.Event()
    real_poll = consumer._consumer.poll

    def stuck_poll(**kwargs):
        release.wait()
        return real_poll(**kwargs)

    try:
        wait_until(lambda: requests.get(live_url, timeout=5).status_code == 200)
        consumer._consumer.poll = stuck_poll
        wait_until(lambda: requests.get(live_url, timeout=5).status_code == 503, timeout=10)
        assert "poller stuck" in requests.get(live_url, timeout=5).json()["checks"]["polled.kafka_poller"]
        release.send(None)
        wait_until(lambda: requests.get(live_url, timeout=5).status_code == 200, timeout=10)
    finally:
        if not release.ready():
            release.send(None)
        container.stop()


def test_a_broker_that_lost_its_log_is_read_again_from_its_start(own_broker, start_broker):
    """Tansu keeps nothing on disk: after a restart the topic comes back empty, re-created by the
    first client that asks for it with four partitions instead of one. The member rejoins for the
    new partitions; kafka-python 3.0.12 never took up that join round (_take_up_pending_joins), and
    the member read nothing more, for good (chaos experiment 8)."""
    process, address = own_broker
    lost = new_topic(address)
    handled = []

    class Reader:
        name = "reader"

        @kafka_event(lost, "Thing")
        def handle(self, event):
            handled.append(event["payload"]["n"])

    container = run_service(address, Reader, f"g-{uuid.uuid4().hex[:6]}", stall_seconds=1, lag_refresh_seconds=0.5,
                            leave_group=False)
    restarted = None
    try:
        publish(address, lost, [envelope(n=n) for n in range(30)])
        wait_until(lambda: len(handled) == 30, timeout=30)
        process.kill()
        process.wait(10)
        restarted, _ = start_broker(int(address.rsplit(":", 1)[1]))
        new_topic(address, name=lost)
        publish(address, lost, [envelope(n=n) for n in range(100, 103)])
        wait_until(lambda: {100, 101, 102} <= set(handled), timeout=90)
    finally:
        container.stop()
        if restarted is not None:
            restarted.kill()
            restarted.wait(10)


def test_a_position_past_the_end_of_its_log_is_read_again_from_the_committed_offset(broker):
    """What a member that kept its partition across a broker losing its log holds: a position past
    the partition's end. Real Kafka answers OffsetOutOfRange and the consumer resets itself; Tansu
    answers no records, so the watch does it."""
    lost = new_topic(broker)
    handled = []

    class Reader:
        name = "reader"

        @kafka_event(lost, "Thing")
        def handle(self, event):
            handled.append(event["payload"]["n"])

    group = f"g-{uuid.uuid4().hex[:6]}"
    container = run_service(broker, Reader, group, stall_seconds=1, lag_refresh_seconds=0.5)
    try:
        publish(broker, lost, [envelope(n=n) for n in range(3)])
        wait_until(lambda: handled == [0, 1, 2] and committed(broker, group, lost) == 3, timeout=30)
        consumer = event_consumer(container)._consumer
        consumer.seek(TopicPartition(lost, 0), 1000)  # as if the log it was reached in had gone
        publish(broker, lost, [envelope(n=n) for n in range(3, 6)])
        wait_until(lambda: handled[3:] == [3, 4, 5], timeout=30)
    finally:
        container.stop()


def test_a_service_logs_in_to_kafka_with_its_own_scram_user_only_when_sasl_is_configured():
    from shop_common.messaging.kafka import security_settings

    assert security_settings({}) == {} and security_settings({"security_protocol": "plaintext"}) == {}
    login = security_settings({"security_protocol": "SASL_PLAINTEXT", "username": "svc_order", "password": "pw"})
    assert login == {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                     "sasl_plain_username": "svc_order", "sasl_plain_password": "pw"}
    # names kafka-python's producer and consumer take (an unknown one would be refused at start)
    assert set(login) <= set(KafkaProducer.DEFAULT_CONFIG) & set(KafkaConsumer.DEFAULT_CONFIG)


def test_fetches_wait_long_while_the_topics_are_quiet_and_short_while_records_flow(broker, topic):
    handled = []

    class Reader:
        name = "reader"

        @kafka_event(topic, "Thing")
        def handle(self, event):
            handled.append(event["payload"]["n"])

    container = run_service(broker, Reader, f"g-{uuid.uuid4().hex[:6]}", fetch_max_wait_ms=25,
                            idle_fetch_max_wait_ms=400, quiet_seconds=1)
    fetcher_wait = lambda: event_consumer(container)._consumer._fetcher.config["fetch_max_wait_ms"]  # noqa: E731
    try:
        wait_until(lambda: fetcher_wait() == 400)  # quiet since it started
        publish(broker, topic, [envelope(n=1)])
        wait_until(lambda: handled == [1] and fetcher_wait() == 25)
        wait_until(lambda: fetcher_wait() == 400)  # quiet again
        publish(broker, topic, [envelope(n=2)])
        wait_until(lambda: handled == [1, 2])
    finally:
        container.stop()
