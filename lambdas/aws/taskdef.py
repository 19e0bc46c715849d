"""A version's ECS task definition, in RegisterTaskDefinition's shape.

Two containers: ``service`` (the flowhost serving runtime on ``SERVICE_PORT``,
health-checked on ``/healthz``, logging with awslogs to the service's log group under a
per-version stream prefix) and, when the envelope names one, ``adot-collector`` (the ADOT
collector, its config read from the platform's SSM parameter; OTLP in on 127.0.0.1,
X-Ray traces out). Tests validate the result against botocore's service model.
"""

from __future__ import annotations

from typing import Any

from flowhost.services.envelope import EcsEnvelope, ServiceEnvelope

__all__ = [
    "COLLECTOR",
    "SERVICE_PORT",
    "SERVING",
    "container_definitions",
    "task_definition",
    "task_family",
]

SERVING = "service"
COLLECTOR = "adot-collector"
SERVICE_PORT = 8080
_HEALTH = (
    "import urllib.request; "
    f"urllib.request.urlopen('http://127.0.0.1:{SERVICE_PORT}/healthz', timeout=4)"
)


def task_family(environment: str, service: str, number: int) -> str:
    return f"flowhost-{environment}-{service}-v{number}"


def container_definitions(
    ecs: EcsEnvelope, environment: dict[str, str], secrets: dict[str, str], stream: str
) -> list[dict[str, Any]]:
    """The serving container (and the collector, if any) of one version."""

    def logging(prefix: str) -> dict[str, Any]:
        return {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": ecs.log_group,
                "awslogs-region": ecs.region,
                "awslogs-stream-prefix": prefix,
            },
        }

    serving: dict[str, Any] = {
        "name": SERVING,
        "image": ecs.image,
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
        "stopTimeout": 30,
        "readonlyRootFilesystem": False,  # the runtime unpacks its code package
        "logConfiguration": logging(stream),
    }
    if secrets:
        serving["secrets"] = [{"name": k, "valueFrom": v} for k, v in sorted(secrets.items())]
    if ecs.collector_image is None or ecs.collector_config_parameter_arn is None:
        return [serving]
    # The collector only needs to have started: serving never waits on its health.
    serving["dependsOn"] = [{"containerName": COLLECTOR, "condition": "START"}]
    collector = {
        "name": COLLECTOR,
        "image": ecs.collector_image,
        "essential": False,  # losing telemetry must not stop serving
        "secrets": [
            {"name": "AOT_CONFIG_CONTENT", "valueFrom": ecs.collector_config_parameter_arn}
        ],
        "memoryReservation": 128,
        "logConfiguration": logging(f"{stream}-{COLLECTOR}"),
    }
    return [serving, collector]


def task_definition(
    envelope: ServiceEnvelope, number: int, environment: dict[str, str]
) -> dict[str, Any]:
    """The keyword arguments of ``RegisterTaskDefinition`` for version ``number``."""
    ecs = envelope.ecs
    if ecs is None:
        raise ValueError(f"{envelope.service}: a GPU service has no ECS task definition.")
    family = task_family(envelope.environment, envelope.service, number)
    return {
        "family": family,
        "taskRoleArn": ecs.task_role_arn,
        "executionRoleArn": ecs.execution_role_arn,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": str(ecs.cpu_units),
        "memory": str(ecs.memory_mib),
        "runtimePlatform": {"operatingSystemFamily": "LINUX", "cpuArchitecture": "X86_64"},
        "containerDefinitions": container_definitions(
            ecs, environment, dict(envelope.container_secrets), f"v{number}"
        ),
        "tags": [
            {"key": "flowhost:environment", "value": envelope.environment},
            {"key": "flowhost:service", "value": envelope.service},
            {"key": "flowhost:version", "value": str(number)},
            {"key": "flowhost:owner", "value": "control-plane"},
        ],
    }
