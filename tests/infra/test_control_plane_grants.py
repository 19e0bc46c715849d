"""Component tier: what the control plane may do now that it owns every version.

The API function and the scaler create and remove versions' resources from services'
envelopes; each grant is scoped to this environment's names (or conditioned where AWS
offers no resource), and the activator gets none of it. Parliament and the policy pack
run over every document in tests/infra/test_documents.py and test_policy_pack.py.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest

from tests.infra.recording import ACCOUNT_ID, PlatformRun

PROVISION = {
    "ReadEnvelopes", "RegisterTaskDefinitions", "TaskDefinitions", "CreateServices",
    "TagOnCreate", "ListServices", "VersionTargetGroups", "VersionScaling", "ReadScaling",
    "AutoscalingServiceRole", "TargetTrackingAlarms", "VersionQueues", "PassServiceRoles",
}  # fmt: skip
STAR_ONLY = {
    "ecs:DeregisterTaskDefinition", "ecs:DescribeTaskDefinition", "ecs:ListTaskDefinitions",
    "ecs:ListServices", "application-autoscaling:DescribeScalableTargets",
}  # fmt: skip


def statements(run: PlatformRun, name: str) -> dict[str, dict[str, Any]]:
    document = json.loads(run.named(name).inputs["policy"])
    return {s["Sid"]: s for s in document["Statement"]}


def arn(service: str, resource: str, region: str = "us-east-1") -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT_ID}:{resource}"


def allowed(statement: dict[str, Any], resource: str) -> bool:
    patterns = statement["Resource"]
    patterns = [patterns] if isinstance(patterns, str) else patterns
    return any(fnmatch.fnmatchcase(resource, p) for p in patterns)


@pytest.mark.parametrize("key", ["api", "scaler"])
def test_the_api_and_the_scaler_may_provision_versions(stack: PlatformRun, key: str) -> None:
    env = stack.outputs["environment"]
    found = statements(stack, f"flowhost-{env}-fn-{key}-policy")
    assert set(found) >= PROVISION
    for sid in PROVISION:
        actions = found[sid]["Action"]
        assert all("*" not in a for a in actions), sid
        if found[sid]["Resource"] == "*":
            assert set(actions) <= STAR_ONLY, sid
    activator = statements(stack, f"flowhost-{env}-fn-activator-policy")
    assert not set(activator) & PROVISION


def test_each_grant_names_this_environments_resources(stack: PlatformRun) -> None:
    env = stack.outputs["environment"]
    cluster = f"flowhost-{env}"
    api = statements(stack, f"flowhost-{env}-fn-api-policy")
    assert api["ReadEnvelopes"]["Action"] == ["ssm:GetParameter"]
    assert allowed(api["ReadEnvelopes"], arn("ssm", f"parameter/flowhost/{env}/services/tiny"))
    assert not allowed(api["ReadEnvelopes"], arn("ssm", "parameter/flowhost/other/services/t"))
    assert not allowed(api["ReadEnvelopes"], arn("ssm", f"parameter/flowhost/{env}/adot"))
    family = arn("ecs", f"task-definition/flowhost-{env}-tiny-v3:1")
    assert allowed(api["RegisterTaskDefinitions"], family)
    assert not allowed(api["RegisterTaskDefinitions"], arn("ecs", "task-definition/other:1"))
    assert allowed(api["CreateServices"], arn("ecs", f"service/{cluster}/tiny-v3"))
    assert not allowed(api["CreateServices"], arn("ecs", "service/another-cluster/tiny-v3"))
    assert api["TagOnCreate"]["Condition"] == {
        "StringEquals": {"ecs:CreateAction": ["CreateService", "RegisterTaskDefinition"]}
    }
    assert api["ListServices"]["Condition"] == {
        "ArnEquals": {"ecs:cluster": arn("ecs", f"cluster/{cluster}")}
    }
    groups = api["VersionTargetGroups"]
    assert allowed(groups, arn("elasticloadbalancing", f"targetgroup/{env}-tiny-v3/0123abcd"))
    assert not allowed(groups, arn("elasticloadbalancing", "targetgroup/other-tiny-v3/0123"))
    assert api["VersionScaling"]["Condition"] == {
        "StringEquals": {
            "application-autoscaling:scalable-dimension": "ecs:service:DesiredCount",
            "application-autoscaling:service-namespace": "ecs",
        }
    }
    assert set(api["VersionQueues"]["Action"]) == {
        "sqs:CreateQueue", "sqs:DeleteQueue", "sqs:GetQueueAttributes", "sqs:GetQueueUrl",
        "sqs:SetQueueAttributes", "sqs:TagQueue",
    }  # fmt: skip
    assert allowed(api["VersionQueues"], arn("sqs", f"flowhost-{env}-tiny-v3-dlq"))
    alarms = api["TargetTrackingAlarms"]
    assert allowed(
        alarms, arn("cloudwatch", f"alarm:TargetTracking-service/{cluster}/tiny-v3-AlarmHigh-1")
    )
    assert not allowed(alarms, arn("cloudwatch", f"alarm:flowhost-{env}-api-errors"))
    assert api["AutoscalingServiceRole"]["Condition"] == {
        "StringEquals": {"iam:AWSServiceName": "ecs.application-autoscaling.amazonaws.com"}
    }


def test_only_service_roles_may_be_passed_and_only_to_ecs_tasks(stack: PlatformRun) -> None:
    env = stack.outputs["environment"]
    passing = statements(stack, f"flowhost-{env}-fn-api-policy")["PassServiceRoles"]
    assert passing["Action"] == ["iam:PassRole"]
    assert passing["Resource"] == f"arn:aws:iam::{ACCOUNT_ID}:role/flowhost/{env}/services/*"
    assert passing["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }
    role = f"arn:aws:iam::{ACCOUNT_ID}:role"
    assert allowed(passing, f"{role}/flowhost/{env}/services/tiny-task-role-1a2b3c4")
    for other in (f"{role}/flowhost-{env}-fn-api-role", f"{role}/admin",
                  f"{role}/flowhost/other/services/tiny-task-role"):  # fmt: skip
        assert not allowed(passing, other), other
