"""Component tier: what a ServiceSpec passes through as opaque JSON, against its real
schema: container definitions (botocore's RegisterTaskDefinition shape), IAM documents
(parliament, scoped to the service), and the whole output through the policy pack."""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from tests.infra.recording import Recorded
from tests.infra.services.conftest import PINNED_RUN, ServicesRun
from tests.infra.test_documents import as_list, findings_above_low
from tests.infra.test_policy_pack import as_policy_resource
from tests.policies.loader import load_policy_pack

load_policy_pack()

from policies.engine import PolicyConfig, evaluate  # noqa: E402

# Statements on things shared by every service (the reason is in infra/service_role.py);
# PullImage: the platform's runtime image repository (no image= given); PullCollector*: the
# platform's cached ADOT collector (pulling it, and filling the cache on a first pull).
SHARED = {
    "PullCollector",
    "PullCollectorFillCache",
    "BucketKey",
    "CollectorMetrics",
    "CollectorConfig",
    "Traces",
    "RegistryLogin",
    "PullImage",
}
SSM = "arn:aws:ssm:us-east-1:123456789012"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:flowhost-dev-tiny-v1"
STAR = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "ecr:GetAuthorizationToken"}


def register_task_definition(task: Recorded) -> dict[str, Any]:
    """The RegisterTaskDefinition request the provider would send."""
    i = task.inputs
    return {
        "family": i["family"],
        "taskRoleArn": i["taskRoleArn"],
        "executionRoleArn": i["executionRoleArn"],
        "networkMode": i["networkMode"],
        "containerDefinitions": json.loads(i["containerDefinitions"]),
        "requiresCompatibilities": i["requiresCompatibilities"],
        "cpu": i["cpu"],
        "memory": i["memory"],
        "runtimePlatform": {
            "operatingSystemFamily": i["runtimePlatform"]["operatingSystemFamily"],
            "cpuArchitecture": i["runtimePlatform"]["cpuArchitecture"],
        },
    }


@pytest.mark.parametrize("component", ["tiny", "scored-v2"])
def test_container_definitions_are_valid_for_ecs(services: ServicesRun, component: str) -> None:
    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    assert shape is not None
    request = register_task_definition(services.named(f"{component}-task"))
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()
    serving, collector = request["containerDefinitions"]
    assert serving["portMappings"] == [{"containerPort": 8080, "protocol": "tcp", "name": "http"}]
    assert "/healthz" in " ".join(serving["healthCheck"]["command"])
    assert serving["logConfiguration"]["logDriver"] == "awslogs"
    assert serving["logConfiguration"]["options"]["awslogs-group"].startswith("/flowhost/dev/")
    assert collector["secrets"] == [
        {
            "name": "AOT_CONFIG_CONTENT",
            "valueFrom": f"{SSM}:parameter/flowhost/dev/adot-collector-config",
        }
    ]


def environment(services: ServicesRun, component: str) -> dict[str, str]:
    (serving, _) = json.loads(services.named(f"{component}-task").inputs["containerDefinitions"])
    return {e["name"]: e["value"] for e in serving["environment"]}


def test_the_container_environment_contract(services: ServicesRun) -> None:
    env = environment(services, "tiny")
    key = services.specs["tiny"].package_key
    assert env["FLOWHOST_CODE_PACKAGE"] == f"s3://flowhost-dev-data-0004/{key}"
    assert env["FLOWHOST_CODE_DIGEST"] == key.removeprefix("packages/").removesuffix(".tar.gz")
    assert env["FLOWHOST_ENTRYPOINT"] == "tiny.py:Tiny"
    assert env["FLOWHOST_SERVICE"] == "tiny"
    assert env["FLOWHOST_VERSION"] == "v1"
    assert env["FLOWHOST_ENVIRONMENT"] == "dev"
    assert env["FLOWHOST_ASYNC_PREFIX"] == "async/tiny/"
    assert env["FLOWHOST_QUEUE_NAME"] == "flowhost-dev-tiny-v1"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318"
    assert "FLOWHOST_RUN" not in env
    assert "METAFLOW_DEFAULT_DATASTORE" not in env
    scored = environment(services, "scored-v2")
    assert scored["FLOWHOST_RUN"] == PINNED_RUN
    assert scored["FLOWHOST_ARTIFACT_FLOW"] == "TrainFlow"
    assert scored["METAFLOW_DATASTORE_SYSROOT_S3"] == "s3://flowhost-dev-data-0004/metaflow"


def role_documents(services: ServicesRun) -> list[tuple[Recorded, str, dict[str, Any]]]:
    found: list[tuple[Recorded, str, dict[str, Any]]] = []
    for r in services.run.of_type("aws:iam/rolePolicy:RolePolicy"):
        found.append((r, "identity", json.loads(r.inputs["policy"])))
    for r in services.run.of_type("aws:iam/role:Role"):
        found.append((r, "trust", json.loads(r.inputs["assumeRolePolicy"])))
    return found


def test_role_documents_pass_parliament(services: ServicesRun) -> None:
    documents = role_documents(services)
    assert len(documents) == 2 * 4
    problems = {r.name: f for r, kind, doc in documents if (f := findings_above_low(doc, kind))}
    assert problems == {}


@pytest.mark.parametrize(("component", "service"), [("tiny", "tiny"), ("scored-v2", "scored")])
def test_every_statement_is_scoped_to_the_service(
    services: ServicesRun, component: str, service: str
) -> None:
    key = services.specs["tiny" if service == "tiny" else "scored"].package_key
    sids: list[str] = []
    for policy in ("task", "execution"):
        document = json.loads(services.named(f"{component}-{policy}-policy").inputs["policy"])
        for statement in document["Statement"]:
            sids.append(statement["Sid"])
            actions, resources = as_list(statement["Action"]), as_list(statement["Resource"])
            assert all("*" not in a for a in actions)
            if "*" in resources:
                assert set(actions) <= STAR, statement
                continue
            if statement["Sid"] in SHARED:
                continue
            scope = json.dumps(resources) + json.dumps(statement.get("Condition", {}))
            own = (f":{service}", f"/{service}", f"-{service}-", key, "/metaflow/TrainFlow/")
            assert any(part in scope for part in own), statement
    expected = {"OwnCodePackage", "OwnAsyncObjects", "OwnQueue", "OwnQueueKey", "BucketKey",
                "CollectorMetrics", "Traces", "OwnLogGroup", "CollectorConfig",
                "PullImage", "RegistryLogin", "PullCollector", "PullCollectorFillCache"}  # fmt: skip
    assert set(sids) == expected | ({"OwnArtifacts"} if service == "scored" else set())


def test_queue_statement_names_only_the_services_queue(services: ServicesRun) -> None:
    document = json.loads(services.named("tiny-task-policy").inputs["policy"])
    by_sid = {s["Sid"]: s for s in document["Statement"]}
    assert (
        by_sid["OwnQueue"]["Resource"] == "arn:aws:sqs:us-east-1:123456789012:flowhost-dev-tiny-v1"
    )
    assert by_sid["OwnQueueKey"]["Condition"] == {
        "StringEquals": {"kms:EncryptionContext:aws:sqs:arn": QUEUE_ARN}
    }
    assert (
        by_sid["OwnAsyncObjects"]["Resource"] == "arn:aws:s3:::flowhost-dev-data-0004/async/tiny/*"
    )
    assert set(by_sid["OwnQueue"]["Action"]) == {
        "sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl", "sqs:ReceiveMessage",
    }  # fmt: skip


def test_everything_passes_the_policy_pack(services: ServicesRun) -> None:
    resources = [as_policy_resource(r) for r in services.run.resources if r.custom]
    assert len(resources) > 30
    violations = evaluate(resources, PolicyConfig(environment="dev"))
    assert violations == [], "\n".join(f"{v.policy}: {v.message}" for v in violations)


def test_the_pack_catches_a_service_whose_count_pulumi_would_reset(services: ServicesRun) -> None:
    service = services.named("tiny-service")
    resources = [
        as_policy_resource(r) for r in services.run.resources if r.custom and r is not service
    ]
    broken = as_policy_resource(service)
    broken = type(broken)(**{**broken.__dict__, "ignore_changes": ()})
    failed = {v.policy for v in evaluate([*resources, broken], PolicyConfig(environment="dev"))}
    assert failed == {"ecs-autoscaled-service-ignores-desired-count"}
