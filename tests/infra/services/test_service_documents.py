"""Component tier: what a CPU ServiceSpec passes through as opaque JSON, against its real
schema, and across the seam to the control plane: the envelope, made into a version's
task definition by the control plane's own code (botocore's RegisterTaskDefinition
shape); the roles' IAM documents (parliament), which cover every version's queue by
pattern and nothing else; and the whole output through the policy pack."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from flowhost.lambdas.aws.queues import SQSQueues
from flowhost.lambdas.aws.taskdef import task_definition
from flowhost.services.envelope import ServiceEnvelope, version_environment
from flowhost.services.packaging import package_key
from tests.infra.recording import Recorded
from tests.infra.services.conftest import PINNED_RUN, ServicesRun
from tests.infra.test_documents import as_list, findings_above_low
from tests.infra.test_policy_pack import as_policy_resource
from tests.policies.loader import load_policy_pack

load_policy_pack()

from policies.engine import PolicyConfig, evaluate  # noqa: E402

# Statements on things shared by every service (the reason is in infra/service_role.py);
# PullImage: the platform's runtime image repository (no image= given); PullCollector*: the
# platform's cached ADOT collector (pulling it, and filling the cache on a first pull);
# BuiltEnvironments: the platform's built environments (content-addressed, any version's).
SHARED = {
    "BuiltEnvironments",
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
SQS = "arn:aws:sqs:us-east-1:123456789012"
STAR = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "ecr:GetAuthorizationToken"}
DIGEST = "sha256-" + "ab" * 32


def envelope(services: ServicesRun, component: str) -> ServiceEnvelope:
    return ServiceEnvelope.model_validate_json(
        services.named(f"{component}-envelope").inputs["value"]
    )


def version_task(found: ServiceEnvelope, number: int, run: str | None) -> dict[str, Any]:
    """Version ``number``'s RegisterTaskDefinition request, as the control plane makes it."""
    queue = f"{found.queues.prefix}{found.service}-v{number}"
    env = version_environment(
        found, number=number, digest=DIGEST, entrypoint="tiny.py:Tiny", run=run,
        artifact_flow="TrainFlow" if run else None, queue_name=queue,
        queue_url=f"https://sqs/{queue}", dead_letter_url=f"https://sqs/{queue}-dlq",
    )  # fmt: skip
    return task_definition(found, number, env)


@pytest.mark.parametrize(("component", "run"), [("tiny", None), ("scored-svc", PINNED_RUN)])
def test_a_versions_task_definition_from_the_envelope_is_valid_for_ecs(
    services: ServicesRun, component: str, run: str | None
) -> None:
    found = envelope(services, component)
    request = version_task(found, 7, run)
    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    assert shape is not None
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()
    serving, collector = request["containerDefinitions"]
    assert request["family"] == f"flowhost-dev-{found.service}-v7"
    task = services.named(f"{component}-task-role")
    assert request["taskRoleArn"].endswith(f"/{task.name}")
    options = serving["logConfiguration"]["options"]
    assert options["awslogs-group"] == services.named(f"{component}-logs").inputs["name"]
    assert options["awslogs-stream-prefix"] == "v7"
    config = f"{SSM}:parameter/flowhost/dev/adot-collector-config"
    assert collector["secrets"] == [{"name": "AOT_CONFIG_CONTENT", "valueFrom": config}]
    env = {e["name"]: e["value"] for e in serving["environment"]}
    assert env["FLOWHOST_VERSION"] == "v7"
    assert env["FLOWHOST_CODE_PACKAGE"] == f"s3://flowhost-dev-data-0004/{package_key(DIGEST)}"
    assert env["FLOWHOST_PORT"] == "8080"
    assert env.get("FLOWHOST_RUN") == run


def policies(services: ServicesRun, component: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for kind in ("task", "execution"):
        document = json.loads(services.named(f"{component}-{kind}-policy").inputs["policy"])
        found |= {s["Sid"]: s for s in document["Statement"]}
    return found


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


@pytest.mark.parametrize(("component", "service"), [("tiny", "tiny"), ("scored-svc", "scored")])
def test_every_statement_is_scoped_to_the_service(
    services: ServicesRun, component: str, service: str
) -> None:
    statements = policies(services, component)
    for statement in statements.values():
        actions, resources = as_list(statement["Action"]), as_list(statement["Resource"])
        assert all("*" not in a for a in actions)
        if "*" in resources:
            assert set(actions) <= STAR, statement
            continue
        if statement["Sid"] in SHARED:
            continue
        scope = json.dumps(resources) + json.dumps(statement.get("Condition", {}))
        own = (f":{service}", f"/{service}", f"-{service}-", "/packages/sha256-*",
               "/metaflow/TrainFlow/")  # fmt: skip
        assert any(part in scope for part in own), statement
    expected = {"OwnCodePackage", "OwnAsyncObjects", "OwnQueue", "OwnQueueKey", "BucketKey",
                "CollectorMetrics", "Traces", "OwnLogGroup", "CollectorConfig",
                "PullImage", "RegistryLogin", "PullCollector",
                "PullCollectorFillCache", "BuiltEnvironments"}  # fmt: skip
    # Built environments: read-only, and only under environments/ of the platform bucket.
    built = statements["BuiltEnvironments"]
    assert (built["Action"], built["Resource"]) == (
        ["s3:GetObject"],
        "arn:aws:s3:::flowhost-dev-data-0004/environments/*",
    )
    assert set(statements) == expected | ({"OwnArtifacts"} if service == "scored" else set())


def allowed(pattern: str, arn: str) -> bool:
    """IAM's wildcard match (``*`` any run of characters, ``?`` one)."""
    return fnmatch.fnmatchcase(arn, pattern)


def test_the_task_role_covers_every_versions_queue_by_pattern_and_nothing_else(
    services: ServicesRun,
) -> None:
    statements = policies(services, "tiny")
    queue, key = statements["OwnQueue"], statements["OwnQueueKey"]
    assert queue["Resource"] == f"{SQS}:flowhost-dev-tiny-v*"
    assert key["Condition"] == {
        "StringLike": {"kms:EncryptionContext:aws:sqs:arn": f"{SQS}:flowhost-dev-tiny-v*"}
    }
    queues = SQSQueues(client=None, prefix="flowhost-dev-")  # type: ignore[arg-type]
    for number in (1, 2, 17, 1234):
        name = queues.name("tiny", number)  # the control plane's names
        for arn in (f"{SQS}:{name}", f"{SQS}:{name}-dlq"):
            assert allowed(queue["Resource"], arn), arn
    others = [f"{SQS}:flowhost-dev-scored-v1", f"{SQS}:flowhost-prod-tiny-v1",
              f"{SQS}:flowhost-dev-tiny", f"{SQS}:flowhost-dev-tinyx-v1",
              "arn:aws:sqs:eu-west-1:123456789012:flowhost-dev-tiny-v1"]  # fmt: skip
    assert not [arn for arn in others if allowed(queue["Resource"], arn)]
    assert set(queue["Action"]) == {
        "sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl", "sqs:ReceiveMessage",
    }  # fmt: skip


def test_the_task_role_reads_code_packages_only_and_its_own_async_prefix(
    services: ServicesRun,
) -> None:
    statements = policies(services, "tiny")
    package = statements["OwnCodePackage"]
    assert package["Action"] == ["s3:GetObject"]
    assert package["Resource"] == "arn:aws:s3:::flowhost-dev-data-0004/packages/sha256-*"
    bucket = "arn:aws:s3:::flowhost-dev-data-0004"
    assert allowed(package["Resource"], f"{bucket}/{package_key(DIGEST)}")
    assert not allowed(package["Resource"], "arn:aws:s3:::flowhost-dev-data-0004/async/x")
    assert statements["OwnAsyncObjects"]["Resource"] == (
        "arn:aws:s3:::flowhost-dev-data-0004/async/tiny/*"
    )
    assert statements["OwnLogGroup"]["Resource"].endswith(":log-group:/flowhost/dev/tiny:*")


def test_everything_passes_the_policy_pack(services: ServicesRun) -> None:
    resources = [as_policy_resource(r) for r in services.run.resources if r.custom]
    assert len(resources) > 15
    violations = evaluate(resources, PolicyConfig(environment="dev"))
    assert violations == [], "\n".join(f"{v.policy}: {v.message}" for v in violations)


def test_the_pack_catches_an_untagged_envelope(services: ServicesRun) -> None:
    parameter = as_policy_resource(services.named("tiny-envelope"))
    broken = type(parameter)(**{**parameter.__dict__, "props": {**parameter.props, "tags": {}}})
    failed = {v.policy for v in evaluate([broken], PolicyConfig(environment="dev"))}
    assert failed == {"required-tags"}, failed
