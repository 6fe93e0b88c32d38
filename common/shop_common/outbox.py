"""Transactional outbox: events are rows first, Kafka messages second.

A service writes its state change and the event in one database transaction
(``add``); ``OutboxRelay`` publishes committed rows to Kafka in id order and
marks them published. A crash between publish and mark republishes, which
consumers absorb through their inbox: at least once, never lost, even though
the local broker keeps nothing on disk.
"""
import logging
import select
import time
from datetime import datetime, timezone

import eventlet
from eventlet.queue import Empty, LightQueue
from nameko import config
from nameko.extensions import DependencyProvider
from opentelemetry import trace
from sqlalchemy import (
    BigInteger, Column, DateTime, Index, MetaData, String, Table, func, select as sql_select, text, update,
)
from sqlalchemy.dialects.postgresql import JSONB

from shop_common import events
from shop_common.db import Transactions, make_engine
from shop_common.kafka import kafka_settings, make_producer
from shop_common.metrics import OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, OUTBOX_PUBLISH_DELAY, OUTBOX_PUBLISHED
from shop_common.tracing import context_from, current_carrier, tracer

TRACER = tracer(__name__)

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "shop_outbox"
BATCH_SIZE = 200
IDLE_POLL_SECONDS = 1.0
BACKLOG_REFRESH_SECONDS = 5.0


def outbox_table(metadata: MetaData):
    table = Table(
        "outbox",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False, unique=True),
        Column("event_type", String(64), nullable=False),
        Column("topic", String(120), nullable=False),
        Column("message_key", String(120)),
        Column("envelope", JSONB, nullable=False),
        Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True)),
    )
    Index("ix_outbox_unpublished", table.c.id, postgresql_where=table.c.published_at.is_(None))
    return table


def add(session, table, event):
    """Stage ``event`` for publishing in the caller's transaction."""
    carrier = current_carrier()  # the trace continues from here when the row is published
    session.execute(
        table.insert().values(
            event_id=event["event_id"],
            event_type=event["event_type"],
            topic=events.TOPIC_OF[event["event_type"]],
            message_key=event.get("order_id"),
            envelope=event,
            headers=carrier,
        )
    )
    _wake_relay(session)


def republish(session, table, order_id, event_types):
    """Mark an order's already published events of these types for publishing again.

    The same rows, hence the same event ids: consumers that have them skip
    them (inbox), consumers that lost them get them. This is how events lost
    by the broker are recovered (the outbox outlives any broker).
    """
    rows = session.execute(
        update(table)
        .where(table.c.message_key == order_id, table.c.event_type.in_(event_types),
               table.c.published_at.is_not(None))
        .values(published_at=None)
        .returning(table.c.event_id)
    ).all()
    if rows:
        _wake_relay(session)
    return len(rows)


def _wake_relay(session):
    # Delivered at commit, never for a rolled-back row: the relay publishes at once.
    session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})


def backlog(session, table):
    """Unpublished rows and the age in seconds of the oldest one."""
    row = session.execute(
        sql_select(func.count(), func.extract("epoch", func.now() - func.min(table.c.created_at)))
        .where(table.c.published_at.is_(None))
    ).one()
    return {"unpublished": row[0], "oldest_age_seconds": float(row[1] or 0.0)}


class OutboxPublisher:
    """Publishes one batch of unpublished rows; usable without Nameko."""

    def __init__(self, engine, table, producer, service, ack_timeout_seconds=10):
        self.transactions = Transactions(engine)
        self.table = table
        self.producer = producer
        self.service = service
        self.ack_timeout_seconds = ack_timeout_seconds

    def publish_batch(self, limit=BATCH_SIZE):
        table = self.table
        with self.transactions.begin() as session:
            # SKIP LOCKED lets several relays of one service share the work.
            rows = session.execute(
                sql_select(table)
                .where(table.c.published_at.is_(None))
                .order_by(table.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                return 0
            futures = [self._send(row) for row in rows]
            self.producer.flush(timeout=self.ack_timeout_seconds)
            for future in futures:
                future.get(timeout=self.ack_timeout_seconds)  # raises on any failed send: nothing is marked
            session.execute(
                update(table).where(table.c.id.in_([row.id for row in rows])).values(published_at=func.now())
            )
        acknowledged = datetime.now(timezone.utc)
        for row in rows:
            OUTBOX_PUBLISH_DELAY.labels(self.service).observe((acknowledged - row.created_at).total_seconds())
            OUTBOX_PUBLISHED.labels(self.service, row.topic).inc()
        return len(rows)

    def _send(self, row):
        # A producer span, child of the context stored with the row; consumers continue from it.
        with TRACER.start_as_current_span(
            f"publish {row.event_type}", context=context_from(row.headers), kind=trace.SpanKind.PRODUCER,
            attributes={"messaging.system": "kafka", "messaging.destination.name": row.topic,
                        "messaging.kafka.message.key": row.message_key or "", "shop.event_id": row.event_id},
        ):
            headers = current_carrier()
            return self.producer.send(
                row.topic,
                key=row.message_key.encode() if row.message_key else None,
                value=events.encode(row.envelope),
                headers=[(key, str(value).encode()) for key, value in headers.items()],
            )

    def record_backlog(self):
        with self.transactions.begin() as session:
            current = backlog(session, self.table)
        OUTBOX_BACKLOG.labels(self.service).set(current["unpublished"])
        OUTBOX_OLDEST_AGE.labels(self.service).set(current["oldest_age_seconds"])
        return current


class OutboxRelay(DependencyProvider):
    """Runs the publisher in the service process, woken by NOTIFY.

    Workers get an object with ``backlog()`` for operators.
    """

    def __init__(self, table):
        self.table = table
        self._wake = LightQueue()
        self._running = False

    def setup(self):
        self.engine = make_engine(config["DATABASE_URL"], pool_size=2)
        self.producer = make_producer(kafka_settings().get("bootstrap_servers", "127.0.0.1:9092"))
        self.publisher = OutboxPublisher(self.engine, self.table, self.producer, self.container.service_name)

    def start(self):
        self._running = True
        self.container.spawn_managed_thread(self._listen, identifier="outbox_listen")
        self.container.spawn_managed_thread(self._relay, identifier="outbox_relay")

    def stop(self):
        self._running = False
        self._wake.put(None)
        eventlet.sleep(0)
        self.producer.close(timeout=5)
        self.engine.dispose()

    kill = stop

    def get_dependency(self, worker_ctx):
        return self

    def backlog(self):
        return self.publisher.record_backlog()

    def _relay(self):
        backlog_recorded_at = 0.0
        while self._running:
            try:
                published = self.publisher.publish_batch()
                if time.monotonic() - backlog_recorded_at > BACKLOG_REFRESH_SECONDS:
                    self.publisher.record_backlog()
                    backlog_recorded_at = time.monotonic()
            except Exception:
                log.exception("outbox publish failed; retrying")
                eventlet.sleep(1.0)
                continue
            if published < BATCH_SIZE:
                self._wait_for_work()

    def _wait_for_work(self):
        try:
            self._wake.get(timeout=IDLE_POLL_SECONDS)
            while True:  # one publish pass serves every pending wake-up
                self._wake.get_nowait()
        except Empty:
            pass

    def _listen(self):
        while self._running:
            try:
                connection = self.engine.raw_connection()
                try:
                    connection.driver_connection.autocommit = True
                    cursor = connection.cursor()
                    cursor.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    raw = connection.driver_connection
                    while self._running:
                        if select.select([raw], [], [], IDLE_POLL_SECONDS)[0]:
                            raw.poll()
                            if raw.notifies:
                                raw.notifies.clear()
                                self._wake.put(True)
                finally:
                    connection.invalidate()
            except Exception:
                log.exception("outbox LISTEN connection lost; reconnecting")
                eventlet.sleep(1.0)
