"""A service's envelope in its stack: the SSM parameter the control plane reads.

``ServiceSpec`` owns the envelope (one owner for every resource): it writes
``ServiceEnvelope(...).model_dump_json()`` (``flowhost.services.envelope``, the contract
both sides import) to ``/flowhost/<env>/services/<service>``, built from the platform's
outputs (cluster, subnets, security group, VPC, load balancer, images, collector config,
bucket, key, queue prefix, Metaflow settings) and the service's own resources (roles, log
group) and sizes. The control plane reads it at every deploy, so a ``pulumi up`` that
changes it reaches the next version. A String parameter, Advanced tier only past 4 KB.
A GPU service's envelope has ``ecs=None`` (its stack runs its versions on EKS), so the
control plane refuses to deploy it with a line that says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from flowhost.infra.platform_ref import PlatformRef
from flowhost.infra.service.package import container_environment, container_secrets
from flowhost.infra.tags import Tagging
from flowhost.services.envelope import (
    EcsEnvelope,
    QueueEnvelope,
    ServiceEnvelope,
    envelope_parameter,
)

__all__ = [
    "STANDARD_LIMIT",
    "EcsArgs",
    "EnvelopeArgs",
    "create_envelope",
    "envelope_json",
    "tier_for",
]

STANDARD_LIMIT = 4096  # bytes: SSM's Standard tier; Advanced holds up to 8 KB


@dataclass(frozen=True)
class EnvelopeArgs:
    service: str
    platform: PlatformRef
    region: pulumi.Input[str]
    environment: Mapping[str, pulumi.Input[str]]  # service_code.shared_environment
    max_receive_count: int
    retention_seconds: int
    visibility_timeout_seconds: int
    tagging: Tagging
    ecs: EcsArgs | None  # None: a GPU service


@dataclass(frozen=True)
class EcsArgs:
    """A CPU service's part of the envelope: its roles, log group, image and sizes."""

    task_role_arn: pulumi.Input[str]
    execution_role_arn: pulumi.Input[str]
    log_group_name: pulumi.Input[str]
    image: pulumi.Input[str]
    adot_parameter_arn: pulumi.Input[str]
    cpu_units: int
    memory_mib: int
    spot_weight: int
    deregistration_delay_seconds: int
    requests_per_target_per_minute: int


def envelope_json(args: EnvelopeArgs, v: Mapping[str, Any]) -> str:
    """The envelope as JSON, from ``args`` and the resolved values ``v``."""
    env = {k: str(v[f"env:{k}"]) for k in args.environment}
    secret = str(v["metaflow_auth_secret_arn"] or "")
    sizes = args.ecs
    ecs = (
        None
        if sizes is None
        else EcsEnvelope(
            cluster=v["cluster"],
            subnets=tuple(v["subnets"]),
            security_groups=(v["security_group"],),
            vpc_id=v["vpc_id"],
            load_balancer_arn=v["load_balancer_arn"],
            task_role_arn=v["task_role_arn"],
            execution_role_arn=v["execution_role_arn"],
            log_group=v["log_group"],
            region=v["region"],
            image=v["image"],
            collector_image=v["collector_image"] or None,
            collector_config_parameter_arn=v["adot_parameter_arn"],
            cpu_units=sizes.cpu_units,
            memory_mib=sizes.memory_mib,
            spot_weight=sizes.spot_weight,
            deregistration_delay_seconds=sizes.deregistration_delay_seconds,
            requests_per_target_per_minute=sizes.requests_per_target_per_minute,
        )
    )
    envelope = ServiceEnvelope(
        service=args.service,
        environment=args.platform.environment,
        bucket=v["bucket"],
        container_env=container_environment(env, v["metaflow_environment"] or {},
                                            auth_secret_arn=secret),
        container_secrets=container_secrets(secret),
        queues=QueueEnvelope(
            prefix=v["queue_prefix"],
            kms_key_arn=v["kms_key_arn"],
            max_receive_count=args.max_receive_count,
            retention_seconds=args.retention_seconds,
            visibility_timeout_seconds=args.visibility_timeout_seconds,
        ),
        ecs=ecs,
    )  # fmt: skip
    return envelope.model_dump_json()


def tier_for(value: str) -> str:
    return "Advanced" if len(value.encode()) > STANDARD_LIMIT else "Standard"


def create_envelope(name: str, args: EnvelopeArgs, parent: pulumi.Resource) -> aws.ssm.Parameter:
    """The envelope parameter (its value resolves once the platform's outputs do)."""
    platform = args.platform
    inputs: dict[str, pulumi.Input[Any]] = {
        "bucket": platform.bucket_name,
        "metaflow_environment": platform.metaflow_environment,
        "metaflow_auth_secret_arn": platform.metaflow_auth_secret_arn,
        "queue_prefix": platform.queue_name_prefix,
        "kms_key_arn": platform.kms_key_arn,
        **{f"env:{k}": value for k, value in args.environment.items()},
    }
    if args.ecs is not None:
        inputs |= {
            "cluster": platform.ecs_cluster_arn,
            "subnets": platform.private_subnet_ids,
            "security_group": platform.service_security_group_id,
            "vpc_id": platform.vpc_id,
            "load_balancer_arn": platform.alb_arn,
            "task_role_arn": args.ecs.task_role_arn,
            "execution_role_arn": args.ecs.execution_role_arn,
            "log_group": args.ecs.log_group_name,
            "region": args.region,
            "image": args.ecs.image,
            "collector_image": platform.collector_image,
            "adot_parameter_arn": args.ecs.adot_parameter_arn,
        }
    value = pulumi.Output.all(**{k: pulumi.Output.from_input(i) for k, i in inputs.items()}).apply(
        lambda v: envelope_json(args, v)
    )
    return aws.ssm.Parameter(
        f"{name}-envelope",
        name=envelope_parameter(platform.environment, args.service),
        description=f"flowhost service {args.service}: its envelope, read by the control plane",
        type="String",
        data_type="text",
        value=value,
        tier=value.apply(tier_for),
        tags=args.tagging.tags(f"{name}-envelope"),
        opts=pulumi.ResourceOptions(parent=parent),
    )
