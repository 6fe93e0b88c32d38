"""Prometheus metrics of the shop: names, labels, and the per-service exporter.

Every label set is bounded: service and method names, topics, event types,
partitions, route templates and status codes; never ids or raw paths.
"""
import json
import os
import threading
import time
from importlib.metadata import PackageNotFoundError, version as package_version
from weakref import WeakKeyDictionary

from nameko import config
from nameko.extensions import DependencyProvider
from nameko.rpc import Rpc
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from wsgiref.simple_server import WSGIRequestHandler, make_server

from shop_common.telemetry.logs import set_order_id
from shop_common.telemetry.tracing import setup_tracing

# SHOP_METRICS=off skips per-request recording and the endpoint (used by `make bench` to measure the cost).
METRICS_ENABLED = os.environ.get("SHOP_METRICS", "on").lower() != "off"

LATENCY_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

# -- gateway (HTTP) ---------------------------------------------------------
HTTP_DURATION = Histogram(
    "shop_http_request_duration_seconds", "Gateway request latency by route template.",
    ["route", "method", "status"], buckets=LATENCY_BUCKETS)
CACHE_REQUESTS = Counter(
    "shop_cache_requests_total", "Gateway cache look-ups by cache and result (hit, miss).", ["cache", "result"])

# -- services (RPC, Kafka, outbox) -------------------------------------------
RPC_DURATION = Histogram(
    "shop_rpc_duration_seconds", "Time a service spends handling an RPC call.", ["service", "method"],
    buckets=LATENCY_BUCKETS)
RPC_ERRORS = Counter(
    "shop_rpc_errors_total", "RPC calls that raised, by error class.", ["service", "method", "error"])
KAFKA_HANDLE_DURATION = Histogram(
    "shop_kafka_handle_duration_seconds", "Kafka handler processing time by outcome (ok, retry, dead_letter).",
    ["service", "topic", "event_type", "outcome"], buckets=LATENCY_BUCKETS)
EVENTS_UNTRUSTED = Counter(
    "shop_events_untrusted_total", "Events dead-lettered because their topic's owner did not sign them.",
    ["service", "topic"])
KAFKA_CONSUMER_LAG = Gauge(
    "shop_kafka_consumer_lag", "Messages between the partition's end and the offset committed for it.",
    ["service", "topic", "partition"])
OUTBOX_BACKLOG = Gauge("shop_outbox_backlog", "Outbox rows not yet published to Kafka.", ["service"])
OUTBOX_OLDEST_AGE = Gauge(
    "shop_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row (0 when none).", ["service"])
OUTBOX_PUBLISH_DELAY = Histogram(
    "shop_outbox_publish_delay_seconds", "From the outbox commit to Kafka's acknowledgement.", ["service"],
    buckets=LATENCY_BUCKETS)
OUTBOX_PUBLISHED = Counter("shop_outbox_published_total", "Events published from the outbox.", ["service", "topic"])

# -- domain ------------------------------------------------------------------
ORDERS_PLACED = Counter("shop_orders_placed_total", "Orders accepted (202) by the Order service.")
ORDERS_COMPLETED = Counter("shop_orders_completed_total", "Orders reaching a final status.", ["status"])
ORDERS_REDRIVEN = Counter(
    "shop_orders_redriven_total", "PENDING orders whose OrderCreated was published again (lost events).")
ORDERS_PENDING = Gauge("shop_orders_pending", "Orders in PENDING now (refreshed every 15 s).")
ORDERS_PENDING_OLDEST_AGE = Gauge(
    "shop_orders_pending_oldest_age_seconds", "Age of the oldest PENDING order (0 when none).")
PAYMENTS = Counter("shop_payments_total", "Payment outcomes (succeeded, failed, refunded).", ["outcome"])
PAYMENTS_BY_STATUS = Gauge(
    "shop_payments_waiting", "Payments waiting in a status (REQUIRES_ACTION, SETTLING, REFUND_PENDING, "
    "REFUND_FAILED), from the payments database every 15 s.", ["status"], multiprocess_mode="max")
PAYMENTS_UNRECONCILED = Gauge(
    "shop_payments_unreconciled", "Differences between Stripe and the payments database at the last "
    "reconciliation, by kind (svc_payment.reconciliation.KINDS).", ["kind"], multiprocess_mode="max")
PAYMENT_DISPUTES = Counter("shop_payment_disputes_total", "Charges disputed by a cardholder (charge.dispute.created).")
STOCK_UNITS = Counter("shop_stock_units_total", "Stock units moved by Inventory (deducted, restored, adjusted by hand).", ["change"])
FAULT_FLAG = Gauge(
    "shop_fault_flag", "Value of each fault-injection flag in this process (0 = off).", ["flag"],
    multiprocess_mode="max")
BUILD_INFO = Gauge("shop_build_info", "Version of the running component (always 1).", ["service", "version"],
                   multiprocess_mode="max")

_servers_started = set()
# name -> callable answering (ready, detail); each service container adds its own (ServiceTelemetry).
READINESS_CHECKS = {}
# name -> callable answering (live, detail): a part of the process that can wedge without the process
# dying (the Kafka poller). Never a dependency: a broker away must not get every pod restarted.
LIVENESS_CHECKS = {}


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # a probe every few seconds is not worth a log line
        pass


def _run_checks(checks):
    details, passed = {}, True
    for name, check in list(checks.items()):
        ok, details[name] = check()
        passed = passed and ok
    return passed, details


def _readiness():
    ready, details = _run_checks(READINESS_CHECKS)
    return ready and bool(READINESS_CHECKS), details


def _probes_and_metrics(registry):
    """/health/live: this process answers (a blocked event loop would not) and nothing in it is wedged
    (LIVENESS_CHECKS); /health/ready: its
    consumers run (what Kubernetes and compose probe); anything else: Prometheus' /metrics."""
    metrics = make_wsgi_app(registry) if METRICS_ENABLED else None

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/health/live":
            live, details = _run_checks(LIVENESS_CHECKS)
            status = "200 OK" if live else "503 Service Unavailable"
            body = {"status": "live" if live else "not_live", "checks": details}
        elif path == "/health/ready":
            ready, details = _readiness()
            status = "200 OK" if ready else "503 Service Unavailable"
            body = {"status": "ready" if ready else "not_ready", "checks": details}
        elif metrics is not None:
            return metrics(environ, start_response)
        else:
            status, body = "404 Not Found", {"status": "metrics_off"}
        payload = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        return [payload]
    return app


def start_metrics_server(port, addr="127.0.0.1", registry=None):
    """Serve /metrics and the health probes on ``port`` once per process."""
    if port in _servers_started:
        return
    server = make_server(addr, int(port), _probes_and_metrics(registry or REGISTRY), ThreadingWSGIServer,
                         handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name=f"metrics:{port}", daemon=True).start()
    _servers_started.add(port)


def record_build_info(service, package):
    try:
        release = package_version(package)
    except PackageNotFoundError:
        release = "unknown"
    BUILD_INFO.labels(service=service, version=release).set(1)


class ServiceTelemetry(DependencyProvider):
    """Tracing, the metrics endpoint and RPC timings for one Nameko service.

    Declared once on ``ServiceBase``, so every service has it. The port is
    ``METRICS_PORT`` from config.yaml; ``METRICS_ADDR`` picks the interface.
    """

    def __init__(self):
        self._started = WeakKeyDictionary()
        self._serving = False

    def setup(self):
        service = self.container.service_name
        setup_tracing(service)
        READINESS_CHECKS[service] = lambda: (self._serving, "started" if self._serving else "stopped")
        port = config.get("METRICS_PORT")
        if port:
            start_metrics_server(port, config.get("METRICS_ADDR", "127.0.0.1"))
        record_build_info(service, getattr(self.container.service_cls, "package", service))

    def start(self):
        self._serving = True

    def stop(self):
        self._serving = False  # not ready while the container drains

    kill = stop

    def worker_setup(self, worker_ctx):
        if METRICS_ENABLED:
            self._started[worker_ctx] = time.perf_counter()
        order_id = worker_ctx.data.get("order_id")
        if order_id:
            set_order_id(order_id)  # per greenthread: this worker's log lines carry it

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        started = self._started.pop(worker_ctx, None)
        if started is None or not isinstance(worker_ctx.entrypoint, Rpc):
            return
        labels = {"service": worker_ctx.service_name, "method": worker_ctx.entrypoint.method_name}
        RPC_DURATION.labels(**labels).observe(time.perf_counter() - started)
        if exc_info is not None:
            RPC_ERRORS.labels(error=exc_info[0].__name__, **labels).inc()
