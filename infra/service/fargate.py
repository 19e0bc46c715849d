"""A CPU service on ECS Fargate, as far as its stack owns it: its size and its log group.

The control plane creates each version's task definition and ECS service from the
service's envelope (``flowhost.lambdas.aws.taskdef``); the stack gives it the Fargate size
(``fargate_size``: the smallest task that fits the service's ``Resources``) and the
service's one log group, ``<serviceLogGroupPrefix><service>``, where every version logs
with the stream prefix ``v<N>`` (and ``v<N>-adot-collector``).
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from flowhost.infra.containers import FARGATE_SIZES
from flowhost.infra.tags import Tagging

__all__ = ["COLLECTOR", "FARGATE_SIZES", "SERVING", "create_log_group", "fargate_size"]

SERVING = "service"  # the containers' names, as flowhost.lambdas.aws.taskdef
COLLECTOR = "adot-collector"


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


def create_log_group(
    name: str,
    service: str,
    prefix: pulumi.Input[str],
    retention_days: int,
    tagging: Tagging,
    parent: pulumi.Resource,
) -> aws.cloudwatch.LogGroup:
    """``<serviceLogGroupPrefix><service>`` (the boundary allows only that prefix)."""
    return aws.cloudwatch.LogGroup(
        f"{name}-logs",
        name=pulumi.Output.concat(prefix, service),
        retention_in_days=retention_days,
        tags=tagging.tags(f"{name}-logs"),
        opts=pulumi.ResourceOptions(parent=parent),
    )
