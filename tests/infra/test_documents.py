"""Component tier: what Pulumi passes through as opaque JSON, checked against its real schema.

- every IAM document the program emits (role and managed policies, trust policies, the
  bucket policy, the KMS key policy) is linted with parliament: no finding above LOW;
  no Allow statement has a ``*`` action or a service-wide ``svc:*`` action; ``"*"``
  resources only carry actions on the short list AWS grants nowhere else;
- Kubernetes objects validate with kubernetes-validate, strict, for the cluster's version;
- the ADOT collector config is YAML with the pipelines the sidecars need.

The platform's one ECS task definition, the environment build's, is checked against
botocore's RegisterTaskDefinition shape in test_environment_builds.py.
"""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import parliament
import pytest
import yaml

from flowhost.infra.config import load_config
from tests.infra.recording import PlatformRun, Recorded, stack_config

# Actions AWS authorizes on "*" only (each used with a comment in infra/).
STAR_ONLY = {
    "cloudwatch:GetMetricData",
    "cloudwatch:PutMetricData",
    "ecr:GetAuthorizationToken",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeRules",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeTags",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeLaunchTemplateVersions",
    "ecs:DeregisterTaskDefinition",
    "ecs:DescribeTaskDefinition",
    "ecs:ListServices",
    "ecs:ListTaskDefinitions",
    "application-autoscaling:DescribeScalableTargets",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:PutTelemetryRecords",
    "xray:PutTraceSegments",
}
SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
# (resource type, input holding a policy document, kind)
DOCUMENTS = (
    ("aws:iam/rolePolicy:RolePolicy", "policy", "identity"),
    ("aws:iam/policy:Policy", "policy", "identity"),
    ("aws:iam/role:Role", "assumeRolePolicy", "trust"),
    ("aws:s3/bucketPolicy:BucketPolicy", "policy", "resource"),
    ("aws:kms/key:Key", "policy", "resource"),
)


def documents(run: PlatformRun) -> list[tuple[Recorded, str, dict[str, Any]]]:
    found: list[tuple[Recorded, str, dict[str, Any]]] = []
    for token, field, kind in DOCUMENTS:
        for r in run.of_type(token):
            found.append((r, kind, json.loads(r.inputs[field])))
    return found


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def _known_false_positive(issue: str, detail: Any, kind: str) -> bool:
    """parliament lints identity policies; three of its findings do not apply here."""
    if kind == "trust":
        # A trust policy has a Principal and no Resource; parliament knows no EKS OIDC
        # providers as federation sources.
        if issue == "MALFORMED" and "neither Resource nor NotResource" in str(detail):
            return True
        if issue == "UNKNOWN_FEDERATION_SOURCE" and ":oidc-provider/oidc.eks." in str(detail):
            return True
    # ALB rule actions accept application and network listener (rule) ARNs alike; parliament
    # reports the network formats as required of an ARN that is an application one.
    # ecr:BatchImportUpstreamImage (filling a pull-through cache) is authorized per
    # repository (the Service Authorization Reference lists repository*); parliament's
    # data predates that and wants "*".
    return issue == "RESOURCE_MISMATCH" and all(
        (item["action"].startswith("elasticloadbalancing:") and "/net/" in item["required_format"])
        or (item["action"] == "ecr:BatchImportUpstreamImage" and item["required_format"] == "*")
        for item in detail
    )


def findings_above_low(document: dict[str, Any], kind: str) -> list[str]:
    """parliament's findings above LOW, and unknown actions or prefixes (typos) of any level."""
    policy = parliament.analyze_policy_string(json.dumps(document))
    found: list[str] = []
    for finding in policy.findings:
        severity = parliament.config.get(finding.issue, {}).get("severity", "HIGH")
        typo = finding.issue in ("UNKNOWN_ACTION", "UNKNOWN_PREFIX")
        if SEVERITIES.index(severity) <= SEVERITIES.index("LOW") and not typo:
            continue
        if _known_false_positive(finding.issue, finding.detail, kind):
            continue
        found.append(f"{finding.issue} {severity}: {finding.detail}")
    return found


def test_every_policy_document_is_found(dev: PlatformRun, prod: PlatformRun) -> None:
    # + the three API grants (readers, deployers, invokers)
    # role policies, boundary, roles, bucket, key, API grants; two roles run environment builds
    assert len(documents(dev)) == 5 + 1 + 5 + 1 + 1 + 3
    assert len(documents(prod)) == 9 + 1 + 10 + 1 + 1 + 3  # the GPU nodes pull too


def test_policy_documents_pass_parliament(stack: PlatformRun) -> None:
    problems = {
        r.name: found
        for r, kind, doc in documents(stack)
        if (found := findings_above_low(doc, kind))
    }
    assert problems == {}


def test_no_wildcard_actions_and_star_resources_only_where_aws_requires(
    stack: PlatformRun,
) -> None:
    for r, kind, doc in documents(stack):
        for statement in doc["Statement"]:
            actions = as_list(statement["Action"])
            if statement["Effect"] == "Deny":
                continue  # a deny may be broad (the bucket's TLS-only guard denies s3:*)
            for action in actions:
                assert "*" not in action, f"{r.name}: {action}"  # not '*', 's3:*' or 'kms:Get*'
                assert action.count(":") == 1, f"{r.name}: {action}"
            if kind == "identity" and "*" in as_list(statement["Resource"]):
                assert set(actions) <= STAR_ONLY, f"{r.name} {statement['Sid']}: {actions}"


def test_trust_policies_name_one_principal(stack: PlatformRun) -> None:
    principals: list[str] = []
    for _, kind, doc in documents(stack):
        if kind != "trust":
            continue
        (statement,) = doc["Statement"]
        assert statement["Action"] in ("sts:AssumeRole", "sts:AssumeRoleWithWebIdentity")
        principal = statement["Principal"]
        principals += principal.get("Service", []) and [principal["Service"]]
        if "Federated" in principal:
            (condition,) = statement["Condition"].values()
            subject = next(v for k, v in condition.items() if k.endswith(":sub"))
            assert subject.startswith("system:serviceaccount:")
            principals.append(subject)
    expected = ["lambda.amazonaws.com"] * 3 + ["ecs-tasks.amazonaws.com"] * 2  # + builds
    if stack.outputs["eksEnabled"]:
        expected += [
            "eks.amazonaws.com",
            "ec2.amazonaws.com",
            "system:serviceaccount:keda:keda-operator",
            "system:serviceaccount:kube-system:cluster-autoscaler",
            "system:serviceaccount:kube-system:aws-for-fluent-bit",
        ]
    assert sorted(principals) == sorted(expected)


def test_grants_are_scoped_to_the_platform(dev: PlatformRun) -> None:
    api = json.loads(dev.named("flowhost-dev-fn-api-policy").inputs["policy"])
    by_sid = {s["Sid"]: s for s in api["Statement"]}
    bucket = dev.outputs["bucketArn"]
    assert by_sid["PlatformBucketObjects"]["Resource"] == f"{bucket}/*"
    assert (
        by_sid["PlatformQueues"]["Resource"] == "arn:aws:sqs:us-east-1:123456789012:flowhost-dev-*"
    )
    assert by_sid["ScaleServices"]["Resource"] == (
        "arn:aws:ecs:us-east-1:123456789012:service/flowhost-dev/*"
    )
    assert by_sid["ChangeRoutes"]["Resource"].startswith(
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/"
    )
    assert by_sid["OwnLogGroup"]["Resource"] == (
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/flowhost-dev-fn-api:*"
    )
    activator = json.loads(dev.named("flowhost-dev-fn-activator-policy").inputs["policy"])
    assert not any(s["Sid"].startswith("PlatformBucket") for s in activator["Statement"])
    # Only the API and the scaler sign callbacks: they alone read the key, and only it.
    readable = {
        "Effect": "Allow",
        "Action": ["secretsmanager:GetSecretValue"],
        "Resource": dev.outputs["callbackSecretArn"],
    }
    for key in ("api", "activator", "scaler"):
        doc = json.loads(dev.named(f"flowhost-dev-fn-{key}-policy").inputs["policy"])
        found = [s for s in doc["Statement"] if s["Sid"] == "CallbackSigningKey"]
        if key == "activator":
            assert found == []
        else:
            (statement,) = found
            assert {k: statement[k] for k in readable} == readable, key
    readers = [
        r.name
        for r, _, doc in documents(dev)
        for s in doc["Statement"]
        if dev.outputs["callbackSecretArn"] in as_list(s.get("Resource", []))
    ]
    assert sorted(readers) == ["flowhost-dev-fn-api-policy", "flowhost-dev-fn-scaler-policy"]
    boundary = json.loads(dev.named("flowhost-dev-boundary-policy").inputs["policy"])
    assert {s["Sid"] for s in boundary["Statement"]} >= {"PlatformBucketObjects", "ServiceLogs"}


@pytest.mark.parametrize(
    ("action", "resource", "issue"),
    [
        ("s3:GetObjekt", "*", "UNKNOWN_ACTION"),
        ("s3:GetObject", "arn:aws:s3:::bucket", "RESOURCE_MISMATCH"),
        ("elasticloadbalancing:ModifyRule", "arn:aws:s3:::bucket", "RESOURCE_MISMATCH"),
    ],
)
def test_the_lint_can_fail(action: str, resource: str, issue: str) -> None:
    bad = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}],
    }
    (found,) = findings_above_low(bad, "identity")
    assert found.startswith(issue)


@pytest.fixture(scope="module")
def k8s_version() -> str:
    return load_config(stack_config("prod"), "prod").eks_version


def test_kubernetes_objects_validate_strictly(prod: PlatformRun, k8s_version: str) -> None:
    objects = [r for r in prod.resources if r.type.startswith("kubernetes:") and "/v1:" in r.type]
    assert sorted(o.inputs["metadata"]["name"] for o in objects) == ["flowhost-services", "keda"]
    for obj in objects:
        kubernetes_validate.validate(obj.inputs, k8s_version, strict=True)  # raises if invalid


def test_kubernetes_validation_can_fail(k8s_version: str) -> None:
    bad = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}, "spec": {"x": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, k8s_version, strict=True)


def test_adot_collector_config(stack: PlatformRun) -> None:
    (parameter,) = stack.of_type("aws:ssm/parameter:Parameter")
    config = yaml.safe_load(parameter.inputs["value"])
    pipelines = config["service"]["pipelines"]
    assert pipelines["traces"]["exporters"] == ["awsxray"]
    assert pipelines["metrics"]["exporters"] == ["awsemf"]
    for pipeline in pipelines.values():
        assert set(pipeline["receivers"]) <= set(config["receivers"])
        assert set(pipeline["processors"]) <= set(config["processors"])
    assert config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].startswith("127.0.0.1:")
