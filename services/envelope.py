"""A service's envelope on AWS: what its stack owns, handed to the control plane.

One owner for every resource: a user stack's ``ServiceSpec`` owns the service's
envelope (roles, log group, dashboards, alarms, scaling bounds and the settings below);
the control plane owns everything per version (queues, task definition, ECS service,
target group, listener rules), created from the version record and this envelope.

The stack writes the envelope as JSON to the SSM parameter
``envelope_parameter(environment, service)``; the control plane reads it at every
deploy, so a ``pulumi up`` that changes it reaches the next version. Both sides import
this module: the shape is the contract.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from flowhost.services.packaging import package_key

__all__ = [
    "ENVELOPE_ROOT",
    "EcsEnvelope",
    "QueueEnvelope",
    "ServiceEnvelope",
    "envelope_parameter",
    "version_environment",
]

ENVELOPE_ROOT = "/flowhost/{environment}/services/"
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")

_Arn = Annotated[str, Field(pattern=r"^arn:aws[\w-]*:")]


def envelope_parameter(environment: str, service: str) -> str:
    """The SSM parameter holding ``service``'s envelope on platform ``environment``."""
    for what, value in (("environment", environment), ("service", service)):
        if not _NAME.match(value):
            raise ValueError(
                f"envelope parameter: the {what} must match [a-z][a-z0-9-]* (got {value!r}). "
                "Use the platform's environment and the service's name."
            )
    return ENVELOPE_ROOT.format(environment=environment) + service


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class QueueEnvelope(_Model):
    """How the control plane creates each version's queue and dead-letter queue."""

    prefix: str = Field(description="the platform's queue name prefix")
    kms_key_arn: _Arn | None = None
    max_receive_count: Annotated[int, Field(ge=1, le=1000)] = 5
    retention_seconds: Annotated[int, Field(ge=60, le=1_209_600)] = 345_600
    visibility_timeout_seconds: Annotated[int, Field(ge=0, le=43_200)] = 30


class EcsEnvelope(_Model):
    """Where and how a CPU service's versions run on ECS Fargate."""

    cluster: str = Field(min_length=1, description="the platform's ECS cluster (name or ARN)")
    subnets: tuple[str, ...] = Field(min_length=1)
    security_groups: tuple[str, ...] = Field(min_length=1)
    vpc_id: str = Field(min_length=1)
    load_balancer_arn: _Arn
    task_role_arn: _Arn
    execution_role_arn: _Arn
    log_group: str = Field(min_length=1, description="the service's log group")
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    image: str = Field(min_length=1, description="the serving runtime image")
    collector_image: str | None = Field(default=None, description="the ADOT collector image")
    collector_config_parameter_arn: _Arn | None = None
    cpu_units: Annotated[int, Field(ge=256, le=16384)]
    memory_mib: Annotated[int, Field(ge=512, le=122_880)]
    spot_weight: Annotated[int, Field(ge=0, le=1000)] = 0
    deregistration_delay_seconds: Annotated[int, Field(ge=0, le=3600)] = 30
    health_check_grace_seconds: Annotated[int, Field(ge=0, le=2_147_483_647)] = 120
    requests_per_target_per_minute: Annotated[int, Field(ge=1)] = 480


class ServiceEnvelope(_Model):
    """A service's envelope on one platform environment."""

    service: str = Field(pattern=r"^[a-z][a-z0-9-]*$", max_length=63)
    environment: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    bucket: str = Field(min_length=3, max_length=63, description="the platform bucket")
    container_env: dict[str, str] = Field(
        default_factory=dict[str, str],
        description="the serving container's environment shared by every version",
    )
    container_secrets: dict[str, _Arn] = Field(
        default_factory=dict[str, str],
        description="environment variables ECS fills from Secrets Manager (name -> ARN)",
    )
    queues: QueueEnvelope
    ecs: EcsEnvelope | None = Field(
        default=None, description="None for a GPU service (EKS): its stack runs it"
    )


def version_environment(
    envelope: ServiceEnvelope,
    *,
    number: int,
    digest: str,
    entrypoint: str,
    run: str | None,
    artifact_flow: str | None,
    queue_name: str,
    queue_url: str,
    dead_letter_url: str,
    environment_digest: str | None = None,
) -> dict[str, str]:
    """The serving container's whole environment for version ``number`` (docs/aws.md,
    "The container's environment"): the envelope's, plus what is the version's own."""
    env = dict(envelope.container_env)
    env.update(
        {
            "FLOWHOST_SERVICE": envelope.service,
            "FLOWHOST_VERSION": f"v{number}",
            "FLOWHOST_ENVIRONMENT": envelope.environment,
            "FLOWHOST_BUCKET": envelope.bucket,
            "FLOWHOST_CODE_PACKAGE": f"s3://{envelope.bucket}/{package_key(digest)}",
            "FLOWHOST_CODE_DIGEST": digest,
            "FLOWHOST_ENTRYPOINT": entrypoint,
            "FLOWHOST_ASYNC_PREFIX": f"async/{envelope.service}/",
            "FLOWHOST_QUEUE_NAME": queue_name,
            "FLOWHOST_QUEUE_URL": queue_url,
            "FLOWHOST_DEAD_LETTER_QUEUE_URL": dead_letter_url,
        }
    )
    if envelope.queues.kms_key_arn is not None:
        env["FLOWHOST_KMS_KEY_ARN"] = envelope.queues.kms_key_arn
    if environment_digest is not None:  # the version's built environment, fetched at start
        env["FLOWHOST_ENVIRONMENT_DIGEST"] = environment_digest
    if run is not None:
        env["FLOWHOST_RUN"] = run
    if artifact_flow is not None:
        env["FLOWHOST_ARTIFACT_FLOW"] = artifact_flow
    return env
