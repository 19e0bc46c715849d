"""Traces on ``flowhost up --otlp-endpoint``: the router's span continues the caller's W3C
trace context and the instance's span is the router's child, all exported over OTLP/HTTP
to a receiver on 127.0.0.1 (the protocol the ADOT sidecar speaks on AWS)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.harness import SERVICES, Platform, PlatformFactory
from tests.integration.otlp import OtlpReceiver, ReceivedSpan
from tests.integration.support import poll

JOBS = SERVICES / "jobs.py"
CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture
def traced(launch: PlatformFactory, receiver: OtlpReceiver) -> Platform:
    platform = launch(
        "--otlp-endpoint", receiver.url, "--sweep-interval", "0.1", "--scaler-tick", "0.1",
        env={"OTEL_BSP_SCHEDULE_DELAY": "100"},  # export within 0.1 s, not the default 5 s
    )  # fmt: skip
    platform.deploy(JOBS, promote=True)
    return platform


def spans_of(receiver: OtlpReceiver, trace: str, count: int) -> list[ReceivedSpan]:
    found = receiver.wait_for(lambda s: s.trace_id == trace, count=count)
    assert len(found) >= count, f"spans of {trace}: {found}; all: {receiver.spans}"
    return found


def test_the_instance_span_is_the_routers_child_in_the_callers_trace(
    traced: Platform, receiver: OtlpReceiver
) -> None:
    response = traced.http.post(
        "/jobs/echo",
        json={"text": "hi"},
        headers={
            "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01",
            "baggage": "tenant=acme",
            "x-request-id": "trace-e2e-1",
        },
    )
    assert response.status_code == 200, response.text

    spans = spans_of(receiver, CALLER_TRACE, 2)
    (router,) = [s for s in spans if s.service == "flowhost-router"]
    (instance,) = [s for s in spans if s.service == "jobs"]
    assert router.parent_span_id == CALLER_SPAN
    assert instance.parent_span_id == router.span_id
    assert (router.kind, instance.kind) == ("server", "server")
    assert router.name == "POST /jobs/echo"
    assert instance.name == "POST /echo"
    assert router.attributes["flowhost.version"] == "v1"
    assert instance.attributes["flowhost.request_id"] == "trace-e2e-1"
    assert router.attributes["flowhost.request_id"] == "trace-e2e-1"
    assert instance.attributes["http.response.status_code"] == 200
    assert instance.resource["flowhost.version"] == "v1"
    assert instance.resource["service.version"] == "v1"
    assert not router.error
    assert not instance.error


def test_a_call_without_context_starts_a_trace_at_the_router(
    traced: Platform, receiver: OtlpReceiver
) -> None:
    response = traced.http.post(
        "/jobs/echo", json={"text": ""}, headers={"x-request-id": "trace-e2e-2"}
    )
    assert response.status_code == 422

    (instance,) = receiver.wait_for(
        lambda s: s.attributes.get("flowhost.request_id") == "trace-e2e-2" and s.service == "jobs"
    )
    (router,) = receiver.wait_for(lambda s: s.span_id == instance.parent_span_id)
    assert router.parent_span_id == ""
    assert router.service == "flowhost-router"
    assert instance.attributes["http.response.status_code"] == 422
    assert instance.attributes["flowhost.error_code"] == "validation_error"
    assert not instance.error  # a client error is not the service's


def test_router_errors_are_traced(traced: Platform, receiver: OtlpReceiver) -> None:
    response = traced.http.post(
        "/jobs/nope", json={}, headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
    )
    assert response.status_code == 404

    (router,) = spans_of(receiver, CALLER_TRACE, 1)
    assert router.attributes["http.response.status_code"] == 404
    assert router.name == "POST router"


def test_async_jobs_are_consumer_spans_in_the_submitters_trace(
    traced: Platform, receiver: OtlpReceiver
) -> None:
    response = traced.http.post(
        "/jobs/echo/async",
        json={"text": "later"},
        headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"},
    )
    assert response.status_code == 202, response.text
    request_id = response.json()["id"]
    untraced = traced.http.post(
        "/jobs/echo/async", json={"text": "x"}, headers={"traceparent": "not-a-context"}
    )
    assert untraced.status_code == 202, untraced.text  # a bad context is ignored, not refused

    def job(rid: str) -> list[ReceivedSpan] | None:
        found = [s for s in receiver.spans if s.attributes.get("flowhost.request_id") == rid]
        return found or None

    (span,) = poll("the job's span", lambda: job(request_id), 30)
    assert (span.name, span.kind, span.service) == ("job /echo", "consumer", "jobs")
    assert span.attributes["flowhost.outcome"] == "succeeded"
    assert (span.trace_id, span.parent_span_id) == (CALLER_TRACE, CALLER_SPAN)
    (other,) = poll("the other job's span", lambda: job(untraced.json()["id"]), 30)
    assert other.parent_span_id == ""
