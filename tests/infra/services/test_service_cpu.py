"""Component tier: what a CPU ServiceSpec creates (its envelope), under the recording
mock, and what it no longer creates (anything per version: the control plane's)."""

from __future__ import annotations

import json
from collections import Counter

from flowhost.infra.iam import service_role_path
from flowhost.services.envelope import ServiceEnvelope, envelope_parameter
from tests.infra.services.conftest import PINNED_RUN, ServicesRun
from tests.infra.services.harness import (
    ALB_ARN,
    BOUNDARY,
    COLLECTOR_IMAGE,
    KMS_KEY,
    PLATFORM_OUTPUTS,
    RUNTIME_IMAGE,
)

ENVELOPE_CHILDREN = {
    "aws:cloudwatch/logGroup:LogGroup": 1,
    "aws:iam/role:Role": 2,
    "aws:iam/rolePolicy:RolePolicy": 2,
    "aws:ssm/parameter:Parameter": 1,
}
DASHBOARD_CHILDREN = {
    "aws:cloudwatch/dashboard:Dashboard": 1,
    "aws:cloudwatch/metricAlarm:MetricAlarm": 2,
}
PER_VERSION = {
    "aws:ecs/service:Service",
    "aws:ecs/taskDefinition:TaskDefinition",
    "aws:lb/targetGroup:TargetGroup",
    "aws:lb/listenerRule:ListenerRule",
    "aws:appautoscaling/target:Target",
    "aws:appautoscaling/policy:Policy",
    "aws:sqs/queue:Queue",
    "aws:s3/bucketObjectv2:BucketObjectv2",
}
DYNAMIC = "pulumi-python:dynamic:Resource"


def envelope(services: ServicesRun, component: str) -> ServiceEnvelope:
    value = services.named(f"{component}-envelope").inputs["value"]
    return ServiceEnvelope.model_validate_json(value)


def test_exact_children_of_a_cpu_service(services: ServicesRun) -> None:
    children = services.children("tiny")
    assert dict(Counter(r.type for r in children if r.custom)) == ENVELOPE_CHILDREN
    assert sorted(r.type for r in children if not r.custom) == ["flowhost:service:Dashboard"]
    (dashboard,) = [r for r in children if not r.custom]
    grand = [r for r in services.run.resources if r.parent == dashboard.urn]
    assert dict(Counter(r.type for r in grand)) == DASHBOARD_CHILDREN
    assert all(r.name.startswith("tiny-") for r in children + grand)


def test_a_stack_that_deploys_adds_one_dynamic_resource_and_no_compute(
    services: ServicesRun,
) -> None:
    children = services.children("scored-svc")
    custom = Counter(r.type for r in children if r.custom)
    assert dict(custom) == {**ENVELOPE_CHILDREN, DYNAMIC: 1}
    assert not {r.type for r in services.run.resources} & PER_VERSION
    (deploy,) = [r for r in children if r.type == DYNAMIC]
    assert deploy.name == "scored-svc-deploy"
    assert services.named("scored-svc-envelope").urn in deploy.dependencies


def test_the_deploy_resource_carries_what_the_control_plane_needs(services: ServicesRun) -> None:
    (deploy,) = services.run.of_type(DYNAMIC)
    inputs = deploy.inputs
    spec = services.specs["scored"]
    assert inputs["service"] == "scored"
    assert inputs["digest"] == spec.code_digest
    assert inputs["digest"].startswith("sha256-")
    assert inputs["run"] == PINNED_RUN
    assert inputs["aliases"] == ["production", "canary"]
    assert "pinned" not in inputs  # no version=: the control plane numbers it
    assert inputs["definition"]["name"] == "scored"
    assert inputs["definition"]["entrypoint"] == "tiny.py:Scored"
    assert inputs["target"] == {
        "name": "platform", "url": "https://api.example.com", "auth": "sigv4",
        "region": "us-east-1",
    }  # fmt: skip
    with open(inputs["archive"], "rb") as archive:
        from flowhost.services.packaging import package_digest

        assert package_digest(archive.read()) == inputs["digest"]


def test_the_envelope_parameter_names_the_platforms_outputs(services: ServicesRun) -> None:
    parameter = services.named("tiny-envelope")
    assert parameter.inputs["name"] == envelope_parameter("dev", "tiny")
    assert parameter.inputs["name"] == "/flowhost/dev/services/tiny"
    assert (parameter.inputs["type"], parameter.inputs["tier"]) == ("String", "Standard")
    found = envelope(services, "tiny")
    assert (found.service, found.environment) == ("tiny", "dev")
    assert found.bucket == PLATFORM_OUTPUTS["bucketName"]
    assert found.queues.prefix == "flowhost-dev-"
    assert found.queues.kms_key_arn == KMS_KEY
    assert (found.queues.max_receive_count, found.queues.visibility_timeout_seconds) == (3, 1800)
    ecs = found.ecs
    assert ecs is not None
    assert ecs.cluster == PLATFORM_OUTPUTS["ecsClusterArn"]
    assert ecs.subnets == ("subnet-a", "subnet-b")
    assert ecs.security_groups == ("sg-services",)
    assert ecs.vpc_id == "vpc-0abc"
    assert ecs.load_balancer_arn == ALB_ARN
    assert ecs.image == RUNTIME_IMAGE
    assert ecs.collector_image == COLLECTOR_IMAGE
    assert ecs.collector_config_parameter_arn == (
        "arn:aws:ssm:us-east-1:123456789012:parameter/flowhost/dev/adot-collector-config"
    )
    assert ecs.log_group == "/flowhost/dev/tiny"
    assert ecs.region == "us-east-1"
    assert (ecs.cpu_units, ecs.memory_mib) == (512, 2048)  # 0.5 vCPU, 1536Mi rounds up
    assert (ecs.spot_weight, ecs.deregistration_delay_seconds) == (1, 30)
    assert ecs.requests_per_target_per_minute == 3 * 60  # target_concurrency 3
    assert found.container_secrets == {}


def test_the_envelope_names_this_services_roles_and_log_group(services: ServicesRun) -> None:
    for component in ("tiny", "scored-svc"):
        ecs = envelope(services, component).ecs
        assert ecs is not None
        task, execution = (services.named(f"{component}-{k}-role") for k in ("task", "execution"))
        assert ecs.task_role_arn.endswith(f"/{task.name}")
        assert ecs.execution_role_arn.endswith(f"/{execution.name}")
        assert ecs.log_group == services.named(f"{component}-logs").inputs["name"]


def test_the_envelope_environment_is_shared_by_every_version(services: ServicesRun) -> None:
    env = envelope(services, "tiny").container_env
    assert env["FLOWHOST_PORT"] == "8080"
    assert env["AWS_REGION"] == "us-east-1"
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == "flowhost.service=tiny,flowhost.environment=dev"
    # What is a version's own, the control plane adds (version_environment).
    own = {"FLOWHOST_VERSION", "FLOWHOST_CODE_PACKAGE", "FLOWHOST_CODE_DIGEST",
           "FLOWHOST_RUN", "FLOWHOST_QUEUE_URL", "FLOWHOST_QUEUE_NAME",
           "FLOWHOST_DEAD_LETTER_QUEUE_URL"}  # fmt: skip
    assert not own & set(env)
    bound = envelope(services, "scored-svc").container_env
    assert bound["METAFLOW_DEFAULT_DATASTORE"] == "s3"
    assert bound["METAFLOW_DATASTORE_SYSROOT_S3"] == "s3://flowhost-dev-data-0004/metaflow"


def test_one_log_group_per_service(services: ServicesRun) -> None:
    logs = services.named("tiny-logs")
    assert logs.inputs["name"] == "/flowhost/dev/tiny"
    assert logs.inputs["retentionInDays"] == 30


def test_roles_carry_the_boundary_the_service_path_and_the_tags(services: ServicesRun) -> None:
    roles = services.run.of_type("aws:iam/role:Role")
    assert len(roles) == 4
    for role in roles:
        assert role.inputs["permissionsBoundary"] == BOUNDARY
        assert role.inputs["path"] == service_role_path("dev") == "/flowhost/dev/services/"
        trust = json.loads(role.inputs["assumeRolePolicy"])
        assert trust["Statement"][0]["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    for r in services.run.resources:
        if r.custom and r.type != DYNAMIC and "tags" in r.inputs:
            assert r.inputs["tags"]["flowhost:environment"] == "dev"
    assert services.named("scored-svc-logs").inputs["tags"]["owner"] == "ml-team"
    assert services.named("scored-svc-logs").inputs["tags"]["flowhost:service"] == "scored"
