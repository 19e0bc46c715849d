"""Every kind of bad request or misbehaving endpoint gets its stable error, and the instance
keeps serving afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.support import Server, poll

LIMIT = 64 * 1024  # the toolbox fixture serves with --max-body-size 64Ki
SENTINEL = "sentinel-7f3a9c"  # the message toolbox.explode raises with


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The ``error`` object of a response, after checking status, code and request id."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert error["request_id"] == response.headers["x-request-id"]
    return error


@pytest.fixture
def still_serves(toolbox: Server) -> Iterator[None]:
    """After the test, a normal request still succeeds: the instance is not wedged."""
    yield
    response = toolbox.client.post("/echo", json={"text": "ok", "count": 2})
    assert response.status_code == 200, response.text
    assert response.json() == {"text": "okok", "length": 4}


pytestmark = pytest.mark.usefixtures("still_serves")


def test_malformed_json_is_400(toolbox: Server) -> None:
    response = toolbox.client.post(
        "/echo", content=b'{"text": "unterminated', headers={"content-type": "application/json"}
    )

    error = error_of(response, 400, "malformed_json")
    assert "'echo'" in error["message"]
    assert "not valid JSON" in error["message"]
    assert "details" not in error


def test_empty_body_is_400(toolbox: Server) -> None:
    response = toolbox.client.post("/echo", content=b"")

    error = error_of(response, 400, "malformed_json")
    assert "the body is empty" in error["message"]


def test_schema_violation_is_422_naming_the_fields(sentiment: Server) -> None:
    response = sentiment.client.post("/predict", json={"txt": "oops"})

    error = error_of(response, 422, "validation_error")
    assert error["details"] == [{"field": "text", "message": "Field required", "type": "missing"}]
    assert "'predict'" in error["message"]
    assert "text: Field required" in error["message"]
    assert sentiment.client.post("/predict", json={"text": "fine"}).status_code == 200


def test_constraint_violation_is_422_naming_the_field(toolbox: Server) -> None:
    response = toolbox.client.post("/echo", json={"text": "hi", "count": 0})

    error = error_of(response, 422, "validation_error")
    [detail] = error["details"]
    assert detail["field"] == "count"
    assert detail["type"] == "greater_than_equal"
    assert "count: Input should be greater than or equal to 1" in error["message"]


def test_wrong_method_is_405_with_allow(toolbox: Server) -> None:
    on_post = toolbox.client.get("/echo")
    on_get = toolbox.client.post("/lookup", json={"name": "x"})

    error = error_of(on_post, 405, "method_not_allowed")
    assert on_post.headers["allow"] == "POST"
    assert error["message"] == "endpoint 'echo' accepts POST, not GET."
    error = error_of(on_get, 405, "method_not_allowed")
    assert on_get.headers["allow"] == "GET"
    assert "'lookup'" in error["message"]


def test_body_at_the_limit_is_accepted(toolbox: Server) -> None:
    filler = "a" * (LIMIT - len(json.dumps({"text": ""})))
    body = json.dumps({"text": filler}).encode()
    assert len(body) == LIMIT

    response = toolbox.client.post("/echo", content=body)

    assert response.status_code == 200, response.text[:200]
    assert response.json()["length"] == len(filler)


def test_body_over_the_limit_is_413(toolbox: Server) -> None:
    body = json.dumps({"text": "a" * LIMIT}).encode()

    response = toolbox.client.post("/echo", content=body)

    error = error_of(response, 413, "payload_too_large")
    assert f"request body is {len(body)} bytes" in error["message"]
    assert f"limit of {LIMIT} bytes" in error["message"]


def test_streamed_body_over_the_limit_is_413(toolbox: Server) -> None:
    chunk = b"a" * 8192
    chunks = 2 * LIMIT // len(chunk)

    def stream() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield b'{"text": "'
        for _ in range(chunks):
            yield chunk
        yield b'"}'

    response = toolbox.client.post("/echo", content=stream())

    assert response.request.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.request.headers
    error = error_of(response, 413, "payload_too_large")
    assert f"limit of {LIMIT} bytes" in error["message"]


def test_exception_in_the_endpoint_is_500_with_traceback_only_in_the_log(
    toolbox: Server,
) -> None:
    response = toolbox.client.post("/explode", json={}, headers={"X-Request-Id": "boom-1"})

    error = error_of(response, 500, "endpoint_error")
    assert error["request_id"] == "boom-1"
    assert "'explode' raised RuntimeError" in error["message"]
    assert "boom-1" in error["message"]
    assert SENTINEL not in response.text
    assert "Traceback" not in response.text
    assert "toolbox.py" not in response.text

    def logged() -> dict[str, Any] | None:
        for record in toolbox.log_records():
            if record.get("message") == "endpoint raised" and record.get("request_id") == "boom-1":
                return record
        return None

    record = poll("the endpoint error in the server log", logged)
    assert record["level"] == "error"
    assert record["endpoint"] == "explode"
    assert record["traceback"].startswith("Traceback (most recent call last):")
    assert f"RuntimeError: {SENTINEL}: the model exploded" in record["traceback"]


@pytest.mark.parametrize("endpoint", ["stall", "stall_async"])
def test_endpoint_past_its_timeout_is_504(toolbox: Server, endpoint: str) -> None:
    response = toolbox.client.post(f"/{endpoint}", json={})

    error = error_of(response, 504, "timeout")
    assert f"endpoint {endpoint!r} did not finish within its timeout of 0.2s" in error["message"]
    assert response.elapsed.total_seconds() < 2.5  # answered before the endpoint's 3s wait ends


def test_return_value_off_the_declared_type_is_500(toolbox: Server) -> None:
    response = toolbox.client.post("/wrong_shape", json={}, headers={"X-Request-Id": "bad-shape"})

    error = error_of(response, 500, "invalid_response")
    assert "'wrong_shape'" in error["message"]
    assert "does not match its declared return type" in error["message"]
    assert "no length" not in response.text  # the returned value stays out of the response

    def logged() -> dict[str, Any] | None:
        for record in toolbox.log_records():
            if record.get("request_id") == "bad-shape" and record["logger"] == "flowhost.endpoint":
                return record
        return None

    record = poll("the invalid response in the server log", logged)
    assert record["message"] == "response does not match the declared return type"
    assert "length" in record["error"]
