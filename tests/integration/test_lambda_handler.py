"""The deployments API under Mangum, driven with API Gateway HTTP API (v2) events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import BaseModel

from flowhost.lambdas.deployments import Deployments
from flowhost.lambdas.handler import create_handler
from flowhost.lambdas.local.compute import LocalCompute
from flowhost.lambdas.local.fleet import LocalFleet
from flowhost.lambdas.local.launcher import Launcher
from flowhost.lambdas.local.routes import RouteTable
from flowhost.lambdas.local.scaler import Scaler
from flowhost.lambdas.objectstore import LocalObjectStore
from flowhost.lambdas.store import StateStore
from flowhost.services import WebServiceSpec, definition_of, endpoint


class In(BaseModel):
    text: str


class Echo(WebServiceSpec):
    """Echoes."""

    @endpoint
    def echo(self, request: In) -> In:
        return request


ALICE = "arn:aws:iam::123456789012:user/alice"


def event(method: str, path: str, body: Any = None) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "host": "api.example.com",
            "x-flowhost-actor": "mallory",  # ignored on AWS: the verified caller is the actor
            "content-type": "application/json",
        },
        "requestContext": {
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "10.0.0.1", "userAgent": "test"},
            "stage": "$default", "requestId": "r1", "accountId": "123456789012",
            "apiId": "api", "domainName": "api.example.com", "domainPrefix": "api",
            "time": "21/Nov/2026:00:00:00 +0000", "timeEpoch": 0,
            "authorizer": {"iam": {"userArn": ALICE, "accountId": "123456789012"}},
        },
        "isBase64Encoded": False,
        "body": None if body is None else json.dumps(body),
    }  # fmt: skip


@pytest.fixture
def deployments(tmp_path: Path) -> Deployments:
    store = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    store.migrate()
    objects = LocalObjectStore(tmp_path / "objects")
    compute = LocalCompute(tmp_path, objects, Launcher())  # never started: no instances here
    routes = RouteTable()
    fleet = LocalFleet(compute, routes, Scaler(compute, routes.all_pools))
    for number in (1, 2):
        store.create_version(
            definition_of(Echo), code_digest=f"sha256-{number}", artifact_run=None,
            environment_digest="sha256-e", actor="bob",
        )  # fmt: skip
        store.set_status("echo", number, "ready")
    return Deployments(store, objects, fleet)


@pytest.fixture
def handler(deployments: Deployments) -> Iterator[Any]:
    """The Lambda handler. Mangum keeps an event loop on the thread, as Lambda reuses it
    across invocations; the test closes it afterwards."""
    yield create_handler(deployments)
    loop = asyncio.get_event_loop_policy().get_event_loop()
    loop.close()
    asyncio.set_event_loop(None)


def call(handler: Any, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    response = handler(event(method, path, body), SimpleNamespace())
    return response["statusCode"], json.loads(response["body"])


def test_reads_through_mangum(handler: Any) -> None:
    status, services = call(handler, "GET", "/api/services")
    assert status == 200
    assert [s["name"] for s in services] == ["echo"]
    assert [v["number"] for v in services[0]["versions"]] == [1, 2]


def test_promote_and_rollback_through_mangum_record_the_actor(
    handler: Any, deployments: Deployments
) -> None:
    assert call(handler, "POST", "/api/services/echo/aliases/production", {"version": 1})[0] == 200
    status, body = call(handler, "POST", "/api/services/echo/aliases/production", {"version": 2})
    assert (status, body["previous"]) == (200, 1)
    status, body = call(handler, "POST", "/api/services/echo/aliases/production/rollback")
    assert (status, body["version"]) == (200, 1)
    events = deployments.store.events("echo")
    assert [(e.kind, e.actor) for e in events[:3]] == [
        ("rollback", ALICE), ("promote", ALICE), ("promote", ALICE),
    ]  # fmt: skip


def test_errors_keep_their_shape_through_mangum(handler: Any) -> None:
    status, body = call(handler, "GET", "/api/services/nope")
    assert status == 404
    assert body["error"]["code"] == "not_found"
    assert "Services: echo" in body["error"]["message"]
    status, body = call(handler, "POST", "/api/services/echo/aliases/production", {"version": "x"})
    assert status == 422
    assert body["error"]["code"] == "validation_error"
    assert body["error"]["details"][0]["field"] == "body.version"
