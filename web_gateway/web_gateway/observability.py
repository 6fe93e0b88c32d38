"""Request metrics, traces and JSON logs for the gateway.

Every request is a server span (W3C ``traceparent`` accepted from the
caller) named by its route template; the RPC calls it makes continue the
trace. Latency is recorded by route template, method and status.
"""
import time

from flask import g, request
from opentelemetry import trace
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

from shop_common.telemetry.logs import set_order_id
from shop_common.telemetry.metrics import CACHE_REQUESTS, HTTP_DURATION, METRICS_ENABLED, record_build_info
from shop_common.telemetry.tracing import setup_tracing

UNMATCHED_ROUTE = "<unmatched>"


def instrument(app):
    setup_tracing("web_gateway")
    record_build_info("web_gateway", "web-gateway")
    app.wsgi_app = OpenTelemetryMiddleware(app.wsgi_app)

    @app.before_request
    def start_timer():
        g.started = time.perf_counter()
        g.route = request.url_rule.rule if request.url_rule else UNMATCHED_ROUTE
        span = trace.get_current_span()
        span.update_name(f"{request.method} {g.route}")
        span.set_attribute("http.route", g.route)
        # Gateway threads serve request after request: always set, so no id outlives its request.
        set_order_id((request.view_args or {}).get("order_id"))

    if METRICS_ENABLED:
        @app.after_request
        def record(response):
            # g.route is missing only when a before_request hook failed before setting it.
            HTTP_DURATION.labels(g.get("route", UNMATCHED_ROUTE), request.method, str(response.status_code)).observe(
                time.perf_counter() - g.get("started", time.perf_counter()))
            return response


def cache_result(cache, hit):
    if METRICS_ENABLED:
        CACHE_REQUESTS.labels(cache, "hit" if hit else "miss").inc()
