"""Trace context in and out of the runtime's and router's spans (W3C Trace Context)."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from flowhost.services.runtime.settings import RuntimeSettings
from flowhost.services.runtime.tracing import Tracing, traces_url

finish_span, trace_id = Tracing.finish, Tracing.trace_id

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def make(ratio: float = 1.0) -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing = Tracing("svc", exporter=exporter, sample_ratio=ratio, attributes={"k": "v"})
    return tracing, exporter


def attrs(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def ended(tracing: Tracing, exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    tracing.provider.force_flush()
    return list(exporter.get_finished_spans())


def test_a_request_with_traceparent_continues_the_callers_trace() -> None:
    tracing, exporter = make()
    headers = [(b"traceparent", f"00-{CALLER_TRACE}-{CALLER_SPAN}-01".encode())]

    span = tracing.start("POST /predict", headers, attributes={"flowhost.endpoint": "predict"})
    finish_span(span, 200, None)

    (done,) = ended(tracing, exporter)
    assert done.context is not None
    assert format(done.context.trace_id, "032x") == CALLER_TRACE
    assert done.parent is not None
    assert format(done.parent.span_id, "016x") == CALLER_SPAN
    assert done.kind is SpanKind.SERVER
    assert attrs(done)["http.response.status_code"] == 200
    assert done.resource.attributes["service.name"] == "svc"
    assert done.resource.attributes["k"] == "v"


def test_without_traceparent_a_new_trace_starts() -> None:
    tracing, exporter = make()

    span = tracing.start("POST /predict", [(b"content-type", b"application/json")])
    finish_span(span, 200, None)

    (done,) = ended(tracing, exporter)
    assert done.parent is None
    assert trace_id(span) != CALLER_TRACE


def test_inject_replaces_the_incoming_context_and_keeps_baggage() -> None:
    tracing, _ = make()
    incoming = [
        (b"traceparent", f"00-{CALLER_TRACE}-{CALLER_SPAN}-01".encode()),
        (b"tracestate", b"vendor=1"),
        (b"baggage", b"tenant=acme"),
        (b"x-request-id", b"r1"),
    ]
    span = tracing.start("router", incoming)
    out = list(incoming)

    tracing.inject(span, out)

    parents = [v.decode() for k, v in out if k == b"traceparent"]
    own_span = format(span.get_span_context().span_id, "016x")
    assert parents == [f"00-{CALLER_TRACE}-{own_span}-01"]  # the instance hangs off the router
    assert (b"baggage", b"tenant=acme") in out
    assert (b"x-request-id", b"r1") in out


def test_an_unsampled_caller_is_honoured_and_propagated() -> None:
    tracing, exporter = make()
    headers = [(b"traceparent", f"00-{CALLER_TRACE}-{CALLER_SPAN}-00".encode())]

    span = tracing.start("router", headers)
    out: list[tuple[bytes, bytes]] = []
    tracing.inject(span, out)
    finish_span(span, 200, None)

    assert not span.is_recording()
    assert ended(tracing, exporter) == []
    assert out[0][1].decode().endswith("-00")


def test_sample_ratio_zero_records_no_new_traces() -> None:
    tracing, exporter = make(ratio=0.0)

    finish_span(tracing.start("POST /predict"), 200, None)

    assert ended(tracing, exporter) == []


def test_server_errors_mark_the_span_and_client_errors_do_not() -> None:
    tracing, exporter = make()

    finish_span(tracing.start("a"), 500, "endpoint_error")
    finish_span(tracing.start("b"), 422, "validation_error")

    spans = {s.name: s for s in ended(tracing, exporter)}
    assert not spans["a"].status.is_ok
    assert attrs(spans["a"])["error.type"] == "endpoint_error"
    assert spans["b"].status.is_unset
    assert "error.type" not in attrs(spans["b"])
    assert attrs(spans["b"])["flowhost.error_code"] == "validation_error"


def test_job_spans_end_with_their_outcome() -> None:
    tracing, exporter = make()

    tracing.end_job(tracing.start("job /p", kind=SpanKind.CONSUMER), "failed", "timeout")

    (done,) = ended(tracing, exporter)
    assert attrs(done)["flowhost.outcome"] == "failed"
    assert done.kind is SpanKind.CONSUMER
    assert not done.status.is_ok


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("http://127.0.0.1:4318", "http://127.0.0.1:4318/v1/traces"),
        ("http://collector:4318/", "http://collector:4318/v1/traces"),
        ("https://otel.example/v1/traces", "https://otel.example/v1/traces"),
    ],
)
def test_traces_url(endpoint: str, url: str) -> None:
    assert traces_url(endpoint) == url


@pytest.mark.parametrize("bad", ["127.0.0.1:4318", "grpc://x:4317", "http://", "http://a b"])
def test_settings_refuse_an_endpoint_that_is_not_an_http_url(bad: str) -> None:
    with pytest.raises(ValidationError, match="otlp_endpoint"):
        RuntimeSettings(otlp_endpoint=bad)
