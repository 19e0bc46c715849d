"""The actor of the event trail: the caller API Gateway verified on AWS (the header is
ignored there), the ``x-flowhost-actor`` header locally. Driven through the real
deployments API, under Mangum with API Gateway HTTP API (payload v2) events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from mangum import Mangum

from flowhost.lambdas.api import create_api
from flowhost.lambdas.deployments import Deployments

DOMAIN = "abc123.execute-api.eu-west-1.amazonaws.com"
ROLE_ARN = "arn:aws:sts::111122223333:assumed-role/ml-deployer/alice"
IAM = {
    "iam": {
        "accessKey": "ASIAEXAMPLEKEY",
        "accountId": "111122223333",
        "callerId": "AROAEXAMPLE:alice",
        "cognitoIdentity": None,
        "principalOrgId": "o-example",
        "userArn": ROLE_ARN,
        "userId": "AROAEXAMPLE:alice",
    }
}
JWT = {
    "jwt": {
        "claims": {"iss": "https://issuer.example.com", "sub": "0f9c-user", "aud": "flowhost"},
        "scopes": ["deploy"],
    }
}


class FakeDeployments:
    """Only what the promote route calls; it records the actor it is given."""

    def __init__(self) -> None:
        self.store = SimpleNamespace()
        self.progress: dict[tuple[str, int], list[str]] = {}
        self.actors: list[str] = []

    def promote(self, service: str, number: int, **kwargs: Any) -> int | None:
        self.actors.append(kwargs["actor"])
        return None


def event(
    method: str, path: str, *, authorizer: dict[str, Any] | None, body: Any = None
) -> dict[str, Any]:
    """An HTTP API (v2) event as API Gateway sends it, with a spoofed actor header."""
    context: dict[str, Any] = {
        "accountId": "111122223333", "apiId": "abc123", "domainName": DOMAIN,
        "domainPrefix": "abc123", "requestId": "JKJaXmPLvHcESHA=", "routeKey": "$default",
        "stage": "$default", "time": "06/Dec/2026:10:00:00 +0000", "timeEpoch": 1796551200000,
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                 "sourceIp": "203.0.113.7", "userAgent": "flowhost"},
    }  # fmt: skip
    if authorizer is not None:
        context["authorizer"] = authorizer
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"host": context["domainName"], "content-type": "application/json",
                    "x-flowhost-actor": "mallory"},
        "requestContext": context, "isBase64Encoded": False,
        "body": None if body is None else json.dumps(body),
    }  # fmt: skip


@pytest.fixture
def deployments() -> FakeDeployments:
    return FakeDeployments()


@pytest.fixture
def lambda_handler(deployments: FakeDeployments) -> Iterator[Mangum]:
    """The API under Mangum, as on Lambda; Mangum keeps an event loop on the thread."""
    yield Mangum(create_api(cast(Deployments, deployments)), lifespan="off")
    asyncio.get_event_loop_policy().get_event_loop().close()
    asyncio.set_event_loop(None)


def call(
    handler: Mangum, method: str, path: str, authorizer: dict[str, Any] | None, body: Any = None
) -> tuple[int, Any]:
    request = event(method, path, authorizer=authorizer, body=body)
    response = handler(request, cast(Any, SimpleNamespace()))
    return response["statusCode"], json.loads(response["body"])


PROMOTE = "/api/services/echo/aliases/production"


def test_on_aws_the_actor_is_the_iam_caller_not_the_header(
    lambda_handler: Mangum, deployments: FakeDeployments
) -> None:
    assert call(lambda_handler, "GET", "/api/whoami", IAM) == (
        200, {"actor": ROLE_ARN, "source": "iam"},
    )  # fmt: skip
    status, _ = call(lambda_handler, "POST", PROMOTE, IAM, {"version": 1})
    assert status == 200
    assert deployments.actors == [ROLE_ARN]


def test_on_aws_a_jwt_caller_is_its_subject(
    lambda_handler: Mangum, deployments: FakeDeployments
) -> None:
    assert call(lambda_handler, "GET", "/api/whoami", JWT) == (
        200, {"actor": "jwt:0f9c-user", "source": "jwt"},
    )  # fmt: skip
    assert call(lambda_handler, "POST", PROMOTE, JWT, {"version": 1})[0] == 200
    assert deployments.actors == ["jwt:0f9c-user"]


@pytest.mark.parametrize(
    "authorizer",
    [None, {}, {"iam": {"userArn": ""}}, {"jwt": {"claims": {"email": "a@example.com"}}},
     {"lambda": {"actor": "mallory"}}],
    ids=["no-authorizer", "empty", "blank-arn", "jwt-without-sub", "lambda-authorizer"],
)  # fmt: skip
def test_on_aws_no_verified_identity_is_refused_and_nothing_is_recorded(
    lambda_handler: Mangum, deployments: FakeDeployments, authorizer: dict[str, Any] | None
) -> None:
    status, body = call(lambda_handler, "POST", PROMOTE, authorizer, {"version": 1})

    assert status == 401
    assert body["error"]["code"] == "unauthenticated"
    assert body["error"]["message"].startswith(
        "control plane: the request carries no identity verified by API Gateway"
    )
    assert "mallory" not in body["error"]["message"]
    assert deployments.actors == []
    assert call(lambda_handler, "GET", "/api/whoami", authorizer)[0] == 401


def test_reads_need_no_identity_of_their_own(lambda_handler: Mangum) -> None:
    # Only routes that change something take the actor; the edge guards every route.
    status, body = call(lambda_handler, "GET", "/api/healthz", None)
    assert (status, body["status"]) == (200, "ok")


def test_locally_the_header_names_the_actor(deployments: FakeDeployments) -> None:
    app = create_api(cast(Deployments, deployments))

    async def calls() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://local") as local:
            return [
                await local.get("/api/whoami", headers={"x-flowhost-actor": "bob@laptop"}),
                await local.get("/api/whoami"),
                await local.post(PROMOTE, json={"version": 1}, headers={"x-flowhost-actor": "bob"}),
            ]

    named, anonymous, promoted = asyncio.run(calls())
    assert named.json() == {"actor": "bob@laptop", "source": "header"}
    assert anonymous.json() == {"actor": "anonymous", "source": "header"}
    assert promoted.status_code == 200
    assert deployments.actors == ["bob"]
