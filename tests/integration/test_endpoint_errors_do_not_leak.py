"""A synchronous failure answers the one safe message (``runtime.failures``) that async
failures carry too: the endpoint, the exception's type and the request id, never its
text; the text and the traceback are in the instance's log, keyed by the request id."""

from __future__ import annotations

from flowhost.services.runtime.failures import endpoint_error_message
from tests.integration.support import Server, poll

SENTINEL = "sentinel-7f3a9c"  # toolbox.explode raises RuntimeError with it


def test_a_sync_failure_answers_the_same_safe_message_as_an_async_one(toolbox: Server) -> None:
    response = toolbox.client.post("/explode", json={}, headers={"X-Request-Id": "same-1"})

    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "endpoint_error"
    assert error["message"] == endpoint_error_message("explode", RuntimeError(), "same-1")
    assert SENTINEL not in response.text


def test_the_exception_is_in_the_instance_log_keyed_by_request_id(toolbox: Server) -> None:
    toolbox.client.post("/explode", json={}, headers={"X-Request-Id": "logged-1"})

    def logged() -> list[dict[str, object]]:
        return [
            r for r in toolbox.log_records()
            if r.get("request_id") == "logged-1" and r.get("message") == "endpoint raised"
        ]  # fmt: skip

    [record] = poll("the failure's log line", lambda: logged() or None, 10)
    assert record["endpoint"] == "explode"
    assert f"RuntimeError: {SENTINEL}: the model exploded" in str(record["traceback"])
