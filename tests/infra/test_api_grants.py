"""Grants by role on the public API, under Pulumi mocks.

The three managed policies (readers, deployers, invokers) are read from the recorded
platform and evaluated the way IAM does (an ``execute-api`` ARN pattern per request,
an explicit Deny wins): every control-plane route of the app is open to exactly the
roles meant for it, service routes only to invokers (per service when configured). With
the JWT authorizer (prod) the routes carry the same split as scopes.
"""

from __future__ import annotations

import fnmatch
import json
import re
from types import SimpleNamespace
from typing import Any, cast

import pytest

from flowhost.infra.api_grants import CONTROL_PLANE_ROUTES, ROLES, SCOPES, Role
from flowhost.lambdas.api import create_api
from flowhost.lambdas.deployments import Deployments
from tests.infra.recording import ACCOUNT_ID, REGION, PlatformRun, run_program, stack_config
from tests.infra.test_documents import findings_above_low

POLICY = "aws:iam/policy:Policy"
ROUTE = "aws:apigatewayv2/route:Route"


def app_routes() -> set[tuple[str, str]]:
    """(method, path) of every operation the control-plane app documents."""
    app = create_api(cast(Deployments, SimpleNamespace(store=None)))
    paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    return {(m.upper(), p) for p, ops in paths.items() for m in ops}


def documents(run: PlatformRun) -> dict[Role, dict[str, Any]]:
    env = run.outputs["environment"]
    return {
        role: json.loads(run.named(f"flowhost-{env}-api-grants-{role}").inputs["policy"])
        for role in ROLES
    }


def api_arn(run: PlatformRun) -> str:
    (api,) = run.of_type("aws:apigatewayv2/api:Api")
    return f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{api.id}"


def allowed(document: dict[str, Any], arn: str) -> bool:
    """IAM's answer for ``execute-api:Invoke`` on ``arn`` (``*`` spans ``/``; Deny wins)."""

    def hits(statement: dict[str, Any]) -> bool:
        resources = statement["Resource"]
        resources = [resources] if isinstance(resources, str) else resources
        return "execute-api:Invoke" in statement["Action"] and any(
            fnmatch.fnmatchcase(arn, r) for r in resources
        )

    found = [s for s in document["Statement"] if hits(s)]
    return bool(found) and all(s["Effect"] == "Allow" for s in found)


def request(run: PlatformRun, method: str, path: str) -> str:
    concrete = re.sub(r"\{[^}]+\}", "x1", path)
    return f"{api_arn(run)}/$default/{method}{concrete}"


def who_may(run: PlatformRun, method: str, path: str) -> set[Role]:
    docs = documents(run)
    return {role for role in ROLES if allowed(docs[role], request(run, method, path))}


@pytest.fixture(scope="module")
def per_service() -> PlatformRun:
    config = stack_config("dev") | {"flowhost:invokerServices": json.dumps(["sentiment"])}
    return run_program("dev", config)


def test_the_grants_list_every_control_plane_route_of_the_app() -> None:
    listed = {(m, p) for m, p, _ in CONTROL_PLANE_ROUTES}
    assert listed == app_routes()
    assert len(listed) == len(CONTROL_PLANE_ROUTES)  # each once


@pytest.mark.parametrize(("method", "path", "role"), CONTROL_PLANE_ROUTES)
def test_each_control_plane_route_is_open_to_exactly_its_roles(
    stack: PlatformRun, method: str, path: str, role: Role
) -> None:
    expected: set[Role] = {"readers", "deployers"} if role == "readers" else {"deployers"}
    assert who_may(stack, method, path) == expected


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/sentiment/predict"),
        ("GET", "/sentiment/health"),
        ("POST", "/sentiment@v3/predict"),
        ("POST", "/sentiment/predict/async"),
        ("GET", "/requests/r1"),
        ("GET", "/requests/r1/result"),
        ("POST", "/requests/hold/sentiment/predict"),
    ],
)
def test_service_routes_are_for_invokers_only(stack: PlatformRun, method: str, path: str) -> None:
    assert who_may(stack, method, path) == {"invokers"}


def test_invokers_never_reach_the_control_plane(stack: PlatformRun) -> None:
    invokers = documents(stack)["invokers"]
    for method in ("GET", "POST", "PUT", "DELETE"):
        assert not allowed(invokers, request(stack, method, "/api/services/x1/versions"))
        assert not allowed(invokers, request(stack, method, "/api/whoami"))


def test_per_service_invokers_call_only_those_services(per_service: PlatformRun) -> None:
    assert who_may(per_service, "POST", "/sentiment/predict") == {"invokers"}
    assert who_may(per_service, "POST", "/sentiment@canary/predict") == {"invokers"}
    assert who_may(per_service, "POST", "/sentiment/predict/async") == {"invokers"}
    assert who_may(per_service, "POST", "/sentiment-v2/predict") == set()
    assert who_may(per_service, "POST", "/other/predict") == set()
    assert who_may(per_service, "POST", "/requests/hold/other/predict") == set()
    assert who_may(per_service, "GET", "/requests/r1") == {"invokers"}


def test_grants_are_invoke_on_named_routes_and_pass_parliament(stack: PlatformRun) -> None:
    prefix = f"{api_arn(stack)}/$default/"
    for role, document in documents(stack).items():
        assert findings_above_low(document, "identity") == [], role
        for statement in document["Statement"]:
            assert statement["Action"] == ["execute-api:Invoke"]
            resources = statement["Resource"]
            for arn in [resources] if isinstance(resources, str) else resources:
                assert arn.startswith(prefix), arn
                method = arn.removeprefix(prefix).split("/", 1)[0]
                assert method in ("GET", "POST", "PUT", "DELETE", "*"), arn
                assert method != "*" or statement["Effect"] == "Deny", arn


def test_the_outputs_name_the_three_policies(stack: PlatformRun) -> None:
    env = stack.outputs["environment"]
    for role in ROLES:
        expected = f"arn:aws:iam::{ACCOUNT_ID}:policy/flowhost-{env}-api-grants-{role}"
        assert stack.outputs[f"{role}PolicyArn"] == expected


def test_jwt_routes_carry_the_roles_scopes(dev: PlatformRun, prod: PlatformRun) -> None:
    scopes = {
        r.inputs["routeKey"]: r.inputs.get("authorizationScopes") for r in prod.of_type(ROUTE)
    }
    assert scopes == {
        "GET /api/{proxy+}": list(SCOPES["readers"]),
        "ANY /api/{proxy+}": ["flowhost/deploy"],
        "ANY /requests/{proxy+}": ["flowhost/invoke"],
        "POST /{service}/{endpoint}/async": ["flowhost/invoke"],
        "$default": ["flowhost/invoke"],
    }
    assert SCOPES["readers"] == ("flowhost/read", "flowhost/deploy")
    assert not [r for r in dev.of_type(ROUTE) if r.inputs.get("authorizationScopes")]
