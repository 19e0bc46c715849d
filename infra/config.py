"""The platform stack's configuration: read once, validated, frozen.

Pulumi hands a program its stack config as ``flowhost:<key>`` -> string (objects and
lists as JSON). :func:`load_config` turns that mapping into :class:`PlatformConfig`;
a bad or unknown key raises :class:`PlatformConfigError` naming the key, the value and
the allowed values, before any resource is created.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from flowhost.errors import FlowhostError
from flowhost.infra.build_config import EnvironmentBuildSettings, PackageIndexSettings, masked
from flowhost.infra.ci_config import (
    GithubNames,
    GithubProviderArn,
    GithubRepository,
    ServiceNames,
    StateBackendUrl,
)
from flowhost.infra.metaflow_config import MetaflowSettings

__all__ = [
    "GPU_FAMILIES",
    "LOG_RETENTION_DAYS",
    "NAMESPACE",
    "MetaflowSettings",
    "PlatformConfig",
    "PlatformConfigError",
    "load_config",
]

NAMESPACE = "flowhost"

# The only values CloudWatch Logs accepts for a log group's retention.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827)
# EC2 instance families with NVIDIA GPUs that EKS's GPU AMIs support.
GPU_FAMILIES = ("g4dn", "g5", "g6", "g6e", "gr6", "p3", "p4d", "p4de", "p5", "p5e")
_INSTANCE_TYPE = re.compile(
    r"^([a-z][a-z0-9-]*)\.(nano|micro|small|medium|large|[0-9]*xlarge|metal[a-z0-9-]*)$"
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SLUG = re.compile(r"^[a-z][a-z0-9-]{0,15}$")
# registry[:port]/repository[/...]:tag and/or @sha256:digest (a tag or a digest required).
_REGISTRY = r"(?:(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)+|localhost)(?::[0-9]+)?/)?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    rf"^{_REGISTRY}{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?=[:@])(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@sha256:[0-9a-f]{64})?$"
)


class PlatformConfigError(FlowhostError):
    """The stack's ``flowhost:`` config has a bad, missing or unknown key."""

    code = "invalid_config"
    status = 400


class PlatformConfig(BaseModel):
    """Everything the platform program reads from ``Pulumi.<stack>.yaml``."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )

    environment: str
    owner: Annotated[str, Field(min_length=1, max_length=128)]
    alert_email: str

    # network
    vpc_cidr: str = "10.40.0.0/16"
    az_count: Annotated[int, Field(ge=2, le=3)] = 2
    nat_gateway: bool = False

    # storage and logs
    log_retention_days: int = 30
    async_ttl_days: Annotated[int, Field(ge=1, le=365)] = 7
    request_log_ttl_days: Annotated[int, Field(ge=1, le=3650)] = 30
    noncurrent_version_days: Annotated[int, Field(ge=1, le=3650)] = 30

    # database
    db_instance_class: str = "db.t4g.micro"
    db_engine_version: str = "16"
    db_allocated_storage_gb: Annotated[int, Field(ge=20, le=65536)] = 20
    db_max_allocated_storage_gb: Annotated[int, Field(ge=20, le=65536)] = 100
    db_multi_az: bool = False
    db_deletion_protection: bool = False
    db_backup_retention_days: Annotated[int, Field(ge=1, le=35)] = 7

    # compute
    eks_enabled: bool = False
    eks_version: str = "1.33"
    eks_api_access_cidrs: tuple[str, ...] = ()
    eks_system_instance_type: str = "t3.medium"
    gpu_instance_types: tuple[str, ...] = ("g5.xlarge",)
    gpu_max_nodes: Annotated[int, Field(ge=1, le=100)] = 2

    # edge and control plane
    authorizer: Literal["iam", "jwt"] = "iam"
    jwt_issuer: str | None = None
    jwt_audience: tuple[str, ...] = ()
    lambda_bundle: str = "build/lambda.zip"
    lambda_memory_mb: Annotated[int, Field(ge=128, le=10240)] = 1024
    scaler_schedule: str = "rate(1 minute)"
    queue_name_prefix: str = "flowhost"
    tracing_sample_rate: Annotated[float, Field(ge=0, le=1)] = 0.05
    callback_allow_private: bool = False  # async callbacks to non-public addresses (SSRF)

    # who may call which API route (infra/api_grants.py): invokers' services, () = all
    invoker_services: ServiceNames = ()

    # the CI identity (infra/ci_identity.py): None = no GitHub OIDC provider and CI roles
    github_repository: GithubRepository | None = None
    github_branches: GithubNames = ()
    github_environments: GithubNames = ()
    github_oidc_provider_arn: GithubProviderArn | None = None  # adopt the account's provider
    pulumi_state_backend: StateBackendUrl | None = None  # s3://bucket/prefix, for the CI roles

    # the serving runtime image: None = the platform builds and pushes it
    runtime_image: str | None = None

    # where services' Metaflow runs live: None = no Metaflow settings (see docs/aws.md)
    metaflow: MetaflowSettings | None = None

    environment_build: EnvironmentBuildSettings = EnvironmentBuildSettings()  # the build task
    package_index: PackageIndexSettings | None = None  # a private index builds install from

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: str) -> str:
        if not _SLUG.match(value):
            raise ValueError("must be a lowercase slug of up to 16 characters, e.g. dev or prod")
        return value

    @field_validator("alert_email")
    @classmethod
    def _email(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise ValueError("must be an email address, e.g. oncall@example.com")
        return value

    @field_validator("vpc_cidr")
    @classmethod
    def _vpc_cidr(cls, value: str) -> str:
        try:
            net = ipaddress.IPv4Network(value)
        except ValueError:
            raise ValueError("must be an IPv4 CIDR block such as 10.40.0.0/16") from None
        if not 16 <= net.prefixlen <= 20 or not net.is_private:
            raise ValueError("must be a private IPv4 block from /16 to /20, e.g. 10.40.0.0/16")
        return value

    @field_validator("eks_api_access_cidrs")
    @classmethod
    def _access_cidrs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in value:
            try:
                net = ipaddress.IPv4Network(cidr)
            except ValueError:
                raise ValueError(f"{cidr!r} is not an IPv4 CIDR block") from None
            if net.prefixlen == 0:
                raise ValueError("0.0.0.0/0 would open the Kubernetes API to everyone")
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            allowed = ", ".join(map(str, LOG_RETENTION_DAYS))
            raise ValueError(f"must be one of {allowed}")
        return value

    @field_validator("db_instance_class")
    @classmethod
    def _db_class(cls, value: str) -> str:
        if not value.startswith("db.") or not _INSTANCE_TYPE.match(value.removeprefix("db.")):
            raise ValueError("must be an RDS instance class such as db.t4g.micro or db.r6g.large")
        return value

    @field_validator("eks_system_instance_type")
    @classmethod
    def _system_type(cls, value: str) -> str:
        if not _INSTANCE_TYPE.match(value):
            raise ValueError("must be an EC2 instance type such as t3.medium")
        return value

    @field_validator("gpu_instance_types")
    @classmethod
    def _gpu_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("must list at least one GPU instance type, e.g. [g5.xlarge]")
        for item in value:
            match = _INSTANCE_TYPE.match(item)
            if match is None or match.group(1) not in GPU_FAMILIES:
                families = ", ".join(GPU_FAMILIES)
                raise ValueError(
                    f"{item!r} is not a GPU instance type; allowed families: {families}"
                )
        return value

    @field_validator("scaler_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        if not re.match(r"^(rate\(.+\)|cron\(.+\))$", value):
            raise ValueError("must be an EventBridge schedule, rate(...) or cron(...)")
        return value

    @field_validator("runtime_image")
    @classmethod
    def _runtime_image(cls, value: str | None) -> str | None:
        match = _IMAGE.match(value) if value is not None else None
        if value is not None and (match is None or match["tag"] == "latest"):
            raise ValueError(
                "must be an image reference with a fixed tag or a digest, e.g. "
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/flowhost-runtime:0.1.0 (not "
                ":latest); or remove the key to have the platform build the image"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PlatformConfig:
        if self.db_max_allocated_storage_gb < self.db_allocated_storage_gb:
            raise ValueError(
                "flowhost:dbMaxAllocatedStorageGb must be at least flowhost:dbAllocatedStorageGb"
            )
        if self.authorizer == "jwt" and (not self.jwt_issuer or not self.jwt_audience):
            raise ValueError(
                "flowhost:authorizer is jwt, so flowhost:jwtIssuer and flowhost:jwtAudience "
                "must be set"
            )
        if self.jwt_issuer is not None and not self.jwt_issuer.startswith("https://"):
            raise ValueError("flowhost:jwtIssuer must be an https:// URL")
        github = ("github_branches", "github_environments", "github_oidc_provider_arn")
        if self.github_repository is None and any(getattr(self, k) for k in github):
            raise ValueError(
                "flowhost:githubBranches, flowhost:githubEnvironments and "
                "flowhost:githubOidcProviderArn describe the CI identity, which needs "
                "flowhost:githubRepository (owner/repo): set it, or remove those keys"
            )
        if self.eks_enabled and not self.nat_gateway:
            raise ValueError(
                "flowhost:eksEnabled is true, so flowhost:natGateway must be true (got false): "
                "the GPU nodes pull the add-ons' images (NVIDIA device plugin, KEDA, cluster "
                "autoscaler) from public registries that no VPC endpoint serves. Set "
                "flowhost:natGateway: true, or flowhost:eksEnabled: false"
            )
        return self


def _field_key(loc: tuple[int | str, ...]) -> str:
    """``flowhost:<key>``, or ``flowhost:<key>.<subkey>`` inside an object (``_NESTED``)."""
    if not loc:
        return NAMESPACE
    head = str(loc[0])
    field = PlatformConfig.model_fields.get(head)
    alias = field.alias if field is not None and field.alias else head
    nested = _NESTED.get(head, PlatformConfig).model_fields
    rest = "".join(
        f".{nested[part].alias if part in nested else part}"
        for part in loc[1:]
        if isinstance(part, str)
    )
    return f"{NAMESPACE}:{alias}{rest}"


_NESTED: dict[str, type[BaseModel]] = {  # objects in the config, for their keys' names
    "metaflow": MetaflowSettings,
    "environmentBuild": EnvironmentBuildSettings,
    "packageIndex": PackageIndexSettings,
}


def _decode(value: object) -> object:
    """Pulumi passes objects and lists as JSON strings; everything else stays a string."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def load_config(raw: Mapping[str, object], stack: str) -> PlatformConfig:
    """Validate the stack's ``flowhost:*`` keys (others, like ``aws:region``, are ignored)."""
    prefix = f"{NAMESPACE}:"
    data = {k.removeprefix(prefix): _decode(v) for k, v in raw.items() if k.startswith(prefix)}
    try:
        return PlatformConfig.model_validate(data)
    except ValidationError as exc:
        lines: list[str] = []
        for err in exc.errors(include_url=False):
            key = _field_key(err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            if not err["loc"]:  # a rule across keys: the message names them
                lines.append(f"Pulumi.{stack}.yaml: {msg}.")
            elif err["type"] == "missing":
                lines.append(f"Pulumi.{stack}.yaml: {key} is required. Set it in the stack file.")
            elif err["type"] == "extra_forbidden":
                inner = _NESTED.get(str(err["loc"][0])) if len(err["loc"]) > 1 else None
                fields = (inner or PlatformConfig).model_fields
                known = ", ".join(sorted(f.alias or n for n, f in fields.items()))
                lines.append(
                    f"Pulumi.{stack}.yaml: {key} is not a platform setting. Known keys: {known}."
                )
            else:
                lines.append(
                    f"Pulumi.{stack}.yaml: {key}: {msg} (got {masked(repr(err['input']))}). "
                    f"Fix it in the stack file."
                )
        raise PlatformConfigError("\n".join(lines)) from None
