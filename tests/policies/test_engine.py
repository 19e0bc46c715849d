"""The offline engine runs every rule, and a platform-shaped stack passes all of them."""

import json
from typing import Any

import pytest

from policies.engine import ALL_RULES, PolicyConfig, Resource, evaluate
from policies.model import EDGE_TAG, REQUIRED_TAGS
from tests.policies.support import DEV, TAGS, res

KMS = [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": "k"}}]
BLOCKED = dict.fromkeys(
    ["blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"], True
)


def stack(*, broken: bool, environment: str = "dev") -> list[Resource]:
    """A small platform; with ``broken`` every rule has something to find."""
    tags = {**TAGS, "flowhost:environment": environment}
    bucket = res("aws:s3/bucket:Bucket", "data", {"tags": tags}, id="data-1a2b")
    sse = [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}] if broken else KMS
    action = "s3:*" if broken else "s3:GetObject"
    policy = {"Effect": "Allow", "Action": action, "Resource": "arn:aws:s3:::data-1a2b/*"}
    trust = {
        "Effect": "Allow",
        "Principal": "*" if broken else {"Service": "ecs-tasks.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }
    service = res(
        "aws:ecs/service:Service",
        "sentiment",
        {"name": "sentiment", "desiredCount": 0, "tags": tags},
        ignore_changes=() if broken else ("desiredCount",),
    )
    cidr = "0.0.0.0/0" if broken else "10.0.0.0/16"
    github = "token.actions.githubusercontent.com"
    sub = {} if broken else {f"{github}:sub": "repo:acme/models:ref:refs/heads/main"}
    web_identity = {
        "Effect": "Allow",
        "Principal": {"Federated": f"arn:aws:iam::1:oidc-provider/{github}"},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {f"{github}:aud": "sts.amazonaws.com", **sub}},
    }
    index = "https://bob:pw@pypi.example.com" if broken else "https://pypi.example.com"
    secret = "arn:aws:secretsmanager:us-east-1:1:secret:pypi"
    api = "arn:aws:execute-api:us-east-1:1:a1b2c3"
    api_grant = {
        "Effect": "Allow",
        "Action": "execute-api:Invoke",
        "Resource": f"{api}/*" if broken else f"{api}/$default/GET/api/*",
    }
    resources = [
        bucket,
        res(
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            "data-sse",
            {"bucket": bucket.id, "rules": sse},
        ),
        res(
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            "data-pab",
            {"bucket": bucket.id, **BLOCKED, "restrictPublicBuckets": not broken},
        ),
        res(
            "aws:s3/bucketPolicy:BucketPolicy",
            "data-policy",
            {
                "bucket": bucket.id,
                "policy": json.dumps(
                    {
                        "Statement": [
                            {
                                **policy,
                                "Principal": "*" if broken else {"AWS": "arn:aws:iam::1:root"},
                            }
                        ]
                    }
                ),
            },
        ),
        res(
            "aws:rds/instance:Instance",
            "state",
            {
                "storageEncrypted": not broken,
                "publiclyAccessible": broken,
                "backupRetentionPeriod": 0 if broken else 7,
                "deletionProtection": not broken,
                "multiAz": not broken,
                "tags": tags,
            },
        ),
        res(
            "aws:iam/role:Role",
            "task",
            {"assumeRolePolicy": json.dumps({"Statement": [trust]}), "tags": tags},
        ),
        res(
            "aws:iam/rolePolicy:RolePolicy",
            "task-s3",
            {"role": "task", "policy": json.dumps({"Statement": [policy]})},
        ),
        res(  # GitHub Actions by OIDC: the sub condition pins the repository
            "aws:iam/role:Role",
            "ci",
            {"assumeRolePolicy": json.dumps({"Statement": [web_identity]}), "tags": tags},
        ),
        res(  # a grant on the API names a route, not the whole API
            "aws:iam/policy:Policy",
            "api-readers",
            {"policy": json.dumps({"Statement": [api_grant]}), "tags": tags},
        ),
        res(
            "aws:ec2/securityGroup:SecurityGroup",
            "svc",
            {
                "ingress": [
                    {"protocol": "tcp", "fromPort": 8080, "toPort": 8080, "cidrBlocks": [cidr]}
                ],
                "tags": tags,
            },
        ),
        res(
            "aws:cloudwatch/logGroup:LogGroup",
            "svc-logs",
            {"retentionInDays": None if broken else 30, "tags": tags},
        ),
        res(
            "aws:eks/nodeGroup:NodeGroup",
            "gpu",
            {"instanceTypes": ["p5.48xlarge" if broken else "g5.xlarge"], "tags": tags},
        ),
        service,
        res(
            "aws:appautoscaling/target:Target",
            "sentiment-scaling",
            {"serviceNamespace": "ecs", "resourceId": "service/flowhost/sentiment", "tags": tags},
        ),
        res("aws:sqs/queue:Queue", "jobs", {"tags": {} if broken else tags}),
        res(  # an index URL, without credentials (they come from a secret)
            "aws:ecs/taskDefinition:TaskDefinition",
            "build",
            {
                "containerDefinitions": json.dumps(
                    [
                        {
                            "name": "build",
                            "environment": [{"name": "INDEX_URL", "value": index}],
                            "secrets": [{"name": "INDEX_CREDENTIALS", "valueFrom": secret}],
                        }
                    ]
                ),
                "tags": tags,
            },
        ),
    ]
    return resources


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_a_compliant_stack_passes_every_rule(environment: str) -> None:
    config = PolicyConfig(
        environment=environment, allowed_gpu_instance_types=frozenset({"g5.xlarge"})
    )
    assert evaluate(stack(broken=False, environment=environment), config) == []


def test_the_engine_runs_every_rule() -> None:
    prod = PolicyConfig(environment="prod", allowed_gpu_instance_types=frozenset({"g5.xlarge"}))
    found = evaluate(stack(broken=True, environment="prod"), prod)
    assert {v.policy for v in found} == {r.name for r in ALL_RULES}


def test_violations_name_the_resource() -> None:
    found = evaluate(stack(broken=True), DEV)
    log = next(v for v in found if v.policy == "cloudwatch-log-group-retention")
    assert (log.resource_type, log.resource_name) == (
        "aws:cloudwatch/logGroup:LogGroup",
        "svc-logs",
    )
    assert log.urn.endswith("::aws:cloudwatch/logGroup:LogGroup::svc-logs")
    assert str(log) == f"[cloudwatch-log-group-retention] {log.message}"


def test_rule_names_are_unique() -> None:
    names = [r.name for r in ALL_RULES]
    assert len(names) == len(set(names))


def test_config_from_the_pack_config() -> None:
    config = PolicyConfig.from_mapping(
        {
            "enforcementLevel": "mandatory",
            "environment": "prod",
            "allowedGpuInstanceTypes": ["g5.xlarge", "g6.xlarge"],
            "requireMultiAz": False,
        }
    )
    assert config.environment == "prod"
    assert config.allowed_gpu_instance_types == {"g5.xlarge", "g6.xlarge"}
    assert config.required_tags == REQUIRED_TAGS
    assert (config.deletion_protection_required, config.multi_az_required) == (True, False)


def test_defaults_are_closed() -> None:
    config = PolicyConfig.from_mapping({})
    assert config.allowed_gpu_instance_types == frozenset()
    assert config.required_tags == REQUIRED_TAGS
    assert EDGE_TAG == "flowhost:edge"


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"environment": 3}, "environment"),
        ({"allowedGpuInstanceTypes": "g5.xlarge"}, "allowedGpuInstanceTypes"),
        ({"requiredTags": ["owner", 1]}, "requiredTags"),
        ({"requireMultiAz": "yes"}, "requireMultiAz"),
    ],
)
def test_bad_config_names_the_key(values: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=key):
        PolicyConfig.from_mapping(values)
