"""API grants name routes; OIDC trust names the ``sub`` claim. Both rules, both ways."""

from __future__ import annotations

import json
from typing import Any

import pytest

from policies.engine import UNKNOWN
from policies.rules import api_grants
from policies.rules.iam import GROUP_POLICY, IAM_POLICY, ROLE, ROLE_POLICY, USER_POLICY
from tests.policies.support import messages, res, run

ROUTES, TRUST = api_grants.RULES
API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
GITHUB = "token.actions.githubusercontent.com"
PROVIDER = f"arn:aws:iam::123456789012:oidc-provider/{GITHUB}"


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def invoke(resource: Any, action: Any = "execute-api:Invoke", **extra: Any) -> dict[str, Any]:
    return {"Sid": "Api", "Effect": "Allow", "Action": action, "Resource": resource, **extra}


def grants(*statements: dict[str, Any], type_: str = IAM_POLICY) -> list[str]:
    return messages(run([ROUTES], [res(type_, "grant", {"policy": doc(*statements)})]))


@pytest.mark.parametrize(
    "resource",
    [
        f"{API}/$default/GET/api/*",
        f"{API}/$default/POST/api/services/*/versions",
        f"{API}/*/GET/api/services",  # any stage, one route
        f"{API}/$default/POST/*",  # a method is named
        [f"{API}/$default/GET/sentiment/*", f"{API}/$default/POST/sentiment@*/*"],
    ],
)
def test_route_scoped_invoke_passes(resource: Any) -> None:
    assert grants(invoke(resource)) == []


@pytest.mark.parametrize(
    "resource",
    ["*", f"{API}/*", f"{API}/*/*", f"{API}/*/*/*", f"{API}/$default/*/*",
     "arn:aws:execute-api:us-east-1:123456789012:*", "arn:aws:execute-api:*:*:*/$default/GET/x"],
)  # fmt: skip
def test_invoke_on_the_whole_api_fails(resource: str) -> None:
    (found,) = grants(invoke(resource))
    assert "the whole API" in found
    assert "statement 'Api'" in found
    assert repr(resource) in found


@pytest.mark.parametrize("action", ["execute-api:*", "*", "execute-api:Inv*", ["execute-api:*"]])
def test_wider_actions_than_invoke_fail(action: Any) -> None:
    found = grants(invoke(f"{API}/$default/GET/api/*", action))
    assert len(found) == 1
    assert "every execute-api action" in found[0]


@pytest.mark.parametrize("type_", [IAM_POLICY, ROLE_POLICY, USER_POLICY, GROUP_POLICY])
def test_every_policy_type_is_checked(type_: str) -> None:
    assert len(grants(invoke("*"), type_=type_)) == 1


def test_role_inline_policies_are_checked() -> None:
    inline = [{"name": "api", "policy": doc(invoke(f"{API}/*"))}]
    (found,) = messages(run([ROUTES], [res(ROLE, "r", {"inlinePolicies": inline})]))
    assert "inlinePolicies[api].policy" in found


def test_deny_and_other_services_are_left_alone() -> None:
    deny = {**invoke(f"{API}/$default/*/api/*"), "Effect": "Deny"}
    other = invoke("arn:aws:s3:::bucket/*", "s3:GetObject")
    assert grants(deny, other) == []


def test_unknown_documents_are_not_judged() -> None:
    assert messages(run([ROUTES], [res(IAM_POLICY, "p", {"policy": UNKNOWN})])) == []


def web_identity(condition: dict[str, Any] | None, principal: Any = None) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": principal or {"Federated": PROVIDER},
        "Action": "sts:AssumeRoleWithWebIdentity",
    }
    if condition is not None:
        statement["Condition"] = condition
    return statement


def trust(*statements: dict[str, Any]) -> list[str]:
    return messages(run([TRUST], [res(ROLE, "ci", {"assumeRolePolicy": doc(*statements)})]))


@pytest.mark.parametrize(
    "condition",
    [
        {"StringEquals": {f"{GITHUB}:aud": "sts.amazonaws.com",
                          f"{GITHUB}:sub": "repo:acme/models:ref:refs/heads/main"}},
        {"StringLike": {f"{GITHUB}:sub": ["repo:acme/models:environment:*"]}},
        {"ForAnyValue:StringEquals": {f"{GITHUB.upper()}:SUB": ["repo:acme/models:pull_request"]}},
    ],
)  # fmt: skip
def test_a_trust_with_a_sub_condition_passes(condition: dict[str, Any]) -> None:
    assert trust(web_identity(condition)) == []


@pytest.mark.parametrize(
    "condition",
    [
        None,
        {"StringEquals": {f"{GITHUB}:aud": "sts.amazonaws.com"}},
        {"StringLike": {f"{GITHUB}:sub": "*"}},
        {"StringEquals": {"oidc.eks.us-east-1.amazonaws.com/id/X:sub": "system:sa:a:b"}},
    ],
)  # fmt: skip
def test_a_trust_without_the_providers_sub_fails(condition: dict[str, Any] | None) -> None:
    (found,) = trust(web_identity(condition))
    assert f"'{GITHUB}:sub'" in found
    assert "repo:owner/repo:ref:refs/heads/main" in found


def test_every_oidc_provider_of_a_statement_needs_its_sub() -> None:
    eks = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/X"
    condition = {"StringEquals": {f"{GITHUB}:sub": "repo:acme/models:ref:refs/heads/main"}}
    (found,) = trust(web_identity(condition, {"Federated": [PROVIDER, eks]}))
    assert "oidc.eks.us-east-1.amazonaws.com/id/X:sub" in found


def test_service_principals_and_denies_are_left_alone() -> None:
    service = {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
               "Action": "sts:AssumeRole"}  # fmt: skip
    deny = {**web_identity(None), "Effect": "Deny"}
    assert trust(service, deny) == []
    assert messages(run([TRUST], [res(ROLE, "r", {"assumeRolePolicy": UNKNOWN})])) == []
