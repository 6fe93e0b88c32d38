"""Kafka for Nameko: a producer factory and the ``kafka_event`` entrypoint.

Delivery is at least once. The consumer commits a partition's offset only
after every handler for the records before it has finished, so a crash
redelivers; handlers make redelivery harmless with the inbox
(``shop_common.inbox``). A handler that raises a ``DomainError`` or gets a
malformed message cannot succeed on retry, so that message goes to the dead
letter topic; any other error (database down, timeout) is retried with
backoff and holds its partition until it succeeds, which consumer lag shows.
"""
import logging
import time

import eventlet
from eventlet.event import Event
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import OffsetAndMetadata
from nameko import config
from nameko.exceptions import ContainerBeingKilled
from nameko.extensions import Entrypoint, ProviderCollector, SharedExtension

from shop_common import events
from shop_common.errors import DomainError
from shop_common.metrics import KAFKA_CONSUMER_LAG, KAFKA_HANDLE_DURATION

log = logging.getLogger(__name__)

RETRY_BACKOFF_MAX = 5.0
LAG_REFRESH_SECONDS = 2.0


def kafka_settings():
    return config.get("KAFKA") or {}


def make_producer(bootstrap_servers):
    # acks=all and one request in flight keep per-partition order through retries.
    return KafkaProducer(
        bootstrap_servers=bootstrap_servers,
        acks="all",
        retries=10,
        linger_ms=2,
        max_in_flight_requests_per_connection=1,
        request_timeout_ms=10000,
    )


def make_consumer(bootstrap_servers, group_id, **overrides):
    settings = dict(
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # Short session and heartbeat: group joins otherwise take ~20 s.
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        max_poll_records=100,
        max_poll_interval_ms=300000,
    )
    settings.update(overrides)
    return KafkaConsumer(**settings)


def headers_to_dict(headers):
    return {key: value.decode("utf-8", "replace") for key, value in (headers or []) if value is not None}


class _StopRetrying(Exception):
    """The service is stopping while a handler is failing: leave the record for redelivery."""


class KafkaEventConsumer(SharedExtension, ProviderCollector):
    """One consumer-group member per service process, shared by its handlers."""

    def __init__(self):
        super().__init__()
        self._consumer = None
        self._dead_letters = None
        self._running = False
        self._loop_exited = Event()
        self._lag_recorded_at = 0.0

    def setup(self):
        settings = kafka_settings()
        servers = settings.get("bootstrap_servers", "127.0.0.1:9092")
        # Clients are created in setup(): start() runs concurrently with other
        # extensions and kafka-python's connect there races the hub.
        self._consumer = make_consumer(servers, settings.get("group_id") or self.container.service_name)
        self._dead_letters = make_producer(servers)

    def start(self):
        topics = sorted({provider.topic for provider in self._providers})
        self._consumer.subscribe(topics)
        self._running = True
        self.container.spawn_managed_thread(self._run, identifier="kafka_event_consumer")

    def stop_consuming(self):
        """Finish the batch in hand, commit it, and poll no more."""
        if self._running:
            self._running = False
            self._loop_exited.wait()

    def stop(self):
        self.stop_consuming()
        super().stop()
        self._close()

    def kill(self):
        self._running = False
        self._close()

    def _close(self):
        if self._consumer is not None:
            try:
                self._consumer.close(autocommit=False)
            except Exception:  # closing is best effort on the way out
                log.exception("closing Kafka consumer")
            self._consumer = None
        if self._dead_letters is not None:
            self._dead_letters.close(timeout=5)
            self._dead_letters = None

    def _run(self):
        try:
            while self._running:
                try:
                    self._poll_once()
                except ContainerBeingKilled:
                    raise
                except Exception:
                    # A failed commit (rebalance) or dead-letter send: nothing past the last
                    # commit is acknowledged, so those records come again and the inbox skips them.
                    log.exception("Kafka consumer loop error; resuming from the last committed offsets")
                    self._rewind()
                    eventlet.sleep(1.0)
        except ContainerBeingKilled:
            log.info("container is being killed; uncommitted records will be redelivered")
        finally:
            self._loop_exited.send(None)

    def _poll_once(self):
        batches = self._consumer.poll(timeout_ms=500)
        self._record_lag()
        if not batches:
            return
        pool = eventlet.GreenPool(len(batches))
        done = list(pool.imap(self._process_partition, batches.values()))
        offsets = {
            tp: OffsetAndMetadata(last.offset + 1, "", -1)
            for tp, last in zip(batches.keys(), done)
            if last is not None
        }
        if offsets:
            self._consumer.commit(offsets)

    def _rewind(self):
        """Seek every assigned partition back to its committed offset."""
        try:
            for tp in self._consumer.assignment():
                committed = self._consumer.committed(tp)
                if committed is None:
                    self._consumer.seek_to_beginning(tp)
                else:
                    self._consumer.seek(tp, committed)
        except Exception:
            log.exception("could not rewind; the next rebalance will")

    def _record_lag(self):
        now = time.monotonic()
        if now - self._lag_recorded_at < LAG_REFRESH_SECONDS:
            return
        self._lag_recorded_at = now
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                continue  # no fetch response for this partition yet
            lag = max(highwater - self._consumer.position(tp), 0)
            KAFKA_CONSUMER_LAG.labels(self.container.service_name, tp.topic, str(tp.partition)).set(lag)

    def _process_partition(self, records):
        """Handle records in order; return the last one fully handled."""
        last = None
        for record in records:
            if not self._running and last is not None:
                break
            try:
                self._process_record(record)
            except _StopRetrying:
                break  # stopping: this record stays uncommitted and comes again
            last = record
        return last

    def _process_record(self, record):
        headers = headers_to_dict(record.headers)
        try:
            event = events.decode(record.value)
        except events.MalformedEvent as exc:
            self._dead_letter(record, headers, "malformed", str(exc))
            return
        handlers = [
            provider for provider in self._providers
            if provider.topic == record.topic and provider.event_type == event["event_type"]
        ]
        for handler in handlers:
            self._handle_with_retry(handler, event, headers, record)

    def _handle_with_retry(self, handler, event, headers, record):
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            outcome = "retry"
            try:
                handler.handle(event, headers)
                outcome = "ok"
                return
            except ContainerBeingKilled:
                raise
            except DomainError as exc:
                outcome = "dead_letter"
                self._dead_letter(record, headers, handler.method_name, str(exc))
                return
            except Exception as exc:
                if not self._running:
                    raise _StopRetrying() from exc
                delay = min(0.2 * 2 ** (attempt - 1), RETRY_BACKOFF_MAX)
                log.warning(
                    "handler %s failed on %s %s (attempt %d), retrying in %.1fs: %r",
                    handler.method_name, event["event_type"], event["event_id"], attempt, delay, exc,
                    extra={"order_id": event.get("order_id")},
                )
                eventlet.sleep(delay)
            finally:
                KAFKA_HANDLE_DURATION.labels(
                    self.container.service_name, record.topic, event["event_type"], outcome,
                ).observe(time.perf_counter() - started)

    def _dead_letter(self, record, headers, reason, error):
        log.error("dead-lettering %s[%d]@%d: %s %s", record.topic, record.partition, record.offset, reason, error)
        dead_headers = [(k, v.encode()) for k, v in headers.items()] + [
            ("x-original-topic", record.topic.encode()),
            ("x-error", f"{reason}: {error}"[:1000].encode()),
            ("x-consumer", self.container.service_name.encode()),
        ]
        self._dead_letters.send(
            events.DEAD_LETTER_TOPIC, key=record.key, value=record.value, headers=dead_headers
        ).get(timeout=10)


class KafkaEventHandler(Entrypoint):
    """Run the decorated method for each ``event_type`` event on ``topic``.

    The method gets the decoded envelope. It returns when its effect is
    committed; raising makes the consumer retry or dead-letter the message.
    """

    consumer = KafkaEventConsumer()

    def __init__(self, topic, event_type, **kwargs):
        self.topic = topic
        self.event_type = event_type
        super().__init__(**kwargs)

    def setup(self):
        self.consumer.register_provider(self)

    def stop(self):
        self.consumer.stop_consuming()
        self.consumer.unregister_provider(self)

    def handle(self, event, headers):
        finished = Event()

        def handle_result(worker_ctx, result, exc_info):
            finished.send((result, exc_info))
            return result, exc_info

        # Headers carry ``traceparent``: the worker's span continues the producer's trace.
        context = dict(headers, event_id=event["event_id"], order_id=event.get("order_id"))
        started = time.monotonic()
        self.container.spawn_worker(self, (event,), {}, context_data=context, handle_result=handle_result)
        _, exc_info = finished.wait()
        log.debug("%s handled %s in %.1f ms", self.method_name, event["event_type"], (time.monotonic() - started) * 1000)
        if exc_info is not None:
            raise exc_info[1].with_traceback(exc_info[2])


kafka_event = KafkaEventHandler.decorator
