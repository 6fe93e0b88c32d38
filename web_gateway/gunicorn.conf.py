"""Gunicorn settings for the gateway (``make run`` and the Dockerfile use this file)."""
import os
import shutil
import tempfile

bind = f"{os.environ.get('SHOP_GATEWAY_HOST', '127.0.0.1')}:{os.environ.get('SHOP_GATEWAY_PORT', '8000')}"
workers = int(os.environ.get("SHOP_GATEWAY_WORKERS", "2"))
# Threads, each with its own long-lived RPC client (see web_gateway.rpc).
worker_class = "gthread"
threads = int(os.environ.get("SHOP_GATEWAY_THREADS", "8"))
timeout = 30
graceful_timeout = 10
# Idle keep-alive connections stay open longer than any client or load balancer keeps
# one idle (60 s is the usual balancer default). With gunicorn's 2 s, a client reusing
# a connection just as the server closed it got a reset on a POST it cannot safely retry
# (seen once in CI as a failed POST /products).
keepalive = int(os.environ.get("SHOP_GATEWAY_KEEPALIVE_SECONDS", "75"))
accesslog = None
# No control socket: it defaults to one path per user, which two gateways
# (a running shop and the test suite's) would fight over.
control_socket_disable = True

# Several worker processes, one /metrics: prometheus_client's multiprocess
# mode. The directory must be set before any worker imports prometheus_client.
METRICS_DIR = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="shop-gateway-metrics-"))
METRICS_PORT = int(os.environ.get("GATEWAY_METRICS_PORT", "9100"))
METRICS_ADDR = os.environ.get("METRICS_ADDR", "127.0.0.1")


def on_starting(server):
    shutil.rmtree(METRICS_DIR, ignore_errors=True)
    os.makedirs(METRICS_DIR, exist_ok=True)


def when_ready(server):
    if os.environ.get("SHOP_METRICS", "on").lower() == "off":
        return
    from prometheus_client import CollectorRegistry, multiprocess

    from shop_common.telemetry.metrics import start_metrics_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_metrics_server(METRICS_PORT, METRICS_ADDR, registry=registry)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)

# Gunicorn's own log lines in the same JSON shape as the application's.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "shop_common.telemetry.logs.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
    },
}

# No version banner: gunicorn writes "Server: gunicorn" from this module global.
import gunicorn.http.wsgi  # noqa: E402

gunicorn.http.wsgi.SERVER = "shop"
