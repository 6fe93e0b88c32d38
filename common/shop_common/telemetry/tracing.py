"""OpenTelemetry set-up shared by every process.

Configured by the standard variables: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), ``OTEL_EXPORTER_OTLP_PROTOCOL``
(``http/protobuf``), ``OTEL_SERVICE_NAME`` (defaults to the process's own
name), ``OTEL_SDK_DISABLED``, ``OTEL_TRACES_SAMPLER``. Without an endpoint nothing is
exported, so nothing is recorded either: a trace this process starts is
unsampled (``OTEL_TRACES_SAMPLER`` overrides that), its spans still get ids for
log lines and ``X-Request-Id``, and a caller's sampled trace is still
continued. Recording spans that nobody exports cost about 40 µs of the 450 a
cached ``GET /products`` takes in the gateway, and 8 % of a trivial RPC's CPU
in a service (docs/performance.md, item 13).

Context crosses every hop: HTTP headers into the gateway, Nameko RPC
context data (opentelemetry-instrumentation-nameko), the outbox row's
``headers`` column, Kafka message headers, and back into Nameko workers.
"""
import logging
import os

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

log = logging.getLogger(__name__)

_configured = False


def setup_tracing(default_service_name, instrument_nameko=True):
    """Install the tracer provider once per process (idempotent)."""
    global _configured
    if _configured:
        return
    _configured = True
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": default_service_name}
    exporter = _otlp_exporter()
    provider = TracerProvider(resource=Resource.create(attributes), sampler=sampler_for(exporter))
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    if instrument_nameko:
        from nameko_opentelemetry import NamekoInstrumentor

        NamekoInstrumentor().instrument()


def sampler_for(exporter):
    """None (the SDK's choice: ``OTEL_TRACES_SAMPLER``, else record everything) when spans are
    exported or the operator chose a sampler; else record only what a sampled caller's trace continues."""
    if exporter is not None or os.environ.get("OTEL_TRACES_SAMPLER"):
        return None
    return ParentBased(ALWAYS_OFF)


def _otlp_exporter():
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint:
        return None
    protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf")
    if protocol != "http/protobuf":
        raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported here; use http/protobuf")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def tracer(name):
    return trace.get_tracer(name)


def current_carrier():
    """The active trace context as headers (``traceparent``), for storing or sending on."""
    carrier = {}
    propagate.inject(carrier)
    return carrier


def context_from(carrier):
    return propagate.extract(carrier or {})


def current_ids():
    """(trace_id, span_id) of the active span as hex, or (None, None)."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None, None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")


__all__ = ["setup_tracing", "tracer", "current_carrier", "context_from", "current_ids", "context"]
