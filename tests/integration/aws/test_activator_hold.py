"""The activator holds an edge caller's call when the version is not up within the edge's
budget: the call is queued as a request of the version (its worker runs it once up) and
answered 303 to the wait URL, and the wake goes on in a second invocation. Callers not
behind the edge wait through the start as before. Real store, objects and queue; a
fleet whose start takes longer than the budget."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from flowhost.lambdas.async_requests import AsyncRequests, AsyncSettings, LocalQueues
from flowhost.lambdas.aws.activator import WAKE_EVENT, Activator
from flowhost.lambdas.objectstore import LocalObjectStore, ObjectStore
from flowhost.lambdas.s3objects import S3ObjectStore
from flowhost.lambdas.store import StateStore, VersionRecord
from flowhost.lambdas.store.requests import RequestStore
from flowhost.services import WebServiceSpec, definition_of, endpoint
from flowhost.services.edge import EDGE_HEADER

pytestmark = pytest.mark.timeout(60)


class In(BaseModel):
    text: str


class Echo(WebServiceSpec):
    """Echoes."""

    @endpoint(timeout="5m")
    def echo(self, request: In) -> In:
        return request


class SlowFleet:
    """Starts a version in ``start_seconds``; records what it was asked."""

    def __init__(self, start_seconds: float) -> None:
        self.start_seconds = start_seconds
        self.woken: list[tuple[str, int]] = []

    async def wake(self, service: str, number: int, count: int = 1) -> list[object]:
        await asyncio.sleep(self.start_seconds)
        self.woken.append((service, number))
        return []


class Parts:
    def __init__(self, tmp_path: Path, objects: ObjectStore | None = None) -> None:
        self.state = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
        self.state.migrate()
        self.queues = LocalQueues(tmp_path / "queues.db", max_receive_count=3)
        self.requests = AsyncRequests(
            RequestStore(self.state.engine), objects or LocalObjectStore(tmp_path / "objects"),
            self.queues, lambda service, ref: self.state.resolve(service, ref or "production"),
            settings=AsyncSettings(), secret=b"s", public_url="https://api.example.com",
        )  # fmt: skip
        version = self.state.create_version(
            definition_of(Echo), code_digest="sha256-c", artifact_run=None,
            environment_digest="sha256-e", actor="bob",
        )  # fmt: skip
        self.state.set_status("echo", version.number, "ready")
        self.state.move_alias("echo", "production", version.number, actor="bob")
        self.version: VersionRecord = version
        self.later: list[tuple[str, int]] = []

    def activator(
        self, fleet: SlowFleet, http: httpx.AsyncClient, balancer: str = "http://127.0.0.1:9"
    ) -> Activator:
        async def wake_later(service: str, number: int) -> None:
            self.later.append((service, number))

        return Activator(
            self.state, fleet, http, balancer,  # type: ignore[arg-type]
            requests=self.requests, wake_later=wake_later, budget=0.2,
        )  # fmt: skip

    def close(self) -> None:
        self.queues.close()
        self.state.close()


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    made = Parts(tmp_path)
    yield made
    made.close()


def alb_event(body: Any, *, edge: bool, method: str = "POST") -> dict[str, Any]:
    headers = {"content-type": ["application/json"], "x-request-id": ["abc"]}
    if edge:
        headers[EDGE_HEADER] = ["1"]
    return {
        "requestContext": {"elb": {"targetGroupArn": "arn:activator"}},
        "httpMethod": method,
        "path": "/echo/echo",
        "multiValueQueryStringParameters": {},
        "multiValueHeaders": headers,
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def run(
    parts: Parts, fleet: SlowFleet, event: dict[str, Any], balancer: str = "http://127.0.0.1:9"
) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with httpx.AsyncClient() as http:
            return await parts.activator(fleet, http, balancer).handle(event)

    return asyncio.run(go())


def test_an_edge_call_to_a_slow_start_is_held_and_answered_303(parts: Parts) -> None:
    fleet = SlowFleet(start_seconds=5)

    answer = run(parts, fleet, alb_event({"text": "cold"}, edge=True))

    assert answer["statusCode"] == 303, answer
    doc = json.loads(answer["body"])
    assert answer["multiValueHeaders"]["location"] == [f"/requests/{doc['id']}/wait"]
    assert (doc["status"], doc["version"]) == ("queued", parts.version.label)
    assert doc["timeout_seconds"] == 300  # the endpoint's own limit, not the async default
    assert parts.later == [("echo", parts.version.number)]  # the wake goes on elsewhere
    queue = parts.queues.queue("echo", parts.version.number)
    assert queue.depth().visible == 1  # the version's worker runs it once up


def test_an_edge_call_with_an_invalid_body_is_refused_not_held(parts: Parts) -> None:
    answer = run(parts, SlowFleet(start_seconds=5), alb_event({"txt": "x"}, edge=True))
    assert answer["statusCode"] == 422
    assert json.loads(answer["body"])["error"]["code"] == "validation_error"
    assert parts.queues.queue("echo", parts.version.number).depth().visible == 0


def test_callers_inside_the_vpc_wait_through_the_start(parts: Parts) -> None:
    fleet = SlowFleet(start_seconds=0.4)  # longer than the budget: an edge call is held
    answer = run(parts, fleet, alb_event({"text": "inside"}, edge=False))
    assert fleet.woken == [("echo", parts.version.number)]
    assert parts.later == []
    assert answer["statusCode"] == 502  # the replay reached no balancer (none in this test)
    assert json.loads(answer["body"])["error"]["code"] == "instance_unavailable"


def test_a_wake_event_wakes_the_version(parts: Parts) -> None:
    fleet = SlowFleet(start_seconds=0.01)
    event = {"flowhost": WAKE_EVENT, "service": "echo", "version": parts.version.number}
    assert run(parts, fleet, event)["woke"] == f"echo@{parts.version.label}"
    assert fleet.woken == [("echo", parts.version.number)]


class Replier(ThreadingHTTPServer):
    """Stands in for the balancer: answers every replay with ``reply``."""

    def __init__(self, reply: bytes) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["content-length"] or 0))
                self.send_response(200)
                self.send_header("content-type", "application/octet-stream")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def test_a_reply_too_large_for_the_balancer_is_fetched_from_s3(
    tmp_path: Path, aws_client: Any
) -> None:
    s3 = aws_client("s3")
    bucket = f"replies-{os.urandom(4).hex()}"
    s3.create_bucket(Bucket=bucket)
    parts = Parts(tmp_path, S3ObjectStore(s3, bucket))
    reply = os.urandom(800_000)  # base64 in the ALB answer: over 1 MB
    balancer = Replier(reply)
    try:
        answer = run(parts, SlowFleet(0.01), alb_event({"text": "big"}, edge=False), balancer.url)
    finally:
        balancer.shutdown()
        balancer.server_close()
        parts.close()
    assert answer["statusCode"] == 303, answer["statusCode"]
    url = answer["multiValueHeaders"]["location"][0]
    fetched = httpx.get(url)
    assert (fetched.status_code, fetched.content) == (200, reply)
