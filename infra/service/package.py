"""A service's code package and the serving container's environment.

The package is the service class's directory (or ``code_dir``) as the deterministic
archive of ``flowhost.services.packaging``, uploaded at ``package_key(digest)`` in the
platform bucket. The environment is the contract between ``ServiceSpec`` and the
container's bootstrap (docs/aws.md, "ServiceSpec"): the same on ECS and EKS.
"""

from __future__ import annotations

import inspect
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pulumi

from flowhost.infra.metaflow_access import AUTH_KEY_VARIABLE, AUTH_SECRET_VARIABLE
from flowhost.infra.network import SERVICE_PORT
from flowhost.infra.platform_ref import PlatformRef
from flowhost.infra.service.roles import ASYNC_PREFIX, METAFLOW_PREFIX
from flowhost.services.definition import ServiceDefinition
from flowhost.services.spec import WebServiceSpec

__all__ = [
    "COLLECTOR_OTLP",
    "cached_package",
    "code_location",
    "container_environment",
    "container_secrets",
    "service_environment",
    "shared_environment",
]

COLLECTOR_OTLP = "http://127.0.0.1:4318"


def code_location(
    spec: type[WebServiceSpec] | ServiceDefinition,
    definition: ServiceDefinition,
    code_dir: Path | None,
) -> tuple[Path, str]:
    """(the directory to package, the entrypoint relative to it)."""
    source: Path | None = None
    if not isinstance(spec, ServiceDefinition):
        found = inspect.getsourcefile(spec)
        source = Path(found).resolve() if found else None
    if code_dir is None:
        if source is None:
            raise ValueError(
                f"ServiceSpec {definition.name!r}: code_dir is required when spec is a "
                "ServiceDefinition (got none). Pass code_dir=<the service's directory>."
            )
        return source.parent, definition.entrypoint
    root = code_dir.resolve()
    if not root.is_dir():
        raise ValueError(
            f"ServiceSpec {definition.name!r}: code_dir is not a directory (got {code_dir}). "
            "Pass the directory that holds the service's file."
        )
    if source is None:
        return root, definition.entrypoint
    if not source.is_relative_to(root):
        raise ValueError(
            f"ServiceSpec {definition.name!r}: the class's file {source} is not under "
            f"code_dir (got {code_dir}). Pass a code_dir that contains it."
        )
    return root, f"{source.relative_to(root).as_posix()}:{definition.class_name}"


def shared_environment(
    definition: ServiceDefinition, platform: PlatformRef, *, region: pulumi.Input[str]
) -> dict[str, pulumi.Input[str]]:
    """What every version's serving container gets from its service and platform (the
    envelope's ``container_env``; the control plane adds each version's own variables,
    ``flowhost.services.envelope.version_environment``)."""
    service = definition.name
    env: dict[str, pulumi.Input[str]] = {
        "FLOWHOST_PORT": str(SERVICE_PORT),
        "FLOWHOST_KMS_KEY_ARN": platform.kms_key_arn,
        "AWS_REGION": region,
        "OTEL_SERVICE_NAME": service,
        "OTEL_EXPORTER_OTLP_ENDPOINT": COLLECTOR_OTLP,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_PROPAGATORS": "tracecontext,baggage",
        "OTEL_RESOURCE_ATTRIBUTES": pulumi.Output.concat(
            "flowhost.service=", service, ",flowhost.environment=", platform.environment
        ),
    }
    if definition.artifacts is not None:
        env["METAFLOW_DEFAULT_DATASTORE"] = "s3"
        env["METAFLOW_DATASTORE_SYSROOT_S3"] = pulumi.Output.concat(
            "s3://", platform.bucket_name, "/", METAFLOW_PREFIX.rstrip("/")
        )
    return env


def service_environment(
    definition: ServiceDefinition,
    platform: PlatformRef,
    *,
    version: int,
    run: str | None,
    package: pulumi.Input[str],
    digest: str,
    entrypoint: str,
    queue_url: pulumi.Input[str],
    queue_name: pulumi.Input[str],
    dead_letter_url: pulumi.Input[str],
    region: pulumi.Input[str],
    environment_digest: str | None = None,
) -> dict[str, pulumi.Input[str]]:
    """One version's whole serving environment (a GPU service's, which its stack runs;
    see docs/aws.md): the shared part and the version's own."""
    service, label = definition.name, f"v{version}"
    env = shared_environment(definition, platform, region=region)
    env.update({
        "FLOWHOST_SERVICE": service,
        "FLOWHOST_VERSION": label,
        "FLOWHOST_ENVIRONMENT": platform.environment,
        "FLOWHOST_CODE_PACKAGE": package,
        "FLOWHOST_CODE_DIGEST": digest,
        "FLOWHOST_ENTRYPOINT": entrypoint,
        "FLOWHOST_BUCKET": platform.bucket_name,
        "FLOWHOST_ASYNC_PREFIX": f"{ASYNC_PREFIX}{service}/",
        "FLOWHOST_QUEUE_NAME": queue_name,
        "FLOWHOST_QUEUE_URL": queue_url,
        "FLOWHOST_DEAD_LETTER_QUEUE_URL": dead_letter_url,
        "OTEL_RESOURCE_ATTRIBUTES": pulumi.Output.concat(
            "flowhost.service=", service, ",flowhost.version=", label,
            ",flowhost.environment=", platform.environment,
        ),
    })  # fmt: skip
    binding = definition.artifacts
    pinned = run or (binding.run if binding else None)
    if pinned is not None:
        env["FLOWHOST_RUN"] = pinned
    if binding is not None and binding.flow is not None:
        env["FLOWHOST_ARTIFACT_FLOW"] = binding.flow
    if environment_digest is not None:  # the built environment the bootstrap unpacks
        env["FLOWHOST_ENVIRONMENT_DIGEST"] = environment_digest
    return env


# What service_environment sets for a bound service when the platform has no Metaflow
# settings: the platform bucket's metaflow/ folder as the S3 datastore.
_BUCKET_DATASTORE = ("METAFLOW_DEFAULT_DATASTORE", "METAFLOW_DATASTORE_SYSROOT_S3")


def container_environment(
    environment: Mapping[str, str],
    metaflow: Mapping[str, str],
    *,
    auth_secret_arn: str = "",
    injects_secrets: bool = True,
) -> dict[str, str]:
    """The serving container's whole environment (resolved values): ``environment``
    (:func:`service_environment`) with the platform's Metaflow settings
    (``PlatformRef.metaflow_environment``), which replace the platform-bucket datastore.
    Where the runtime cannot have the auth key injected (EKS: ``injects_secrets=False``),
    it gets the secret's ARN to read the key itself."""
    if not metaflow:
        return dict(environment)
    env = {k: v for k, v in environment.items() if k not in _BUCKET_DATASTORE}
    env.update(metaflow)
    if auth_secret_arn and not injects_secrets:
        env[AUTH_SECRET_VARIABLE] = auth_secret_arn
    return env


def container_secrets(auth_secret_arn: str) -> dict[str, str]:
    """Variables ECS fills from Secrets Manager (name -> ARN): the metadata service's key."""
    return {AUTH_KEY_VARIABLE: auth_secret_arn} if auth_secret_arn else {}


def cached_package(digest: str, archive: bytes) -> Path:
    """The package archive as a file (a FileAsset keeps only its hash in the state)."""
    folder = Path(tempfile.gettempdir()) / "flowhost-packages"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{digest}.tar.gz"
    if not path.exists() or path.read_bytes() != archive:
        path.write_bytes(archive)
    return path
