"""Kafka for Nameko: a producer factory and the ``kafka_event`` entrypoint.

Delivery is at least once: a partition's offset is committed only after the
handlers of every record before it have finished, so a crash redelivers, and
handlers make redelivery harmless with the inbox (``shop_common.messaging.inbox``).

One consumer-group member per service process polls in one greenthread.
Each partition's batch is handled by a worker greenthread of its own while
that partition is paused; the poller keeps polling (group heartbeats, the
other partitions, lag), commits a partition when its batch is done and
resumes it. So a handler that keeps failing stalls only its own partition,
and the consumer never misses ``max_poll_interval``. Within a batch, the
records of one key (one order) are handled in order, and up to
``KEY_CONCURRENCY`` keys at once: a handler waiting on Stripe or the
database does not hold up other orders behind it in the partition. The
committed offset is always below the first record not yet finished.

What happens to a record, by what its handler does:
  - returns: done.
  - the message breaks its contract (``events.MalformedEvent``) or the
    handler raises a ``DomainError``: it cannot succeed, so it goes to the
    dead-letter topic at once, with the reason in its headers.
  - raises a ``TransientError`` or the infrastructure is away (database,
    Redis, network): retried with backoff, without limit.
  - raises anything else: retried ``MAX_ATTEMPTS`` times, then dead-lettered.
A dead letter that cannot be sent is retried too; the record stays
uncommitted until it is.
"""
import contextlib
import json
import logging
import time
from functools import partial

import eventlet
from eventlet.event import Event
from eventlet.queue import Empty, LightQueue
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from kafka.structs import MemberState, OffsetAndMetadata
from nameko import config
from nameko.exceptions import ContainerBeingKilled
from nameko.extensions import Entrypoint, ProviderCollector, SharedExtension
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shop_common import faults
from shop_common.errors import DomainError, TransientError
from shop_common.messaging import event_signing, events
from shop_common.storage.db import UNAVAILABLE as DATABASE_UNAVAILABLE
from shop_common.telemetry.metrics import (
    EVENTS_UNTRUSTED, KAFKA_CONSUMER_LAG, KAFKA_HANDLE_DURATION, LIVENESS_CHECKS, READINESS_CHECKS,
)

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5  # for errors that are neither transient nor domain errors (bugs, bad data)
RETRY_BACKOFF_MAX = 10.0
LAG_REFRESH_SECONDS = 5.0
REVOKE_WAIT_SECONDS = 10.0  # how long a rebalance waits for in-flight records to finish
STOP_WAIT_SECONDS = 30.0
# Keys of one partition's batch handled at once, each in a Nameko worker: with three partitions,
# 15 of a service's 20 workers at most, leaving some for its RPCs.
KEY_CONCURRENCY = 5
# The poller's wait for records: short while batches are being handled, so a finished batch is
# committed and its partition fetched again at once; long when idle, to cost nothing.
BUSY_POLL_MS, IDLE_POLL_MS = 10, 200
# How long the broker may hold a fetch that finds nothing: FETCH_MAX_WAIT_MS while records flow (see
# make_consumer), IDLE_FETCH_MAX_WAIT_MS once none has arrived for QUIET_SECONDS. Each fetch costs
# kafka-python about a millisecond of CPU, so at 25 ms an idle consumer used 8 % of a core (docs/performance.md). Kafka
# answers a waiting fetch as soon as records arrive, so this costs no latency there; Tansu answers
# within about a fifth of the wait (measured), once per quiet spell.
FETCH_MAX_WAIT_MS, IDLE_FETCH_MAX_WAIT_MS = 25, 500
QUIET_SECONDS = 5.0
JOIN_POLL_MS = 3000  # while the member (re)joins its group; heartbeats have a thread of their own
STALL_SECONDS = 30.0  # a partition with records to read that does not move for this long is fetched afresh
# A poller that has not come round for this long is wedged: /health/live fails and the process is restarted.
# Far above one turn's worst case (a rebalance waits REVOKE_WAIT_SECONDS, a commit or a join a few seconds).
POLLER_LIVE_SECONDS = 60.0

TRANSIENT = (TransientError, *DATABASE_UNAVAILABLE, RedisConnectionError, RedisTimeoutError, KafkaError,
             ConnectionError, TimeoutError, OSError)


def kafka_settings():
    return config.get("KAFKA") or {}


def security_settings(settings=None):
    """How this process proves who it is to the broker: nothing locally (Tansu), SASL/SCRAM with the
    service's own user in compose and Kubernetes, where topic ACLs let it write only the topics it owns
    (ops/kafka_access.py)."""
    settings = kafka_settings() if settings is None else settings
    protocol = (settings.get("security_protocol") or "PLAINTEXT").upper()
    if protocol == "PLAINTEXT":
        return {}
    return dict(security_protocol=protocol, sasl_mechanism=settings.get("sasl_mechanism") or "SCRAM-SHA-512",
                sasl_plain_username=settings.get("username"), sasl_plain_password=settings.get("password"))


def make_producer(bootstrap_servers):
    # acks=all and idempotence keep per-partition order through retries. A send is
    # given up after 10 s (not kafka-python's 120 s), so a caller that retries
    # after a failure never has older copies of the same message still in flight.
    return KafkaProducer(
        bootstrap_servers=bootstrap_servers,
        acks="all",
        linger_ms=2,
        max_in_flight_requests_per_connection=1,
        request_timeout_ms=5000,
        delivery_timeout_ms=10000,
        max_block_ms=5000,
        metrics_enabled=False,  # kafka-python's own sensors: nothing reads them, every send paid for them
        **security_settings(),
    )


def make_consumer(bootstrap_servers, group_id, leave_group=None, **overrides):
    """A consumer in ``group_id`` that commits by hand. ``leave_group`` (default: KAFKA.leave_group)
    False: it never sends LeaveGroup (see _never_leave_group)."""
    settings = dict(
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # Short session and heartbeat: group joins otherwise take ~20 s.
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        max_poll_records=int(kafka_settings().get("max_poll_records", 500)),
        # How long the broker may hold a fetch that finds nothing. A partition resumed after
        # its batch was handled is fetched only when the fetch in flight to its broker returns,
        # so this bounds what each batch waits for the next; kafka-python's 500 ms made every
        # hop of an order's saga cost up to half a second (make bench, docs/performance.md).
        fetch_max_wait_ms=int(kafka_settings().get("fetch_max_wait_ms", FETCH_MAX_WAIT_MS)),
        max_poll_interval_ms=int(kafka_settings().get("max_poll_interval_ms", 300000)),
        metrics_enabled=False,  # kafka-python's own sensors: nothing reads them, every fetch paid for them
        **security_settings(),
    )
    settings.update(overrides)
    consumer = KafkaConsumer(**settings)
    if leave_group is None:
        leave_group = _enabled(kafka_settings().get("leave_group", True))
    if not leave_group:
        _never_leave_group(consumer)
    _take_up_pending_joins(consumer)
    return consumer


def _take_up_pending_joins(consumer):
    """kafka-python 3.0.12 leaves a JoinGroup/SyncGroup round that outlives one poll() running, and
    the next poll() takes it up only while ``need_rejoin()`` is true. When the rejoin came from a
    metadata change (partitions added, or a restarted Tansu re-creating a topic with its default of
    four), the leader's own assignment inside that round makes ``need_rejoin()`` false: the finished
    round is never taken up, and the member stays "rebalancing" with its partitions pending
    revocation, fetching nothing, for good (test_a_broker_that_lost_its_log_is_read_again_from_its_start;
    chaos experiment 8). Java's coordinator loops while a join is needed *or pending*; so does this."""
    coordinator = consumer._coordinator
    need_rejoin = coordinator.need_rejoin

    def need_rejoin_or_pending():
        return need_rejoin() or getattr(coordinator, "_join_task", None) is not None

    coordinator.need_rejoin = need_rejoin_or_pending


def _in_the_group(consumer):
    state = getattr(consumer._coordinator, "state", MemberState.STABLE)
    return state == MemberState.STABLE


def _enabled(value):
    return str(value).strip().lower() not in ("false", "0", "no", "off")


def _never_leave_group(consumer):
    """Tansu (the local broker) mishandles LeaveGroup: once every member of a group has left that
    way, it keeps a departed member as the group's leader, and new members rejoin in a loop and are
    never assigned a partition. A member that simply goes quiet is expired after the session timeout
    (seconds), which Tansu handles well; this member therefore never sends LeaveGroup, only forgets
    its membership. Real Kafka handles LeaveGroup correctly and keeps the default."""
    coordinator = consumer._coordinator  # kafka-python 3.0.x: close() and a poll timeout go through here

    async def forget_membership(reason=None, timeout_ms=None):
        coordinator.reset_generation()

    coordinator.maybe_leave_group_async = forget_membership


def headers_to_dict(headers):
    return {key: value.decode("utf-8", "replace") for key, value in (headers or []) if value is not None}


def backoff(attempt):
    return min(0.2 * 2 ** (attempt - 1), RETRY_BACKOFF_MAX)


class _Abandoned(Exception):
    """The record's partition was taken away or the service is stopping: leave it for redelivery."""


class _Claim:
    """One worker's hold on a partition; ``cancelled`` tells it to let go.

    ``next_offset`` is the first record it has not finished: where the
    partition must be read from again if the worker is abandoned.
    """

    def __init__(self, tp, first_offset):
        self.tp = tp
        self.next_offset = first_offset
        self.cancelled = False


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, owner):
        self.owner = owner

    def on_partitions_revoked(self, revoked):
        self.owner.partitions_revoked(revoked)

    def on_partitions_assigned(self, assigned):
        self.owner.partitions_assigned(assigned)


class KafkaEventConsumer(SharedExtension, ProviderCollector):
    """One consumer-group member per service process, shared by its handlers."""

    def __init__(self):
        super().__init__()
        self._consumer = None
        self._dead_letters = None
        self._servers = None
        self._keys = {}  # producer -> its signing key, to verify events with
        self._running = False
        self._loop_exited = Event()
        self._in_flight = {}  # TopicPartition -> _Claim
        self._finished = LightQueue()  # (claim, next offset) from workers
        self._committed = {}  # TopicPartition -> the offset this member committed or found
        self._rewind = {}  # TopicPartition -> where to read again a partition whose worker was abandoned
        self._stalled_since = {}  # TopicPartition -> (position, since when it has not moved)
        self._stall_seconds = STALL_SECONDS
        self._key_concurrency = KEY_CONCURRENCY
        self._lag_refresh_seconds = LAG_REFRESH_SECONDS
        self._lag_recorded_at = 0.0
        self._polled_at = time.monotonic()  # when the poller last came round
        self._active_at = time.monotonic()  # when records were last fetched or in hand
        self._fetch_wait_ms = {"busy": FETCH_MAX_WAIT_MS, "idle": IDLE_FETCH_MAX_WAIT_MS}
        self._quiet_seconds = QUIET_SECONDS

    # -- lifecycle ---------------------------------------------------------
    def setup(self):
        settings = kafka_settings()
        self._servers = settings.get("bootstrap_servers", "127.0.0.1:9092")
        # Clients are created in setup(): start() runs concurrently with other
        # extensions and kafka-python's connect there races the hub.
        self._consumer = make_consumer(self._servers, settings.get("group_id") or self.container.service_name)
        self._stall_seconds = float(settings.get("stall_seconds", STALL_SECONDS))
        self._key_concurrency = int(settings.get("key_concurrency", KEY_CONCURRENCY))
        self._lag_refresh_seconds = float(settings.get("lag_refresh_seconds", LAG_REFRESH_SECONDS))
        self._fetch_wait_ms = {"busy": self._consumer.config["fetch_max_wait_ms"],
                               "idle": int(settings.get("idle_fetch_max_wait_ms", IDLE_FETCH_MAX_WAIT_MS))}
        self._quiet_seconds = float(settings.get("quiet_seconds", QUIET_SECONDS))
        self._dead_letters = make_producer(self._servers)
        self._keys = event_signing.configured_keys()
        READINESS_CHECKS[f"{self.container.service_name}.kafka_consumer"] = self._readiness
        LIVENESS_CHECKS[f"{self.container.service_name}.kafka_poller"] = self._liveness

    def _readiness(self):
        polling = self._running and not self._loop_exited.ready()
        return polling, "polling" if polling else "stopped"

    def _liveness(self):
        if not self._running:
            return True, "stopped"
        idle = time.monotonic() - self._polled_at
        if idle > POLLER_LIVE_SECONDS:
            return False, f"poller stuck for {idle:.0f}s"
        return True, "polling"

    def start(self):
        topics = sorted({provider.topic for provider in self._providers})
        for topic in topics:  # a zero series from the start, so rates and alerts see the first one
            EVENTS_UNTRUSTED.labels(self.container.service_name, topic)
        self._consumer.subscribe(topics, listener=_Rebalance(self))
        self._running = True
        self.container.spawn_managed_thread(self._run, identifier="kafka_event_consumer")

    def stop_consuming(self):
        """Let the records in hand finish, commit them, and poll no more."""
        if self._running:
            self._running = False
            self._loop_exited.wait()

    def stop(self):
        self.stop_consuming()
        super().stop()
        self._close()

    def kill(self):
        self._running = False
        for claim in self._in_flight.values():
            claim.cancelled = True
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

    def state(self):
        """What this member holds now, for operators: partitions assigned, paused and in hand, the
        offsets committed and reached, and kafka-python's own fetch state."""
        consumer = self._consumer
        if consumer is None:
            return {"running": False}
        return {
            "running": self._running,
            "polled_seconds_ago": round(time.monotonic() - self._polled_at, 1),
            "member": _member_view(consumer),
            "assigned": sorted(_name(tp) for tp in consumer.assignment()),
            "paused": sorted(_name(tp) for tp in consumer.paused()),
            "in_hand": {_name(tp): {"next_offset": claim.next_offset, "cancelled": claim.cancelled}
                        for tp, claim in self._in_flight.items()},
            "committed": {_name(tp): offset for tp, offset in self._committed.items()},
            "positions": {_name(tp): consumer.position(tp) for tp in consumer.assignment()},
            "fetcher": _fetcher_view(consumer),
        }

    # -- the poller (the only greenthread that touches the consumer) --------
    def _run(self):
        try:
            while self._running:
                self._polled_at = time.monotonic()
                try:
                    self._poll_once()
                except ContainerBeingKilled:
                    raise
                except Exception:
                    log.exception("Kafka consumer loop error; polling again")
                    eventlet.sleep(1.0)
            self._finish_in_flight(STOP_WAIT_SECONDS)
        except ContainerBeingKilled:
            log.info("container is being killed; uncommitted records will be redelivered")
        finally:
            self._loop_exited.send(None)

    def _poll_once(self):
        if not _in_the_group(self._consumer):
            # Joining: wait for the round to finish rather than leave it running past this poll.
            timeout_ms = JOIN_POLL_MS
        else:
            timeout_ms = BUSY_POLL_MS if self._in_flight else IDLE_POLL_MS
        batches = self._consumer.poll(timeout_ms=timeout_ms)
        self._pace_fetches(bool(batches or self._in_flight))
        for tp, records in batches.items():
            self._consumer.pause(tp)
            claim = self._in_flight[tp] = _Claim(tp, records[0].offset)
            self.container.spawn_managed_thread(partial(self._work, claim, records),
                                                identifier=f"kafka_partition[{tp.topic}:{tp.partition}]")
        self._settle(self._drain_finished())
        if time.monotonic() - self._lag_recorded_at >= self._lag_refresh_seconds:
            self._lag_recorded_at = time.monotonic()
            self._record_lag()

    def _pace_fetches(self, active):
        """Short fetch waits while records flow, long ones once the topics have been quiet a while."""
        now = time.monotonic()
        if active:
            self._active_at = now
        mode = "busy" if now - self._active_at < self._quiet_seconds else "idle"
        fetcher = getattr(self._consumer, "_fetcher", None)  # kafka-python reads it for every fetch
        if fetcher is not None:
            fetcher.config["fetch_max_wait_ms"] = self._fetch_wait_ms[mode]

    def _drain_finished(self, timeout=None):
        finished = []
        try:
            finished.append(self._finished.get(timeout=timeout) if timeout else self._finished.get_nowait())
            while True:
                finished.append(self._finished.get_nowait())
        except Empty:
            pass
        return finished

    def _settle(self, finished, resume=True, wait_for_commit=True):
        """Commit what the workers finished; give their partitions back to the poller.

        Inside a rebalance callback, which runs on kafka-python's IO thread, a blocking commit is
        refused (``wait_for_commit=False``): the commit is sent without waiting for it.
        """
        offsets = {}
        for claim, next_offset in finished:
            if self._in_flight.get(claim.tp) is not claim:
                continue  # revoked meanwhile: another member owns it now
            del self._in_flight[claim.tp]
            if next_offset is not None and next_offset != self._committed.get(claim.tp):
                offsets[claim.tp] = OffsetAndMetadata(next_offset, "", -1)
            if resume:
                self._resume(claim.tp, claim.next_offset)  # whatever was not handled comes again
            else:  # a rebalance or a stop: if this member keeps the partition, it reads on from here
                self._rewind[claim.tp] = claim.next_offset
        if not offsets:
            return
        try:
            if wait_for_commit:
                self._consumer.commit(offsets)
            else:
                self._consumer.commit_async(offsets)
        except KafkaError as exc:
            # A rebalance took the partitions: their next owner handles these records again (inbox).
            log.warning("commit failed, records will be redelivered: %r", exc)
            return
        for tp, offset in offsets.items():
            self._committed[tp] = offset.offset

    def _resume(self, tp, offset):
        if offset is not None:
            self._consumer.seek(tp, offset)
        self._consumer.resume(tp)
        self._unpark(tp)

    def _unpark(self, tp):
        """kafka-python 3.0.12 parks the records it had fetched for a partition when it is paused,
        and never hands them back (nor fetches that partition again) if another partition's
        emptied records sit in line when it is resumed: the partition would stall for good.
        Dropping them costs one fetch; the position says where to read."""
        parked = getattr(getattr(self._consumer, "_fetcher", None), "_paused_partition_records", None)
        if parked is not None:
            parked.pop(tp, None)

    def _finish_in_flight(self, timeout):
        deadline = time.monotonic() + timeout
        while self._in_flight and time.monotonic() < deadline:
            self._settle(self._drain_finished(timeout=min(0.5, deadline - time.monotonic())), resume=False)
        for claim in self._in_flight.values():
            claim.cancelled = True

    def partitions_revoked(self, revoked):
        """Called inside poll(): let in-flight records finish (bounded) and commit them before letting go."""
        mine = [tp for tp in revoked if tp in self._in_flight]
        for tp in mine:
            self._in_flight[tp].cancelled = True  # no next record, no further retries
        deadline = time.monotonic() + REVOKE_WAIT_SECONDS
        while any(tp in self._in_flight for tp in mine) and time.monotonic() < deadline:
            self._settle(self._drain_finished(timeout=min(0.5, deadline - time.monotonic())), resume=False,
                         wait_for_commit=False)
        for tp in revoked:
            abandoned = self._in_flight.pop(tp, None)
            if abandoned is not None:
                self._rewind[tp] = abandoned.next_offset
            self._committed.pop(tp, None)
            with contextlib.suppress(KeyError):  # another member reports this partition's lag now
                KAFKA_CONSUMER_LAG.remove(self.container.service_name, tp.topic, str(tp.partition))

    def partitions_assigned(self, assigned):
        """A partition this member keeps across a rebalance keeps its paused flag and its position in
        kafka-python: resume it, and read again from the first record a worker did not finish."""
        for tp in assigned:
            self._committed.pop(tp, None)  # read from the group when lag is next recorded
            self._resume(tp, self._rewind.pop(tp, None))
        self._rewind.clear()  # partitions gone elsewhere start from their committed offset there

    def _record_lag(self):
        """Lag = the partition's end offset minus the offset committed for it."""
        assigned = list(self._consumer.assignment())
        if not assigned:
            return
        try:
            ends = self._consumer.end_offsets(assigned, timeout_ms=2000)
        except Exception as exc:  # broker away, or not answering ListOffsets: the fetches' high watermarks
            log.debug("end offsets unavailable: %r", exc)
            ends = {}
        for tp in assigned:
            # The fetch's high watermark as well: Tansu's ListOffsets can answer low.
            known = [offset for offset in (ends.get(tp), self._consumer.highwater(tp)) if offset is not None]
            if not known:
                continue
            end = max(known)
            committed = self._committed.get(tp)
            if committed is None:
                if not ends:  # ListOffsets just failed: the broker is away, do not hold the poller asking it
                    continue
                try:
                    committed = self._consumer.committed(tp, timeout_ms=2000) or 0
                except Exception:
                    continue
                self._committed[tp] = committed
            KAFKA_CONSUMER_LAG.labels(self.container.service_name, tp.topic, str(tp.partition)).set(
                max(end - committed, 0))
            self._watch_for_stall(tp, end)

    def _watch_for_stall(self, tp, end):
        """A partition with records to read, neither paused nor in hand, whose position does not move
        for ``stall_seconds``: kafka-python has stopped fetching it (seen once here with Tansu and
        kafka-python 3.0.12, cause not found). Log its fetch state and start its fetching afresh,
        so a stall costs seconds, not the partition."""
        if tp in self._in_flight or tp in self._consumer.paused():
            self._stalled_since.pop(tp, None)
            return
        try:
            position = self._consumer.position(tp, timeout_ms=1000)
        except Exception:
            return
        if position is None or position == end:
            self._stalled_since.pop(tp, None)
            return
        seen = self._stalled_since.get(tp)
        if seen is None or seen[0] != position:
            self._stalled_since[tp] = (position, time.monotonic())
            return
        if time.monotonic() - seen[1] < self._stall_seconds:
            return
        del self._stalled_since[tp]
        if position > end:
            self._read_again_from_the_log(tp, position, end)
            return
        log.warning("partition %s has stayed at offset %d for %.0fs with records up to %d to read; "
                    "fetching it afresh. Fetch state: %s", _name(tp), position, time.monotonic() - seen[1], end,
                    json.dumps(_fetcher_view(self._consumer)))
        self._restart_fetch(tp, position)

    def _read_again_from_the_log(self, tp, position, end):
        """The position is past the partition's end, and stays there: the log it was reached in is
        gone (a broker that lost its data, a topic deleted and created again). Real Kafka answers
        OffsetOutOfRange and the consumer resets itself; Tansu answers with no records, which would
        leave the partition unread for good. Read it again from the group's committed offset, or
        from its beginning; the inbox makes records handled before harmless."""
        try:
            committed = self._consumer.committed(tp, timeout_ms=2000)
        except Exception:
            committed = None
        restart = committed if committed is not None and committed <= end else None
        log.warning("partition %s: position %d is past its end %d (its log was lost); reading it again from %s",
                    _name(tp), position, end, restart if restart is not None else "its beginning")
        if restart is None:
            self._consumer.seek_to_beginning(tp)
            restart = self._consumer.position(tp, timeout_ms=2000)
        self._committed.pop(tp, None)
        self._restart_fetch(tp, restart)

    def _restart_fetch(self, tp, position):
        self._resume(tp, position)
        try:  # kafka-python internals: forget all it holds for this partition, and its fetch sessions
            fetcher = self._consumer._fetcher
            fetcher._paused_partition_records.pop(tp, None)
            fetcher._paused_completed_fetches.pop(tp, None)
            fetcher._session_handlers.clear()  # the next fetch is a full one
        except AttributeError:
            pass

    # -- workers (one per partition with records in hand) ------------------
    def _work(self, claim, records):
        """Handle a partition's batch: each key's records in order, several keys at once.

        ``claim.next_offset`` follows the first record not finished yet, as records finish in
        any order across keys: it is where the partition is read again if the batch is abandoned.
        """
        finished, offsets = set(), [record.offset for record in records]
        done_up_to = 0  # offsets[:done_up_to] are all finished

        def handle_in_order(same_key):
            nonlocal done_up_to
            for record in same_key:
                if claim.cancelled or not self._running:
                    return
                try:
                    self._process_record(claim, record)
                except (_Abandoned, ContainerBeingKilled):
                    return
                finished.add(record.offset)
                while done_up_to < len(offsets) and offsets[done_up_to] in finished:
                    done_up_to += 1
                if done_up_to:
                    claim.next_offset = offsets[done_up_to - 1] + 1

        try:
            by_key = {}
            for record in records:
                by_key.setdefault(record.key, []).append(record)
            pool = eventlet.GreenPool(self._key_concurrency)
            for same_key in by_key.values():
                pool.spawn(handle_in_order, same_key)
            pool.waitall()
        finally:
            self._finished.put((claim, claim.next_offset if done_up_to else None))

    def _process_record(self, claim, record):
        headers = headers_to_dict(record.headers)
        try:
            event = events.decode(record.value, verify=lambda sent: event_signing.verify(sent, record.topic, self._keys))
        except event_signing.UntrustedEvent as exc:
            EVENTS_UNTRUSTED.labels(self.container.service_name, record.topic).inc()
            self._dead_letter(claim, record, headers, None, "untrusted", str(exc))
            return
        except events.MalformedEvent as exc:
            self._dead_letter(claim, record, headers, None, "malformed", str(exc))
            return
        for handler in list(self._providers):  # a snapshot: stopping entrypoints unregister themselves
            if handler.topic == record.topic and handler.event_type == event["event_type"]:
                self._handle(claim, handler, event, headers, record)

    def _handle(self, claim, handler, event, headers, record):
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
                self._dead_letter(claim, record, headers, event, handler.method_name, str(exc))
                return
            except Exception as exc:
                transient = isinstance(exc, TRANSIENT)
                if not transient and attempt >= MAX_ATTEMPTS:
                    outcome = "dead_letter"
                    self._dead_letter(claim, record, headers, event, handler.method_name,
                                      f"failed {attempt} times: {exc!r}")
                    return
                if claim.cancelled or not self._running:
                    raise _Abandoned() from exc
                log.warning(
                    "handler %s failed on %s %s (attempt %d%s), retrying in %.1fs: %r",
                    handler.method_name, event["event_type"], event["event_id"], attempt,
                    "" if transient else f" of {MAX_ATTEMPTS}", backoff(attempt), exc,
                    extra={"order_id": event.get("order_id")},
                )
                self._sleep_unless_cancelled(claim, backoff(attempt))
            finally:
                KAFKA_HANDLE_DURATION.labels(
                    self.container.service_name, record.topic, event["event_type"], outcome,
                ).observe(time.perf_counter() - started)

    def _sleep_unless_cancelled(self, claim, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if claim.cancelled or not self._running:
                raise _Abandoned()
            eventlet.sleep(min(0.2, deadline - time.monotonic()))

    def _dead_letter(self, claim, record, headers, event, reason, error):
        order_id = event.get("order_id") if event else _order_id_of(record.value)
        event_id = event.get("event_id") if event else None
        log.error("dead-lettering %s[%d]@%d (event %s): %s: %s", record.topic, record.partition, record.offset,
                  event_id, reason, error, extra={"order_id": order_id})
        # The original's headers (trace context, and x-replay-of when it was replayed from here before).
        kept = {key: value for key, value in headers.items() if not key.startswith("x-") or key == "x-replay-of"}
        dead_headers = [(key, value.encode()) for key, value in kept.items()] + [
            ("x-original-topic", record.topic.encode()),
            ("x-original-partition", str(record.partition).encode()),
            ("x-original-offset", str(record.offset).encode()),
            ("x-error", f"{reason}: {error}"[:1000].encode()),
            ("x-consumer", self.container.service_name.encode()),
            ("x-dead-lettered-at", events.now_iso().encode()),
        ] + ([("x-order-id", order_id.encode())] if order_id else []) \
          + ([("x-event-id", event_id.encode())] if event_id else [])
        attempt = 0
        while True:
            attempt += 1
            producer = None
            try:
                producer = self._dead_letters = self._dead_letters or make_producer(self._servers)
                producer.send(events.DEAD_LETTER_TOPIC, key=record.key, value=record.value,
                              headers=dead_headers).get(timeout=15)
                return
            except Exception as exc:
                log.warning("dead letter not sent (attempt %d): %r", attempt, exc)
                if producer is not None and producer is self._dead_letters:
                    # A fresh producer next time: kafka-python's idempotent one may stay failed after a broker error.
                    self._dead_letters = None
                    producer.close(timeout=0)
                self._sleep_unless_cancelled(claim, backoff(attempt))


def _member_view(consumer):
    """The member's place in its group (kafka-python's internals, best effort as _fetcher_view)."""
    try:
        coordinator = consumer._coordinator
        return {"state": coordinator.state, "generation": coordinator._generation.generation_id}
    except AttributeError as exc:
        return {"unavailable": repr(exc)}


def _fetcher_view(consumer):
    """kafka-python's own fetch state, for diagnosing a partition that does not move (best effort:
    these are its internals, and may change with its version)."""
    try:
        fetcher = consumer._fetcher
        in_line = fetcher._next_partition_records
        return {
            "nodes_with_pending_fetch": sorted(str(node) for node in fetcher._nodes_with_pending_fetch_requests),
            "completed_fetches": [_name(fetch.topic_partition) for fetch in list(fetcher._completed_fetches)],
            "records_in_line": None if in_line is None else {"partition": _name(in_line.topic_partition),
                                                              "records_left": bool(in_line)},
            "parked_records": sorted(_name(tp) for tp in fetcher._paused_partition_records),
            "parked_fetches": sorted(_name(tp) for tp in fetcher._paused_completed_fetches),
            "partitions": {_name(tp): {"paused": state.paused, "pending_revocation": state._pending_revocation,
                                       "valid_position": state.has_valid_position,
                                       "awaiting_validation": state._awaiting_validation,
                                       "awaiting_reset": state.awaiting_reset}
                           for tp, state in consumer._subscription.assignment.items()},
        }
    except Exception as exc:  # a kafka-python that is built differently
        return {"unavailable": repr(exc)}


def _name(tp):
    return f"{tp.topic}:{tp.partition}"


def _order_id_of(raw):
    try:
        order_id = json.loads(raw).get("order_id")
        return order_id if isinstance(order_id, str) and len(order_id) <= 64 else None
    except Exception:
        return None


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
        faults.raise_if_rolled("kafka_handler_failure_rate", service=self.container.service_name)
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
