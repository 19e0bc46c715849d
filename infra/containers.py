"""The ECS cluster CPU services run on: Fargate and Fargate Spot, Container Insights on.

The platform creates no ECS services: user stacks add them (``ServiceSpec``) with the
cluster, subnets, security group and boundary this stack exports. Its one task definition
is the environment build's (:mod:`flowhost.infra.environment_builds`). ``FARGATE_SIZES``
are the task sizes Fargate accepts, for the build task and for services alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from flowhost.infra.tags import Tagging

__all__ = ["FARGATE_SIZES", "Containers", "ContainersArgs"]

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


@dataclass(frozen=True)
class ContainersArgs:
    cluster_name: str
    tagging: Tagging


class Containers(pulumi.ComponentResource):
    """ECS cluster with FARGATE (default) and FARGATE_SPOT capacity providers."""

    def __init__(
        self, name: str, args: ContainersArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowhost:platform:Containers", name, None, opts)
        cluster = aws.ecs.Cluster(
            f"{name}-cluster",
            name=args.cluster_name,
            settings=[{"name": "containerInsights", "value": "enabled"}],
            tags=args.tagging.tags(args.cluster_name),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.ecs.ClusterCapacityProviders(
            f"{name}-capacity",
            cluster_name=cluster.name,
            capacity_providers=["FARGATE", "FARGATE_SPOT"],
            default_capacity_provider_strategies=[
                {"capacity_provider": "FARGATE", "base": 0, "weight": 1}
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.cluster_arn = cluster.arn
        self.cluster_name = cluster.name
        self.register_outputs({"cluster_arn": cluster.arn, "cluster_name": cluster.name})
