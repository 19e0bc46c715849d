"""IAM: no wildcard actions; Resource '*' only where nothing narrower exists."""

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from policies.engine import UNKNOWN
from policies.rules import iam
from policies.rules.iam import GROUP_POLICY, IAM_POLICY, ROLE, ROLE_POLICY, USER_POLICY
from policies.rules.iam_actions import WILDCARD_RESOURCE_ONLY
from tests.policies.support import messages, res, run

WILDCARDS, TRUST = iam.RULES
READ_OBJECTS = {
    "Sid": "ReadObjects",
    "Effect": "Allow",
    "Action": ["s3:GetObject"],
    "Resource": "arn:aws:s3:::flowhost-data/*",
}
TRACING = {
    "Effect": "Allow",
    "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
    "Resource": "*",
}


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def check(*statements: dict[str, Any], type_: str = ROLE_POLICY) -> list[str]:
    return messages(run([WILDCARDS], [res(type_, "task", {"policy": doc(*statements)})]))


def test_narrow_statements_and_star_only_actions_pass() -> None:
    assert check(READ_OBJECTS, TRACING) == []


@pytest.mark.parametrize("type_", [IAM_POLICY, ROLE_POLICY, USER_POLICY, GROUP_POLICY])
def test_every_policy_resource_type_is_checked(type_: str) -> None:
    found = check({**READ_OBJECTS, "Action": "*"}, type_=type_)
    assert len(found) == 1
    assert type_ in found[0]


@pytest.mark.parametrize("action", ["*", "s3:*", ["s3:GetObject", "sqs:*"]])
def test_wildcard_actions_fail(action: Any) -> None:
    found = check({**READ_OBJECTS, "Action": action})
    assert len(found) == 1
    assert "wildcard actions" in found[0]
    assert "statement 'ReadObjects'" in found[0]


def test_star_resource_for_an_action_that_takes_an_arn_fails() -> None:
    found = check({**TRACING, "Action": ["xray:PutTraceSegments", "sqs:SendMessage"]})
    assert len(found) == 1
    assert "['sqs:SendMessage']" in found[0]
    assert "policy statement #0" in found[0]


def test_log_group_creation_is_not_exempt() -> None:
    """logs:CreateLogGroup accepts a log-group ARN, so '*' is narrower than it needs to be."""
    assert len(check({**TRACING, "Action": "logs:CreateLogGroup"})) == 1


def test_action_names_are_case_insensitive() -> None:
    assert check({**TRACING, "Action": "XRay:putTraceSegments"}) == []


def test_partial_wildcard_with_a_specific_resource_passes() -> None:
    assert check({**READ_OBJECTS, "Action": "s3:Get*"}) == []


@pytest.mark.parametrize("key", ["NotAction", "NotResource"])
def test_not_action_and_not_resource_in_an_allow_fail(key: str) -> None:
    statement = {**READ_OBJECTS, key: "s3:DeleteObject"}
    found = check(statement)
    assert len(found) == 1
    assert key in found[0]


def test_deny_statements_may_use_wildcards() -> None:
    deny = {"Effect": "Deny", "Action": "*", "Resource": "*", "NotAction": "s3:GetObject"}
    assert check(READ_OBJECTS, deny) == []


def test_role_inline_policies_are_checked() -> None:
    inline = [
        {"name": "ok", "policy": doc(READ_OBJECTS)},
        {"name": "broad", "policy": doc({**READ_OBJECTS, "Resource": "*"})},
    ]
    found = messages(run([WILDCARDS], [res(ROLE, "task-role", {"inlinePolicies": inline})]))
    assert len(found) == 1
    assert "inlinePolicies[broad].policy" in found[0]


def test_document_given_as_an_object_is_read() -> None:
    document = {"Version": "2012-10-17", "Statement": {**READ_OBJECTS, "Action": "*"}}
    assert len(messages(run([WILDCARDS], [res(IAM_POLICY, "p", {"policy": document})]))) == 1


def test_unreadable_document_fails_and_unknown_one_is_skipped() -> None:
    broken = res(IAM_POLICY, "broken", {"policy": "{not json"})
    later = res(IAM_POLICY, "later", {"policy": UNKNOWN})
    found = run([WILDCARDS], [broken, later])
    assert [v.resource_name for v in found] == ["broken"]
    assert "not a JSON policy document" in found[0].message


def _trust(principal: Any, condition: dict[str, Any] | None = None) -> str:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": principal,
        "Action": "sts:AssumeRole",
    }
    if condition:
        statement["Condition"] = condition
    return doc(statement)


def test_role_trusting_a_service_passes() -> None:
    role = res(ROLE, "r", {"assumeRolePolicy": _trust({"Service": "ecs-tasks.amazonaws.com"})})
    assert run([TRUST], [role]) == []


def test_role_trusting_everyone_fails() -> None:
    role = res(ROLE, "r", {"assumeRolePolicy": _trust({"AWS": "*"})})
    found = messages(run([TRUST], [role]))
    assert len(found) == 1
    assert "assumeRolePolicy" in found[0]


def test_every_exempt_action_really_supports_only_a_wildcard_resource() -> None:
    """Checked against parliament's copy of the AWS service authorization reference.

    Read from its data file: importing parliament leaves files open (a ResourceWarning,
    an error here) and imports the deprecated pkg_resources.
    """
    spec = importlib.util.find_spec("parliament")
    assert spec is not None
    assert spec.origin is not None
    definition = json.loads((Path(spec.origin).parent / "iam_definition.json").read_text())
    services = {s["prefix"]: s for s in definition}
    wrong: list[str] = []
    for action in sorted(WILDCARD_RESOURCE_ONLY):
        prefix, name = action.split(":")
        privileges = [
            p for p in services[prefix]["privileges"] if p["privilege"].lower() == name.lower()
        ]
        assert privileges, f"{action} is not an IAM action"
        resource_types = {r["resource_type"] for r in privileges[0]["resource_types"]}
        if resource_types != {""}:
            wrong.append(f"{action} accepts {sorted(resource_types)}")
    assert wrong == []
