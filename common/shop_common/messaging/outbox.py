"""Transactional outbox: events are rows first, Kafka messages second.

A service writes its state change and the event in one database transaction
(``add``); ``OutboxRelay`` publishes committed rows to Kafka in id order and
marks them published once the broker has acknowledged them. A crash between
publish and mark republishes, which consumers absorb through their inbox: at
least once, never lost, even though the local broker keeps nothing on disk.

With several instances of a service, every instance runs a relay, but only
the one holding the service's relay lease publishes: a PostgreSQL session
advisory lock on a connection of its own (``RelayLease``). One relay at a
time, so an order's events keep their order; the holder keeps the lease
while it is healthy (two statements per batch, no transaction around them),
and another instance takes over as soon as the holder lets go (it unlocks
when it stops or fails a batch), its process dies (PostgreSQL frees a
session's locks when its connection ends) or, when it hangs, after
``LEASE_IDLE_SECONDS`` without a statement. Published rows and old inbox
rows are pruned after ``SHOP_MESSAGE_RETENTION_SECONDS`` (a week by default,
far longer than any order stays open, so a redrive always finds its rows).
"""
import functools
import logging
import os
import select
import time
from datetime import datetime, timezone

import eventlet
from eventlet.queue import Empty, LightQueue
from nameko import config
from nameko.extensions import DependencyProvider
from opentelemetry import trace
from sqlalchemy import (
    BigInteger, Column, DateTime, Index, MetaData, String, Table, any_, bindparam, create_engine, func,
    select as sql_select, text, update,
)
from sqlalchemy.pool import NullPool
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from shop_common import faults
from shop_common.messaging import event_signing, events
from shop_common.storage.db import Transactions, make_engine
from shop_common.messaging.kafka import kafka_settings, make_producer
from shop_common.telemetry.metrics import OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, OUTBOX_PUBLISH_DELAY, OUTBOX_PUBLISHED
from shop_common.production import UnsafeConfiguration
from shop_common.telemetry.tracing import context_from, current_carrier, tracer

TRACER = tracer(__name__)

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "shop_outbox"  # notified by the outbox table's trigger (storage.migrations.create_outbox_wakeup)
BATCH_SIZE = 200
IDLE_POLL_SECONDS = 1.0
BACKLOG_REFRESH_SECONDS = 5.0
# Longer than the producer's own delivery timeout (shop_common.messaging.kafka.make_producer):
# a send has failed for good before the relay gives up on it and tries again.
ACK_TIMEOUT_SECONDS = 12.0
RETRY_BACKOFF_MAX = 30.0
PRUNE_INTERVAL_SECONDS = 600.0
PRUNE_BATCH = 1000
RETENTION_SECONDS = int(os.environ.get("SHOP_MESSAGE_RETENTION_SECONDS", 7 * 24 * 3600))


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
    Index("ix_outbox_message_key", table.c.message_key)
    Index("ix_outbox_published_at", table.c.published_at, postgresql_where=table.c.published_at.is_not(None))
    return table


def add(session, table, event, key=None):
    """Stage ``event`` for publishing in the caller's transaction, keyed by its order (or ``key``)."""
    session.execute(table.insert(), row_of(event, key))
    # The relay is woken at commit by the outbox's own trigger (migrations.create_outbox_wakeup).


def row_of(event, key=None):
    """The outbox row that stages ``event``."""
    return {
        "event_id": event["event_id"],
        "event_type": event["event_type"],
        "topic": events.TOPIC_OF[event["event_type"]],
        "message_key": key or event.get("order_id"),
        "envelope": event,
        "headers": current_carrier(),  # the trace continues from here when the row is published
    }


def staging(table, prefix):
    """An INSERT of one outbox row whose values are parameters named ``prefix`` + column (fill them
    from ``row_of``): for a statement built once that writes its event beside other rows."""
    return table.insert().values({column: bindparam(prefix + column) for column in ROW_COLUMNS})


ROW_COLUMNS = ("event_id", "event_type", "topic", "message_key", "envelope", "headers")


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
    return len(rows)  # the outbox's trigger wakes the relay at commit, as for new rows


def prune(session, table, column, older_than_seconds, limit=PRUNE_BATCH):
    """Delete up to ``limit`` rows whose ``column`` (a time) is older than this; returns how many."""
    # Names are this module's own constants, never input.
    return session.execute(text(
        f"DELETE FROM {table.name} WHERE ctid IN (SELECT ctid FROM {table.name} "
        f"WHERE {column} < now() - make_interval(secs => :age) LIMIT :limit)"),
        {"age": older_than_seconds, "limit": limit}).rowcount


def backlog(session, table):
    """Unpublished rows and the age in seconds of the oldest one."""
    row = session.execute(
        sql_select(func.count(), func.extract("epoch", func.now() - func.min(table.c.created_at)))
        .where(table.c.published_at.is_(None))
    ).one()
    return {"unpublished": row[0], "oldest_age_seconds": float(row[1] or 0.0)}


LEASING = sql_select(func.pg_try_advisory_lock(func.hashtext(bindparam("lock_name"))))
UNLEASING = sql_select(func.pg_advisory_unlock(func.hashtext(bindparam("lock_name"))))
# A holder whose connection sat idle this long is cut off by PostgreSQL, which frees the lease for
# another instance (a hung process keeps its sockets open). A healthy holder runs a statement at least
# every IDLE_POLL_SECONDS, and at most ACK_TIMEOUT_SECONDS twice (flush, then the acks) between its
# read and its marking.
LEASE_IDLE_SECONDS = 60


class RelayLease:
    """The right to publish one service's outbox: a session-level advisory lock held on a connection of
    its own, in autocommit. Every statement of the holder runs on that connection, so a holder whose
    connection was lost can neither read nor mark: it fails, and never publishes without the lease."""

    def __init__(self, engine, name, idle_seconds=LEASE_IDLE_SECONDS):
        # Never pooled: a pooled connection goes back with its session's locks still held.
        self.engine = create_engine(engine.url, poolclass=NullPool, hide_parameters=True,
                                    isolation_level="AUTOCOMMIT")
        self.name, self.idle_seconds = name, idle_seconds
        self._connection = None
        self._held = False

    def connection(self):
        """The lease's connection if this relay holds the lease (taking it if it is free), else None."""
        if not self._held:
            if self._connection is None:
                self._connection = self.engine.connect()
                self._connection.exec_driver_sql(f"SET idle_session_timeout = '{int(self.idle_seconds)}s'")
            self._held = bool(self._connection.execute(LEASING, {"lock_name": self.name}).scalar())
        return self._connection if self._held else None

    def release(self):
        """Let go: unlock, so another instance can take the lease as soon as this returns, then end the
        connection (PostgreSQL frees a session's locks with it, which covers a broken connection)."""
        connection, held, self._connection, self._held = self._connection, self._held, None, False
        if connection is None:
            return
        try:
            if held:
                connection.execute(UNLEASING, {"lock_name": self.name})
        except Exception:  # broken: ending the session frees the lock
            log.debug("unlocking the relay lease", exc_info=True)
        try:
            connection.invalidate()
            connection.close()
        except Exception:
            log.debug("closing the relay lease's connection", exc_info=True)


@functools.cache
def _publishing(table):
    """(the oldest unpublished rows, the marking of the rows sent), built once per table. Each runs on
    its own in autocommit, after the lease was taken: the read's snapshot holds what the last holder
    committed before it let go."""
    batch = sql_select(table).where(table.c.published_at.is_(None)).order_by(table.c.id).limit(bindparam("limit"))
    marking = (update(table).where(table.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger))))
               .values(published_at=func.now()))
    return batch, marking


class OutboxPublisher:
    """Publishes one batch of unpublished rows; usable without Nameko."""

    def __init__(self, engine, table, producer, service, signing_key, ack_timeout_seconds=ACK_TIMEOUT_SECONDS,
                 lease_idle_seconds=LEASE_IDLE_SECONDS):
        self.transactions = Transactions(engine)
        self.signing_key = signing_key  # this service's own (shop_common.messaging.event_signing)
        self.table = table
        self.producer = producer
        self.service = service
        self.ack_timeout_seconds = ack_timeout_seconds
        self.lease = RelayLease(engine, f"shop_outbox_relay:{service}", lease_idle_seconds)

    def publish_batch(self, limit=BATCH_SIZE):
        """Publish the oldest unpublished rows, wait for the broker's acknowledgement, mark them.

        Returns how many were published; 0 as well when another instance's
        relay holds the lease (it is publishing them). On any failure the
        lease is let go, so a healthy instance can take over while this one
        waits to try again.
        """
        batch, marking = _publishing(self.table)
        try:
            connection = self.lease.connection()
            if connection is None:
                return 0
            rows = connection.execute(batch, {"limit": limit}).all()
            if not rows:
                return 0
            faults.raise_if_rolled("outbox_publish_failure_rate", service=self.service)
            futures = [self._send(row) for row in rows]
            self.producer.flush(timeout=self.ack_timeout_seconds)
            for future in futures:
                future.get(timeout=self.ack_timeout_seconds)  # raises on any failed send: nothing is marked
            connection.execute(marking, {"ids": [row.id for row in rows]})
        except BaseException:
            self.lease.release()
            raise
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
                value=events.encode(event_signing.sign(row.envelope, self.signing_key)),
                headers=[(key, str(value).encode()) for key, value in headers.items()],
            )

    def record_backlog(self):
        with self.transactions.begin() as session:
            current = backlog(session, self.table)
        OUTBOX_BACKLOG.labels(self.service).set(current["unpublished"])
        OUTBOX_OLDEST_AGE.labels(self.service).set(current["oldest_age_seconds"])
        return current


class OutboxRelay(DependencyProvider):
    """Runs the publisher in the service process, woken by NOTIFY; keeps the backlog
    gauges fresh and prunes old outbox and inbox rows.

    Workers get an object with ``backlog()`` for operators.
    """

    def __init__(self, table, inbox=None):
        self.table = table
        self.inbox = inbox
        self._wake = LightQueue()
        self._running = False

    def setup(self):
        # LISTEN and the housekeeping; the lease has a connection of its own (3 in all, docs/deploy.md).
        self.engine = make_engine(config["DATABASE_URL"], pool_size=2)
        self.servers = kafka_settings().get("bootstrap_servers", "127.0.0.1:9092")
        service = self.container.service_name
        key = event_signing.configured_keys().get(service)
        if not key:
            raise UnsafeConfiguration(f"refusing to start: SHOP_EVENT_KEYS has no key for {service}, "
                                      "whose events would be unsigned")
        self.publisher = OutboxPublisher(self.engine, self.table, None, service, key)

    def start(self):
        self._running = True
        self.container.spawn_managed_thread(self._listen, identifier="outbox_listen")
        self.container.spawn_managed_thread(self._relay, identifier="outbox_relay")
        self.container.spawn_managed_thread(self._housekeeping, identifier="outbox_housekeeping")

    def stop(self):
        self._running = False
        self._wake.put(None)
        eventlet.sleep(0)
        if self.publisher.producer is not None:
            self.publisher.producer.close(timeout=5)
        self.publisher.lease.release()  # another instance takes over at once
        self.engine.dispose()

    kill = stop

    def get_dependency(self, worker_ctx):
        return self

    def backlog(self):
        return self.publisher.record_backlog()

    def _relay(self):
        failures = 0
        while self._running:
            try:
                if self.publisher.producer is None:
                    self.publisher.producer = make_producer(self.servers)
                published = self.publisher.publish_batch()
                failures = 0
            except Exception as exc:
                failures += 1
                delay = min(2 ** (failures - 1), RETRY_BACKOFF_MAX)
                log.warning("outbox publish failed (%d in a row), retrying in %ds: %r", failures, delay, exc)
                self._discard_producer()
                self._sleep(delay)
                continue
            if published < BATCH_SIZE:
                self._wait_for_work()

    def _discard_producer(self):
        """Drop what the failed producer still holds, so no stale copy follows the retry, and
        start afresh: kafka-python's idempotent producer may stay failed after a broker error."""
        producer, self.publisher.producer = self.publisher.producer, None
        if producer is not None:
            try:
                producer.close(timeout=0)
            except Exception:  # it is broken already
                log.debug("closing a failed producer", exc_info=True)

    def _housekeeping(self):
        """Backlog gauges on their own clock (they must move while publishing fails), and pruning."""
        pruned_at = 0.0
        while self._running:
            try:
                self.publisher.record_backlog()
                if time.monotonic() - pruned_at > PRUNE_INTERVAL_SECONDS:
                    pruned_at = time.monotonic()
                    self.prune()
            except Exception as exc:
                log.warning("outbox housekeeping failed: %r", exc)
            self._sleep(BACKLOG_REFRESH_SECONDS)

    def prune(self, older_than_seconds=RETENTION_SECONDS):
        """Delete published outbox rows and inbox rows older than the retention; returns the counts."""
        counts = {"outbox": 0, "inbox": 0}
        targets = [("outbox", self.table, "published_at")]
        if self.inbox is not None:
            targets.append(("inbox", self.inbox, "processed_at"))
        for name, table, column in targets:
            while self._running:
                with self.publisher.transactions.begin() as session:
                    deleted = prune(session, table, column, older_than_seconds)
                counts[name] += deleted
                if deleted < PRUNE_BATCH:
                    break
        if any(counts.values()):
            log.info("pruned %(outbox)d outbox and %(inbox)d inbox rows", counts)
        return counts

    def _sleep(self, seconds):
        deadline = time.monotonic() + seconds
        while self._running and time.monotonic() < deadline:
            eventlet.sleep(min(0.5, deadline - time.monotonic()))

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
                log.warning("outbox LISTEN connection lost; reconnecting", exc_info=True)
                self._sleep(1.0)
