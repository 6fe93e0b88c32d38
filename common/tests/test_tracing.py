"""Which spans a process records: all of them when it exports, otherwise only a sampled caller's."""
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shop_common.telemetry.tracing import sampler_for


def tracer_exporting_to(exporter, sampler_exporter):
    provider = TracerProvider(sampler=sampler_for(sampler_exporter))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test")


def sampled_caller():
    caller = trace.SpanContext(trace_id=0x1234, span_id=0x5678, is_remote=True,
                               trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
    return trace.set_span_in_context(trace.NonRecordingSpan(caller))


def test_without_an_exporter_a_new_trace_is_not_recorded_but_still_has_ids_for_the_logs(monkeypatch):
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    finished = InMemorySpanExporter()
    span = tracer_exporting_to(finished, None).start_span("GET /products")
    span.end()
    assert not span.is_recording() and span.get_span_context().is_valid
    assert not span.get_span_context().trace_flags.sampled  # callees record nothing either
    assert finished.get_finished_spans() == ()


def test_without_an_exporter_a_sampled_callers_trace_is_still_continued(monkeypatch):
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    finished = InMemorySpanExporter()
    span = tracer_exporting_to(finished, None).start_span("order_service.place_order", context=sampled_caller())
    span.end()
    assert span.get_span_context().trace_id == 0x1234 and span.get_span_context().trace_flags.sampled
    assert [recorded.name for recorded in finished.get_finished_spans()] == ["order_service.place_order"]


def test_with_an_exporter_every_trace_is_recorded(monkeypatch):
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    finished = InMemorySpanExporter()
    tracer_exporting_to(finished, finished).start_span("GET /products").end()
    assert [recorded.name for recorded in finished.get_finished_spans()] == ["GET /products"]


def test_an_operators_sampler_wins_without_an_exporter_too(monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
    finished = InMemorySpanExporter()
    tracer_exporting_to(finished, None).start_span("GET /products").end()
    assert len(finished.get_finished_spans()) == 1
