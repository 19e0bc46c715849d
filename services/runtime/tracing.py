"""OpenTelemetry traces of the serving path, with W3C trace context in and out.

Off unless an OTLP endpoint is given (``RuntimeSettings.otlp_endpoint``, ``flowhost up
--otlp-endpoint``; on AWS the ADOT sidecar at ``http://127.0.0.1:4318``): then every
request is a SERVER span, a child of the ``traceparent`` it came with (the router's
span on the platform), exported in batches over OTLP/HTTP by a background thread. With
tracing off nothing here runs on a request's path.

Headers are ASGI's raw ``(name, value)`` byte pairs; the propagators are W3C Trace
Context and Baggage. The SDK and exporter take a sixth of the runtime's import time, so
callers import this module only when tracing is on (type hints under TYPE_CHECKING).
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

import flowhost

__all__ = ["TRACE_HEADERS", "Tracing", "traces_url"]

Headers = list[tuple[bytes, bytes]]

# The trace context a hop replaces with its own span's (``baggage`` passes through as is).
TRACE_HEADERS = frozenset({b"traceparent", b"tracestate"})


class _HeaderGetter(Getter[Headers]):
    def get(self, carrier: Headers, key: str) -> list[str] | None:
        name = key.encode("latin-1")
        found = [value.decode("latin-1") for k, value in carrier if k == name]
        return found or None

    def keys(self, carrier: Headers) -> list[str]:
        return [k.decode("latin-1") for k, _ in carrier]


class _HeaderSetter(Setter[Headers]):
    def set(self, carrier: Headers, key: str, value: str) -> None:
        carrier.append((key.encode("latin-1"), value.encode("latin-1")))


_GET, _SET = _HeaderGetter(), _HeaderSetter()


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of a collector's base URL (``.../v1/traces`` kept)."""
    base = endpoint.rstrip("/")
    return base if base.endswith("/v1/traces") else f"{base}/v1/traces"


class Tracing:
    """A tracer provider of its own (never the process-wide one unless ``install()``),
    exporting to ``endpoint`` unless an ``exporter`` is given (tests)."""

    def __init__(
        self,
        service_name: str,
        *,
        endpoint: str | None = None,
        attributes: Mapping[str, str] | None = None,
        sample_ratio: float = 1.0,
        exporter: SpanExporter | None = None,
    ) -> None:
        if exporter is None:
            if endpoint is None:
                raise ValueError("Tracing needs an OTLP endpoint or an exporter")
            exporter = OTLPSpanExporter(endpoint=traces_url(endpoint), timeout=5)
        # Resource.create also reads OTEL_RESOURCE_ATTRIBUTES (set on AWS by ServiceSpec).
        resource = Resource.create({"service.name": service_name, **(attributes or {})})
        self.provider = TracerProvider(
            resource=resource, sampler=ParentBased(TraceIdRatioBased(sample_ratio))
        )
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("flowhost", flowhost.__version__)
        self.context_propagator = TraceContextTextMapPropagator()
        self.propagator = CompositePropagator([self.context_propagator, W3CBaggagePropagator()])

    def install(self) -> None:
        """Make this the process's tracer provider, so a service's own spans
        (``opentelemetry.trace.get_tracer(...)``) join the request's trace."""
        trace.set_tracer_provider(self.provider)

    def start(
        self,
        name: str,
        headers: Headers | None = None,
        *,
        kind: SpanKind = SpanKind.SERVER,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> Span:
        """A span continuing the trace context in ``headers`` (a new trace without one)."""
        parent = self.propagator.extract(headers, getter=_GET) if headers else None
        return self.tracer.start_span(name, context=parent, kind=kind, attributes=attributes)

    def start_job(
        self, name: str, traceparent: str | None, attributes: Mapping[str, AttributeValue]
    ) -> Span:
        """A CONSUMER span for an asynchronous job, in its submitter's trace if known."""
        parent = [(b"traceparent", traceparent.encode())] if traceparent else None
        return self.start(name, parent, kind=SpanKind.CONSUMER, attributes=attributes)

    @staticmethod
    def trace_id(span: Span) -> str:
        """The span's trace id as 32 hex digits (as in ``traceparent`` and the access log)."""
        return format(span.get_span_context().trace_id, "032x")

    @staticmethod
    def finish(span: Span, status: int, error_code: str | None) -> None:
        """Record an HTTP status on a SERVER span and end it (5xx marks it an error)."""
        span.set_attribute("http.response.status_code", status)
        if error_code is not None:
            span.set_attribute("flowhost.error_code", error_code)
        if status >= 500:
            span.set_attribute("error.type", error_code or str(status))
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    @staticmethod
    def attach(span: Span) -> object:
        """Make ``span`` current (for the code it calls); returns the token to detach."""
        return otel_context.attach(trace.set_span_in_context(span))

    @staticmethod
    def detach(token: object) -> None:
        otel_context.detach(token)  # pyright: ignore[reportArgumentType]

    @staticmethod
    def end_job(span: Span, outcome: str, error_code: str | None) -> None:
        """End an asynchronous job's span with its outcome (failed marks it an error)."""
        span.set_attribute("flowhost.outcome", outcome)
        if error_code is not None:
            span.set_attribute("flowhost.error_code", error_code)
        if outcome == "failed":
            span.set_attribute("error.type", error_code or "failed")
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    def inject(self, span: Span, headers: Headers) -> None:
        """Put ``span``'s context into outgoing ``headers`` in place of any it came with."""
        headers[:] = [(k, v) for k, v in headers if k not in TRACE_HEADERS]
        self.context_propagator.inject(
            headers, context=trace.set_span_in_context(span), setter=_SET
        )

    def shutdown(self) -> None:
        """Export what is buffered and stop (bounded by the exporter's timeout)."""
        self.provider.shutdown()
