"""The dead-letter topic, for operators: what is there and why, and replaying chosen messages.

A dead letter is the original message (key, value, headers) plus the
consumer's reason: ``x-original-topic``, ``x-error``, ``x-consumer``,
``x-event-id``, ``x-order-id``, ``x-dead-lettered-at``. Once the cause is
fixed, ``replay`` sends the original back to its topic, unchanged: the same
event id, so a consumer that had applied it skips it (inbox), and one that
could not gets it again. A replayed message that still fails comes back here
with its new reason.

    python -m shop_common.messaging.dead_letters list            (make dead-letters)
    python -m shop_common.messaging.dead_letters replay 0:12 2:3 (make replay-dead-letters IDS="0:12 2:3")

In ``nameko shell``: ``n.rpc.order_service.dead_letters()`` and
``n.rpc.order_service.replay_dead_letters(["0:12"])`` (any service answers).
"""
import argparse
import json
import os

from kafka import KafkaConsumer, TopicPartition

from shop_common.messaging import event_signing, events
from shop_common.messaging.kafka import make_producer, security_settings

REPLAY_HEADER = "x-replay-of"


def _headers(record):
    return {key: value.decode("utf-8", "replace") for key, value in (record.headers or []) if value is not None}


def _summary(record):
    headers = _headers(record)
    try:
        value = json.loads(record.value)
    except (TypeError, ValueError):
        value = {}
    value = value if isinstance(value, dict) else {}
    return {
        "id": f"{record.partition}:{record.offset}",
        "original_topic": headers.get("x-original-topic"),
        "consumer": headers.get("x-consumer"),
        "reason": headers.get("x-error"),
        "event_type": value.get("event_type"),
        "event_id": headers.get("x-event-id") or value.get("event_id"),
        "order_id": headers.get("x-order-id") or value.get("order_id"),
        "dead_lettered_at": headers.get("x-dead-lettered-at"),
        "replay_of": headers.get(REPLAY_HEADER),
    }


def _records(bootstrap_servers):
    """Every record of the dead-letter topic, oldest first per partition."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False,
                             consumer_timeout_ms=1500, **security_settings())
    try:
        partitions = consumer.partitions_for_topic(events.DEAD_LETTER_TOPIC) or set()
        assigned = [TopicPartition(events.DEAD_LETTER_TOPIC, partition) for partition in sorted(partitions)]
        if not assigned:
            return []
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        return list(consumer)  # iteration ends after consumer_timeout_ms without a record
    finally:
        consumer.close()


def list_dead_letters(bootstrap_servers, limit=None):
    letters = [_summary(record) for record in _records(bootstrap_servers)]
    letters.sort(key=lambda letter: letter["dead_lettered_at"] or "")
    return letters[-limit:] if limit else letters


def replay(bootstrap_servers, ids, owner=None):
    """Send these dead letters (``"partition:offset"``) back to their original topics; returns what was sent.

    ``owner`` (a service name): only letters of topics it owns, the only ones its Kafka user may write
    (ops/kafka_access.py); nothing is sent when any letter belongs to another owner, and the error
    says whom to ask."""
    wanted = set(ids)
    chosen = [record for record in _records(bootstrap_servers) if f"{record.partition}:{record.offset}" in wanted]
    missing = wanted - {f"{record.partition}:{record.offset}" for record in chosen}
    if missing:
        raise KeyError(f"no such dead letters: {', '.join(sorted(missing))}")
    if owner is not None:
        others = {}
        for record in chosen:
            topic_owner = event_signing.TOPIC_OWNERS.get(_headers(record).get("x-original-topic"), owner)
            if topic_owner != owner:
                others.setdefault(topic_owner, []).append(f"{record.partition}:{record.offset}")
        if others:
            raise ValueError("replayed only by their topic's owner: " + "; ".join(
                f"{name}.replay_dead_letters({ids_of!r})" for name, ids_of in sorted(others.items())))
    producer = make_producer(bootstrap_servers)
    sent = []
    try:
        for record in chosen:
            headers = _headers(record)
            topic = headers.get("x-original-topic")
            if topic not in events.ALL_TOPICS or topic == events.DEAD_LETTER_TOPIC:
                raise ValueError(f"dead letter {record.partition}:{record.offset} has no original topic")
            original = [(key, value.encode()) for key, value in headers.items() if not key.startswith("x-")]
            original.append((REPLAY_HEADER, f"{record.partition}:{record.offset}".encode()))
            producer.send(topic, key=record.key, value=record.value, headers=original).get(timeout=15)
            sent.append({"id": f"{record.partition}:{record.offset}", "topic": topic})
    finally:
        producer.close(timeout=5)
    return sent


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["list", "replay"])
    parser.add_argument("ids", nargs="*", help="with replay: the dead letters' ids (partition:offset)")
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    args = parser.parse_args()
    if args.command == "list":
        letters = list_dead_letters(args.bootstrap)
        for letter in letters:
            print(json.dumps(letter))
        print(f"{len(letters)} dead letters on {events.DEAD_LETTER_TOPIC}")
    else:
        if not args.ids:
            parser.error("replay needs the ids of the dead letters to send back (see `list`)")
        for sent in replay(args.bootstrap, args.ids):
            print(f"replayed {sent['id']} to {sent['topic']}")


if __name__ == "__main__":
    main()
