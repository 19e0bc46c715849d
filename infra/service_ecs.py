"""A CPU service version on ECS Fargate: log group, task definition, ECS service.

The task runs two containers: ``service`` (the flowhost serving runtime on
``SERVICE_PORT``, health-checked on ``/healthz``, logging with awslogs to the version's
own log group) and ``adot-collector`` (the ADOT collector from the platform's private
pull-through cache, ``collectorImage``; its config read from the platform's SSM
parameter; OTLP in on 127.0.0.1, X-Ray traces and EMF metrics out). The platform's
Metaflow settings join the serving container's environment, and its metadata service's
auth key comes in as ``METAFLOW_SERVICE_AUTH_KEY`` from Secrets Manager (``secrets``; the
execution role reads it). The ECS service is named ``<service>-v<N>``
(``flowhost.lambdas.aws.fleet.ecs_service_name`` with the control plane's empty prefix)
and starts at ``min_instances``; afterwards the count belongs to autoscaling and the
control plane, so Pulumi ignores ``desiredCount``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from flowhost.infra.images import ADOT_IMAGE
from flowhost.infra.network import SERVICE_PORT
from flowhost.infra.service_code import container_environment, container_secrets
from flowhost.infra.tags import Tagging

__all__ = [
    "ADOT_IMAGE",
    "COLLECTOR",
    "FARGATE_SIZES",
    "SERVING",
    "EcsArgs",
    "EcsService",
    "container_definitions",
    "create_ecs_service",
    "ecs_service_name",
    "fargate_size",
]

SERVING = "service"
COLLECTOR = "adot-collector"
# Fargate's CPU units -> the memory sizes (MiB) it accepts with them.
FARGATE_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}
_HEALTH = (
    "import urllib.request; "
    f"urllib.request.urlopen('http://127.0.0.1:{SERVICE_PORT}/healthz', timeout=4)"
)


def ecs_service_name(service: str, version: int, prefix: str = "") -> str:
    """As ``flowhost.lambdas.aws.fleet.ecs_service_name`` (infra may not import lambdas)."""
    return f"{prefix}{service}-v{version}"


def fargate_size(service: str, cpu: float, memory_mib: int) -> tuple[int, int]:
    """The smallest Fargate (CPU units, MiB) with at least ``cpu`` vCPUs and
    ``memory_mib``: memory rounds up to a size the CPU accepts, and CPU rounds up further
    when the memory needs it."""
    units = cpu * 1024
    for cpu_units, memories in FARGATE_SIZES.items():
        if cpu_units < units:
            continue
        fitting = [m for m in memories if m >= memory_mib]
        if fitting:
            return cpu_units, fitting[0]
    raise ValueError(
        f"ServiceSpec {service!r}: resources cpu={cpu:g} and memory={memory_mib} MiB fit no "
        f"Fargate task size (at most 16 vCPUs and 122880 MiB; got cpu {cpu:g}, memory "
        f"{memory_mib} MiB). Lower Resources(cpu=..., memory=...), or use a GPU (EKS)."
    )


def container_definitions(
    *,
    image: str,
    environment: Mapping[str, str],
    log_group: str,
    region: str,
    adot_parameter_arn: str,
    collector_image: str,
    secrets: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Both containers, in RegisterTaskDefinition's shape (tests validate with botocore)."""
    logs = {
        "logDriver": "awslogs",
        "options": {"awslogs-group": log_group, "awslogs-region": region},
    }

    def logging(stream: str) -> dict[str, Any]:
        options = {**logs["options"], "awslogs-stream-prefix": stream}
        return {"logDriver": "awslogs", "options": options}

    serving: dict[str, Any] = {
        "name": SERVING,
        "image": image,
        "essential": True,
        "portMappings": [{"containerPort": SERVICE_PORT, "protocol": "tcp", "name": "http"}],
        "environment": [{"name": k, "value": v} for k, v in sorted(environment.items())],
        "healthCheck": {
            "command": ["CMD", "python", "-c", _HEALTH],
            "interval": 15,
            "timeout": 5,
            "retries": 3,
            "startPeriod": 120,
        },
        "dependsOn": [{"containerName": COLLECTOR, "condition": "START"}],
        "stopTimeout": 30,
        "readonlyRootFilesystem": False,  # the runtime unpacks its code package
        "logConfiguration": logging(SERVING),
    }
    if secrets:
        serving["secrets"] = [{"name": k, "valueFrom": v} for k, v in sorted(secrets.items())]
    return [
        serving,
        {
            "name": COLLECTOR,
            "image": collector_image,
            "essential": False,  # losing telemetry must not stop serving
            "secrets": [{"name": "AOT_CONFIG_CONTENT", "valueFrom": adot_parameter_arn}],
            "memoryReservation": 128,
            "logConfiguration": logging(COLLECTOR),
        },
    ]


@dataclass(frozen=True)
class EcsArgs:
    service: str
    version: int
    image: pulumi.Input[str]
    environment: Mapping[str, pulumi.Input[str]]
    cpu_units: int
    memory_mib: int
    min_instances: int
    spot_weight: int
    region: pulumi.Input[str]
    adot_parameter_arn: pulumi.Input[str]
    cluster_arn: pulumi.Input[str]
    subnet_ids: pulumi.Input[list[str]]
    security_group_id: pulumi.Input[str]
    target_group_arn: pulumi.Input[str]
    task_role_arn: pulumi.Input[str]
    execution_role_arn: pulumi.Input[str]
    depends_on: list[pulumi.Resource]
    tagging: Tagging
    collector_image: pulumi.Input[str]  # PlatformRef.collector_image
    metaflow_environment: pulumi.Input[Mapping[str, str]]  # PlatformRef's ({}: none)
    metaflow_auth_secret_arn: pulumi.Input[str]  # PlatformRef's ("": none)


@dataclass(frozen=True)
class EcsService:
    log_group: aws.cloudwatch.LogGroup
    task_definition: aws.ecs.TaskDefinition
    service: aws.ecs.Service
    name: str


def create_log_group(
    name: str,
    service: str,
    version: int,
    prefix: pulumi.Input[str],
    retention_days: int,
    tagging: Tagging,
    parent: pulumi.Resource,
) -> aws.cloudwatch.LogGroup:
    """``<serviceLogGroupPrefix><service>/v<N>`` (the boundary allows only that prefix)."""
    return aws.cloudwatch.LogGroup(
        f"{name}-logs",
        name=pulumi.Output.concat(prefix, service, f"/v{version}"),
        retention_in_days=retention_days,
        tags=tagging.tags(f"{name}-logs"),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def create_ecs_service(
    name: str, args: EcsArgs, log_group: aws.cloudwatch.LogGroup, parent: pulumi.Resource
) -> EcsService:
    tags = args.tagging.tags
    child = pulumi.ResourceOptions(parent=parent)
    env_keys = sorted(args.environment)
    definitions = pulumi.Output.all(
        pulumi.Output.from_input(args.image),
        log_group.name,
        pulumi.Output.from_input(args.region),
        pulumi.Output.from_input(args.adot_parameter_arn),
        pulumi.Output.from_input(args.collector_image),
        pulumi.Output.from_input(args.metaflow_environment),
        pulumi.Output.from_input(args.metaflow_auth_secret_arn),
        *(pulumi.Output.from_input(args.environment[k]) for k in env_keys),
    ).apply(
        lambda v: json.dumps(
            container_definitions(
                image=v[0],
                log_group=v[1],
                region=v[2],
                adot_parameter_arn=v[3],
                collector_image=v[4],
                environment=container_environment(
                    dict(zip(env_keys, v[7:], strict=True)), v[5], auth_secret_arn=v[6]
                ),
                secrets=container_secrets(v[6]),
            ),
            sort_keys=True,
        )
    )
    task_definition = aws.ecs.TaskDefinition(
        f"{name}-task",
        family=pulumi.Output.from_input(args.tagging.environment).apply(
            lambda env: f"flowhost-{env}-{args.service}-v{args.version}"
        ),
        requires_compatibilities=["FARGATE"],
        network_mode="awsvpc",
        cpu=str(args.cpu_units),
        memory=str(args.memory_mib),
        runtime_platform={"operating_system_family": "LINUX", "cpu_architecture": "X86_64"},
        task_role_arn=args.task_role_arn,
        execution_role_arn=args.execution_role_arn,
        container_definitions=definitions,
        tags=tags(f"{name}-task"),
        opts=child,
    )
    service_name = ecs_service_name(args.service, args.version)
    strategies = [
        aws.ecs.ServiceCapacityProviderStrategyArgs(capacity_provider="FARGATE", base=1, weight=1)
    ]
    if args.spot_weight:
        strategies.append(
            aws.ecs.ServiceCapacityProviderStrategyArgs(
                capacity_provider="FARGATE_SPOT", weight=args.spot_weight
            )
        )
    service = aws.ecs.Service(
        f"{name}-service",
        name=service_name,
        cluster=args.cluster_arn,
        task_definition=task_definition.arn,
        desired_count=args.min_instances,
        capacity_provider_strategies=strategies,
        network_configuration={
            "subnets": args.subnet_ids,
            "security_groups": [args.security_group_id],
            "assign_public_ip": False,
        },
        load_balancers=[
            {
                "target_group_arn": args.target_group_arn,
                "container_name": SERVING,
                "container_port": SERVICE_PORT,
            }
        ],
        health_check_grace_period_seconds=120,
        deployment_circuit_breaker={"enable": True, "rollback": True},
        deployment_minimum_healthy_percent=100,
        deployment_maximum_percent=200,
        propagate_tags="SERVICE",
        enable_ecs_managed_tags=True,
        wait_for_steady_state=False,
        tags=tags(f"{name}-service"),
        opts=pulumi.ResourceOptions(
            parent=parent,
            # Autoscaling, the scaler and the activator own the count once it exists.
            ignore_changes=["desiredCount"],
            # A target group must belong to a listener (rule) before a service uses it.
            depends_on=args.depends_on,
        ),
    )
    return EcsService(log_group, task_definition, service, service_name)
