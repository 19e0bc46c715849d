"""Compute: accelerated instance types only from the environment's allow-list; ECS
services whose count autoscaling owns leave desiredCount to it."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Final

from policies.model import (
    PolicyConfig,
    Resource,
    ResourceRule,
    StackRule,
    as_list,
    by_type,
    is_unknown,
)

EKS_NODE_GROUP: Final = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE: Final = "aws:ec2/launchTemplate:LaunchTemplate"
EC2_INSTANCE: Final = "aws:ec2/instance:Instance"
ECS_SERVICE: Final = "aws:ecs/service:Service"
SCALING_TARGET: Final = "aws:appautoscaling/target:Target"

# Accelerated families: NVIDIA GPUs (p*, g*, gr*), Inferentia (inf*), Trainium (trn*),
# Gaudi (dl*). The family is the part of the type before the dot: "g5" in "g5.xlarge".
# Graviton families put the "g" last ("m7g"), so they never match.
ACCELERATED_FAMILY: Final = re.compile(r"^(p|g|gr|inf|trn|dl)\d")


def is_accelerated(instance_type: str) -> bool:
    return ACCELERATED_FAMILY.match(instance_type.split(".", 1)[0].lower()) is not None


def _instance_types(resource: Resource) -> list[str]:
    if resource.type == EKS_NODE_GROUP:
        values = as_list(resource.props.get("instanceTypes"))
    else:
        values = [resource.props.get("instanceType")]
    return [v for v in values if isinstance(v, str) and not is_unknown(v)]


def check_gpu_instance_types(resource: Resource, config: PolicyConfig) -> Iterator[str]:
    allowed = config.allowed_gpu_instance_types
    for instance_type in _instance_types(resource):
        if is_accelerated(instance_type) and instance_type not in allowed:
            shown = ", ".join(sorted(allowed)) or "none"
            yield (
                f"{resource.where}: GPU instance type {instance_type!r} is not allowed in "
                f"environment {config.environment!r} (allowed: {shown}). Use an allowed type, "
                "or add it to allowedGpuInstanceTypes in this environment's policy config."
            )


DESIRED_COUNT_NAMES: Final = frozenset({"desiredCount", "desired_count"})


def _service_part(resource_id: object) -> str | None:
    """``service/<cluster>/<service>`` -> ``<service>``."""
    if not isinstance(resource_id, str):
        return None
    parts = resource_id.split("/")
    if len(parts) == 3 and parts[0] == "service":
        return parts[2]
    return None


def _scales(target: Resource, service: Resource) -> bool:
    if target.depends_on(service, "resourceId"):
        return True
    name = _service_part(target.props.get("resourceId"))
    if name is None:
        return False
    service_name = service.props.get("name")
    if isinstance(service_name, str):
        return service_name == name
    # No name input (autonamed): the service's ARN id ends with it, or, under mocks, the
    # program named the service after its logical name.
    if service.id is not None and service.id.endswith(f"/{name}"):
        return True
    return service.name == name


def check_autoscaled_service_ignores_desired_count(
    resources: Sequence[Resource], config: PolicyConfig
) -> Iterator[tuple[Resource, str]]:
    del config
    targets = [
        t
        for t in by_type(resources, SCALING_TARGET)
        if t.props.get("serviceNamespace") == "ecs"
        or t.props.get("scalableDimension") == "ecs:service:DesiredCount"
    ]
    for service in by_type(resources, ECS_SERVICE):
        owners = [t for t in targets if _scales(t, service)]
        if owners and not DESIRED_COUNT_NAMES & set(service.ignore_changes):
            yield (
                service,
                f"{service.where}: autoscaling target '{owners[0].name}' owns its count, but "
                f"desiredCount is not in ignore_changes (got {list(service.ignore_changes)}). "
                "Create the service with opts=ResourceOptions(ignore_changes=['desiredCount']) "
                "so a deploy never resets the running count.",
            )


RULES: Final = (
    ResourceRule(
        name="gpu-instance-types-allowed",
        description="GPU and other accelerated instance types come from the environment's "
        "allow-list (allowedGpuInstanceTypes).",
        check=check_gpu_instance_types,
        types=frozenset({EKS_NODE_GROUP, LAUNCH_TEMPLATE, EC2_INSTANCE}),
        config_keys=("environment", "allowedGpuInstanceTypes"),
    ),
    StackRule(
        name="ecs-autoscaled-service-ignores-desired-count",
        description="ECS services scaled by an Application Auto Scaling target ignore changes "
        "to desiredCount.",
        check=check_autoscaled_service_ignores_desired_count,
    ),
)
