"""What the serving container is told: the environment contract ``ServiceSpec`` sets on the
service container (``infra/service_code.py``, docs/aws.md "The container's environment"),
plus a few optional knobs with working defaults, read once and checked.

A missing or bad variable is one line naming the variable, its value and the fix (the
bootstrap prints it and exits with 2), never a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from flowhost.errors import FlowhostError
from flowhost.lambdas.async_requests.settings import AsyncSettings
from flowhost.lambdas.store.requests import MAX_ASYNC_TIMEOUT
from flowhost.services.runtime.settings import RuntimeSettings

__all__ = ["CONTRACT", "KNOBS", "OPTIONAL", "ContainerSettings", "ContainerSettingsError"]

_DEFAULTS = AsyncSettings()
_S3_URI = re.compile(r"s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>[^\s]+)")
_DIGEST = re.compile(r"sha256-[0-9a-f]{64}")
_CLASS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# What ServiceSpec sets (required unless marked optional), and how to fix a bad value.
CONTRACT: dict[str, str] = {
    "FLOWHOST_SERVICE": "Set the service's name, e.g. sentiment",
    "FLOWHOST_VERSION": "Set the version label v<N>, e.g. v3",
    "FLOWHOST_ENVIRONMENT": "Set the platform's environment, e.g. prod",
    "FLOWHOST_PORT": "Set the TCP port to serve on, 1-65535 (ServiceSpec uses 8080)",
    "FLOWHOST_CODE_PACKAGE": "Set the package's S3 URI, s3://<bucket>/packages/<digest>.tar.gz",
    "FLOWHOST_CODE_DIGEST": "Set the package's digest, sha256-<64 lowercase hex digits>",
    "FLOWHOST_ENTRYPOINT": "Set <file>.py:<Class>, relative to the unpacked package",
    "FLOWHOST_RUN": "Set a Metaflow run pathspec <Flow>/<run id>, or leave it unset "
    "(optional: the binding is then resolved at start)",
    "FLOWHOST_ARTIFACT_FLOW": "Set the flow the class's Artifacts(flow=...) names, or leave "
    "it unset (optional)",
    "FLOWHOST_METAFLOW_NAMESPACE": "Set the Metaflow namespace runs are read in, e.g. "
    "production:trainflow-0-abcd (optional: else Metaflow's default, user:<USERNAME>)",
    "FLOWHOST_METAFLOW_AUTH_SECRET_ARN": "Set the ARN of the secret holding the metadata "
    "service's auth key, or leave it unset when METAFLOW_SERVICE_AUTH_KEY is injected "
    "(optional)",
    "FLOWHOST_ENVIRONMENT_DIGEST": "Set the version's environment digest, sha256-<64 lowercase "
    "hex digits>, or leave it unset when the service declares no environment (optional)",
    "FLOWHOST_BUCKET": "Set the platform bucket's name",
    "FLOWHOST_KMS_KEY_ARN": "Set the platform KMS key's ARN",
    "FLOWHOST_ASYNC_PREFIX": "Set async/<service>/ (the prefix async payloads and results "
    "live under)",
    "FLOWHOST_QUEUE_NAME": "Set the version's SQS queue name",
    "FLOWHOST_QUEUE_URL": "Set the version's SQS queue URL, https://sqs.<region>..."
    "/<account>/<name>",
    "FLOWHOST_DEAD_LETTER_QUEUE_URL": "Set the version's dead-letter queue URL, "
    "https://sqs.<region>.../<account>/<name>-dlq",
    "AWS_REGION": "Set the stack's region, e.g. eu-west-1",
}
# Optional knobs of the container itself (defaults in ContainerSettings).
KNOBS: dict[str, str] = {
    "FLOWHOST_HOST": "Set the address to bind, e.g. 0.0.0.0 (the default)",
    "FLOWHOST_RESULT_TTL": f"Set the seconds async results are kept, 60-{30 * 86400} "
    f"(default {_DEFAULTS.result_ttl:g})",
    "FLOWHOST_ASYNC_VISIBILITY": f"Set the seconds a claimed job stays hidden between "
    f"heartbeats, 3-{MAX_ASYNC_TIMEOUT:g} (default {_DEFAULTS.visibility:g})",
    "FLOWHOST_ASYNC_RETRY_BACKOFF": f"Set the first retry delay in seconds, 0-300 "
    f"(default {_DEFAULTS.retry_backoff:g})",
    "FLOWHOST_ASYNC": "Set on (take async jobs from the queue, the default) or off",
    "FLOWHOST_METRICS": "Set emf (EMF lines on stdout too, the default) or prometheus",
    "FLOWHOST_METRICS_INTERVAL": "Set the seconds between EMF flushes, 1-3600 (default 60)",
    "FLOWHOST_THREADS": "Set the threads for def endpoints, 1-1024 (default 32)",
    "FLOWHOST_CODE_DIR": "Set an absolute, writable directory (default /tmp/flowhost/code)",
    "FLOWHOST_ENV_CACHE": "Set an absolute, writable directory (default /tmp/flowhost/envs; "
    "on EKS an emptyDir or a node cache)",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "Set the collector's OTLP/HTTP base URL, e.g. "
    "http://127.0.0.1:4318 (the ADOT sidecar; unset: no traces)",
    "FLOWHOST_TRACE_SAMPLE_RATIO": "Set the share of new traces recorded, 0-1 (default 0.05; "
    "a caller's sampled traceparent is always followed)",
}
# The variables that may be unset: the binding's pin, the platform's Metaflow settings, knobs.
OPTIONAL = frozenset(
    {"FLOWHOST_RUN", "FLOWHOST_ARTIFACT_FLOW", "FLOWHOST_METAFLOW_NAMESPACE",
     "FLOWHOST_METAFLOW_AUTH_SECRET_ARN", "FLOWHOST_ENVIRONMENT_DIGEST", *KNOBS}
)  # fmt: skip
_UNSET_FIX = (
    "ServiceSpec sets them on the service container (docs/aws.md, \"The container's "
    'environment"): deploy the service with ServiceSpec, or set them in the task definition'
)


class ContainerSettingsError(FlowhostError):
    """The container's environment is incomplete or wrong; the message is one line."""

    code = "container_settings"


def _field(name: str, **kwargs: Any) -> Any:
    return Field(alias=name, **kwargs)


class ContainerSettings(BaseModel):
    """The serving container's settings. Build with :meth:`from_env`; field names (or the
    variable names, as aliases) also work for tests."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True
    )

    service: Annotated[str, _field("FLOWHOST_SERVICE", min_length=1, max_length=63)]
    version: Annotated[int, _field("FLOWHOST_VERSION", ge=1)]
    environment: Annotated[str, _field("FLOWHOST_ENVIRONMENT", min_length=1)]
    port: Annotated[int, _field("FLOWHOST_PORT", ge=1, le=65535)]
    code_package: Annotated[str, _field("FLOWHOST_CODE_PACKAGE")]
    code_digest: Annotated[str, _field("FLOWHOST_CODE_DIGEST")]
    entrypoint: Annotated[str, _field("FLOWHOST_ENTRYPOINT")]
    run: Annotated[str | None, _field("FLOWHOST_RUN")] = None
    artifact_flow: Annotated[str | None, _field("FLOWHOST_ARTIFACT_FLOW")] = None
    metaflow_namespace: Annotated[
        str | None, _field("FLOWHOST_METAFLOW_NAMESPACE", pattern=r"^\S{1,500}$")
    ] = None
    metaflow_auth_secret_arn: Annotated[
        str | None,
        _field("FLOWHOST_METAFLOW_AUTH_SECRET_ARN", pattern=r"^arn:aws[\w-]*:secretsmanager:"),
    ] = None
    bucket: Annotated[str, _field("FLOWHOST_BUCKET", min_length=3, max_length=63)]
    kms_key_arn: Annotated[str, _field("FLOWHOST_KMS_KEY_ARN", pattern=r"^arn:aws[\w-]*:kms:")]
    async_prefix: Annotated[str, _field("FLOWHOST_ASYNC_PREFIX")]
    queue_name: Annotated[str, _field("FLOWHOST_QUEUE_NAME", min_length=1, max_length=80)]
    queue_url: Annotated[str, _field("FLOWHOST_QUEUE_URL", pattern=r"^https?://\S+/\S+$")]
    dead_letter_queue_url: Annotated[
        str, _field("FLOWHOST_DEAD_LETTER_QUEUE_URL", pattern=r"^https?://\S+/\S+$")
    ]
    region: Annotated[str, _field("AWS_REGION", pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")]
    host: Annotated[str, _field("FLOWHOST_HOST", min_length=1)] = "0.0.0.0"
    result_ttl: Annotated[float, _field("FLOWHOST_RESULT_TTL", ge=60, le=30 * 86400)] = (
        _DEFAULTS.result_ttl
    )
    async_visibility: Annotated[
        float, _field("FLOWHOST_ASYNC_VISIBILITY", ge=3, le=MAX_ASYNC_TIMEOUT)
    ] = _DEFAULTS.visibility
    async_retry_backoff: Annotated[float, _field("FLOWHOST_ASYNC_RETRY_BACKOFF", ge=0, le=300)] = (
        _DEFAULTS.retry_backoff
    )
    async_jobs: Annotated[bool, _field("FLOWHOST_ASYNC")] = True
    metrics: Annotated[Literal["prometheus", "emf"], _field("FLOWHOST_METRICS")] = "emf"
    metrics_interval: Annotated[float, _field("FLOWHOST_METRICS_INTERVAL", ge=1, le=3600)] = 60.0
    threads: Annotated[int, _field("FLOWHOST_THREADS", ge=1, le=1024)] = 32
    code_dir: Annotated[Path, _field("FLOWHOST_CODE_DIR")] = Path("/tmp/flowhost/code")  # noqa: S108
    environment_digest: Annotated[
        str | None, _field("FLOWHOST_ENVIRONMENT_DIGEST", pattern=r"^sha256-[0-9a-f]{64}$")
    ] = None
    environment_cache: Annotated[Path, _field("FLOWHOST_ENV_CACHE")] = Path(
        "/tmp/flowhost/envs"  # noqa: S108
    )
    otlp_endpoint: Annotated[
        str | None, _field("OTEL_EXPORTER_OTLP_ENDPOINT", pattern=r"^https?://[^\s/]+(/\S*)?$")
    ] = None
    trace_sample_ratio: Annotated[float, _field("FLOWHOST_TRACE_SAMPLE_RATIO", ge=0, le=1)] = 0.05

    @field_validator("version", mode="before")
    @classmethod
    def _label(cls, value: object) -> object:
        if isinstance(value, str):
            if not re.fullmatch(r"v[1-9][0-9]*", value):
                raise ValueError("not a version label v<N>")
            return int(value[1:])
        return value

    @field_validator("code_package")
    @classmethod
    def _s3_uri(cls, value: str) -> str:
        if not _S3_URI.fullmatch(value):
            raise ValueError("not an S3 URI s3://<bucket>/<key>")
        return value

    @field_validator("code_digest")
    @classmethod
    def _digest(cls, value: str) -> str:
        if not _DIGEST.fullmatch(value):
            raise ValueError("not a package digest sha256-<hex>")
        return value

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint(cls, value: str) -> str:
        file, sep, name = value.rpartition(":")
        path = PurePosixPath(file)
        if (
            not sep
            or not file.endswith(".py")
            or not _CLASS.fullmatch(name)
            or path.is_absolute()
            or ".." in path.parts
        ):
            raise ValueError("not <file>.py:<Class> inside the package")
        return value

    @field_validator("async_jobs", mode="before")
    @classmethod
    def _on_off(cls, value: object) -> object:
        if isinstance(value, str):
            choice = {"on": True, "off": False}.get(value.strip().lower())
            if choice is None:
                raise ValueError("neither on nor off")
            return choice
        return value

    @field_validator("code_dir", "environment_cache")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError("not an absolute path")
        return value

    @property
    def label(self) -> str:
        return f"v{self.version}"

    @property
    def package_location(self) -> tuple[str, str]:
        """``(bucket, key)`` of the code package."""
        found = _S3_URI.fullmatch(self.code_package)
        assert found is not None  # checked when the settings were made
        return found["bucket"], found["key"]

    def runtime(self) -> RuntimeSettings:
        """How the instance serves."""
        return RuntimeSettings(
            version=self.label, environment=self.environment, run=self.run,
            metrics=self.metrics, metrics_interval=self.metrics_interval, threads=self.threads,
            otlp_endpoint=self.otlp_endpoint, trace_sample_ratio=self.trace_sample_ratio,
        )  # fmt: skip

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ContainerSettings:
        """Read and check the contract; an empty variable counts as unset."""
        names = (*CONTRACT, *KNOBS)
        values = {name: env[name] for name in names if env.get(name, "").strip()}
        missing = [name for name in CONTRACT if name not in values and name not in OPTIONAL]
        problems: list[str] = []
        if missing:
            are = "is" if len(missing) == 1 else "are"
            problems.append(f"{', '.join(missing)} {are} not set. {_UNSET_FIX}.")
        settings: ContainerSettings | None = None
        try:
            settings = cls.model_validate(values)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                name = str(error["loc"][0]) if error["loc"] else ""
                if name in values:  # unset ones are reported above
                    problems.append(_problem(name, values[name], error["msg"]))
        if settings is not None and settings.async_prefix != f"async/{settings.service}/":
            what = f"not async/{settings.service}/, the service's own prefix"
            problems.append(_problem("FLOWHOST_ASYNC_PREFIX", settings.async_prefix, what))
        if problems or settings is None:
            raise ContainerSettingsError("container environment: " + " ".join(problems))
        return settings


def _problem(name: str, value: str, what: str) -> str:
    what = what.removeprefix("Value error, ")
    what = what[:1].lower() + what[1:]
    shown = value if len(value) <= 120 else value[:117] + "..."
    hint = CONTRACT.get(name) or KNOBS.get(name) or "Fix the value"
    return f"{name}: {what} (got {shown!r}). {hint}."
