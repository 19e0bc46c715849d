"""The local router's own answers: a start failure never quotes the instance's exception
to callers, and a body over the instances' limit is refused before it is buffered."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from flowhost.lambdas.local.pool import Pool
from flowhost.lambdas.local.router import Router
from flowhost.lambdas.local.routes import RouteTable
from flowhost.lambdas.store import VersionRecord
from flowhost.services import WebServiceSpec, endpoint
from flowhost.services.spec import definition_of

SECRET = "initialize raised OperationalError: postgres://admin:hunter2@db/prod"


class Echo(WebServiceSpec):
    name = "echo"

    @endpoint
    def say(self, request_dict: dict[str, Any]) -> dict[str, Any]:
        return request_dict


class FailedScaler:
    """A scaler whose last start of every pool failed, with a message quoting secrets."""

    def __init__(self) -> None:
        self.last_error: dict[Pool, str] = {}

    def wake(self) -> None:
        pass


def router_for(limit: int = 1024) -> tuple[Router, Pool, FailedScaler]:
    version = VersionRecord(
        service="echo", number=1, code_digest="sha256-" + "0" * 64, artifact_run=None,
        environment_digest="sha256-" + "1" * 64, definition=definition_of(Echo),
        status="ready", error=None, created_by="tests", created_at=datetime.now(UTC),
    )  # fmt: skip
    routes = RouteTable()
    pool = Pool(version)
    routes.add(pool)
    routes.point("echo", "production", 1)
    scaler = FailedScaler()
    router = Router(routes, scaler, cold_start_timeout=5, max_body_bytes=limit)  # pyright: ignore[reportArgumentType]
    return router, pool, scaler


def call(router: Router, body: bytes, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """One POST /echo/say through the router; the status, headers and JSON it answers."""
    sent: list[dict[str, Any]] = []
    pieces = [body[i : i + 100] for i in range(0, len(body), 100)] or [b""]

    async def receive() -> dict[str, Any]:
        piece = pieces.pop(0)
        return {"type": "http.request", "body": piece, "more_body": bool(pieces)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/echo/say", "headers": headers}
    asyncio.run(router(scope, receive, send))
    start, answer = sent
    return {
        "status": start["status"],
        "headers": dict(start["headers"]),
        "error": json.loads(answer["body"])["error"],
    }


def test_a_failed_start_answers_503_without_the_instances_exception() -> None:
    router, pool, scaler = router_for()
    scaler.last_error[pool] = SECRET

    answer = call(router, b"{}", [(b"x-request-id", b"r-1")])

    assert (answer["status"], answer["error"]["code"]) == (503, "instance_start_failed")
    assert answer["error"]["request_id"] == "r-1"
    assert "echo@v1: no instance could start" in answer["error"]["message"]
    assert "hunter2" not in json.dumps(answer["error"])
    assert answer["headers"][b"retry-after"] == b"5"


def test_a_declared_body_over_the_limit_is_413_before_it_is_read() -> None:
    router, _, _ = router_for(limit=1024)

    answer = call(router, b"x" * 2048, [(b"content-length", b"2048")])

    assert (answer["status"], answer["error"]["code"]) == (413, "payload_too_large")
    assert (
        "request body is 2048 bytes, above the limit of 1024 bytes for echo@v1"
        in (answer["error"]["message"])
    )


def test_a_streamed_body_over_the_limit_is_413_once_it_passes_it() -> None:
    router, _, _ = router_for(limit=1024)

    answer = call(router, b"x" * 5000, [(b"transfer-encoding", b"chunked")])

    assert (answer["status"], answer["error"]["code"]) == (413, "payload_too_large")
    assert "above the limit of 1024 bytes" in answer["error"]["message"]
