"""Prometheus metrics of one instance: requests, errors, latency, in-flight, per endpoint."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["EndpointMetrics", "InstanceMetrics"]

LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0, 1200.0,
)  # fmt: skip


class EndpointMetrics:
    """Pre-bound metric children for one endpoint, so the hot path does no label lookups."""

    def __init__(self, metrics: InstanceMetrics, endpoint: str) -> None:
        self._metrics = metrics
        self.endpoint = endpoint
        self.in_flight = metrics.in_flight.labels(endpoint)
        self.latency = metrics.latency.labels(endpoint)
        self._requests: dict[int, Counter] = {}
        self._errors: dict[str, Counter] = {}

    def record(self, status: int, seconds: float, error_code: str | None) -> None:
        counter = self._requests.get(status)
        if counter is None:
            counter = self._requests[status] = self._metrics.requests.labels(
                self.endpoint, str(status)
            )
        counter.inc()
        self.latency.observe(seconds)
        if error_code is not None:
            errors = self._errors.get(error_code)
            if errors is None:
                errors = self._errors[error_code] = self._metrics.errors.labels(
                    self.endpoint, error_code
                )
            errors.inc()


class InstanceMetrics:
    """The registry of one serving instance, exposed on ``/metrics``."""

    def __init__(self, service: str, endpoints: Iterable[str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "flowhost_requests",
            "Requests answered, by endpoint and HTTP status.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "flowhost_request_errors",
            "Requests answered with an error, by endpoint and error code.",
            ["endpoint", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "flowhost_request_duration_seconds",
            "Time from the first byte of the request to the response, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "flowhost_requests_in_flight",
            "Requests being processed now, by endpoint.",
            ["endpoint"],
            registry=self.registry,
        )
        self.ready = Gauge(
            "flowhost_instance_ready",
            "1 once initialize() has returned and the instance takes traffic.",
            registry=self.registry,
        )
        self.initialize_seconds = Gauge(
            "flowhost_initialize_seconds",
            "How long initialize() took on this instance.",
            registry=self.registry,
        )
        info = Gauge(
            "flowhost_service_info",
            "Constant 1, labelled with the service this instance serves.",
            ["service"],
            registry=self.registry,
        )
        info.labels(service).set(1)
        self.endpoints = {name: EndpointMetrics(self, name) for name in endpoints}
