"""The platform's Metaflow settings (``flowhost:metaflow``) as environments and grants.

One place for the contract the control-plane functions and the serving tasks share
(docs/aws.md, "Metaflow"):

- both get ``METAFLOW_DEFAULT_METADATA``, ``METAFLOW_SERVICE_URL`` (with a metadata
  service), ``METAFLOW_DEFAULT_DATASTORE``, ``METAFLOW_DATASTORE_SYSROOT_S3`` (or
  ``_LOCAL``), ``USERNAME=flowhost`` and ``FLOWHOST_METAFLOW_NAMESPACE``;
- the metadata service's auth key: ECS injects ``METAFLOW_SERVICE_AUTH_KEY`` into tasks
  from the secret (``valueFrom``, read by the execution role); the functions (and EKS
  pods, which have no such injection) get ``FLOWHOST_METAFLOW_AUTH_SECRET_ARN`` and read
  the secret themselves;
- whoever reads runs may read the S3 datastore root and nothing else of its bucket.
"""

from __future__ import annotations

import re

import pulumi

from flowhost.infra.iam import Statement
from flowhost.infra.metaflow_config import MetaflowSettings

__all__ = [
    "AUTH_KEY_VARIABLE",
    "AUTH_SECRET_VARIABLE",
    "USERNAME",
    "datastore_statements",
    "function_environment",
    "function_grants",
    "metaflow_environment",
    "outputs",
    "s3_root",
]

USERNAME = "flowhost"
AUTH_KEY_VARIABLE = "METAFLOW_SERVICE_AUTH_KEY"  # what Metaflow reads
AUTH_SECRET_VARIABLE = "FLOWHOST_METAFLOW_AUTH_SECRET_ARN"  # noqa: S105 (a variable's name)
_S3_ROOT = re.compile(r"^s3://(?P<bucket>[^/]+)(?:/(?P<prefix>.*?))?/?$")


def metaflow_environment(settings: MetaflowSettings | None) -> dict[str, str]:
    """The Metaflow variables every reader of runs gets; empty without settings."""
    if settings is None:
        return {}
    sysroot = "S3" if settings.datastore == "s3" else "LOCAL"
    env = {
        "METAFLOW_DEFAULT_METADATA": settings.metadata,
        "METAFLOW_DEFAULT_DATASTORE": settings.datastore,
        f"METAFLOW_DATASTORE_SYSROOT_{sysroot}": settings.datastore_root,
        "USERNAME": USERNAME,
        "FLOWHOST_METAFLOW_NAMESPACE": settings.namespace,
    }
    if settings.service_url is not None:
        env["METAFLOW_SERVICE_URL"] = settings.service_url
    return env


def function_environment(settings: MetaflowSettings | None) -> dict[str, str]:
    """The control-plane functions': the above and where the auth key is."""
    env = metaflow_environment(settings)
    if settings is not None and settings.auth_secret_arn is not None:
        env[AUTH_SECRET_VARIABLE] = settings.auth_secret_arn
    return env


def s3_root(root: str) -> tuple[str, str] | None:
    """(bucket, prefix without slashes) of an ``s3://`` datastore root, else None."""
    match = _S3_ROOT.match(root)
    if match is None:
        return None
    return match["bucket"], (match["prefix"] or "").strip("/")


def datastore_statements(
    root: str, partition: pulumi.Input[str], *, flow: str | None = None
) -> list[Statement]:
    """Read the datastore root (or only ``flow``'s folder under it: Metaflow keeps a flow's
    runs and content-addressed artifacts there), and list it with an ``s3:prefix``
    condition; nothing else of that bucket. Empty for a local datastore or no root."""
    found = s3_root(root)
    if found is None:
        return []
    bucket, prefix = found
    folder = "/".join(part for part in (prefix, flow) if part)
    objects = f"{folder}/*" if folder else "*"
    bucket_arn = pulumi.Output.concat("arn:", partition, ":s3:::", bucket)
    return [
        Statement(
            "MetaflowDatastoreObjects",
            ["s3:GetObject"],
            [pulumi.Output.concat(bucket_arn, "/", objects)],
        ),
        Statement(
            "MetaflowDatastoreListing",
            ["s3:ListBucket"],
            [bucket_arn],
            conditions={"StringLike": {"s3:prefix": objects}},
        ),
    ]


def function_grants(
    settings: MetaflowSettings | None, partition: pulumi.Input[str]
) -> dict[str, list[Statement]]:
    """Per control-plane function: every one reads the metadata service's auth key at cold
    start; the API (deploys resolve runs) and the scaler (it advances deploys) read the
    datastore root too. Empty without settings."""
    if settings is None:
        return {}
    secret = settings.auth_secret_arn
    key = [
        Statement("MetaflowAuthKey", ["secretsmanager:GetSecretValue"], [arn])
        for arn in ([secret] if secret is not None else [])
    ]
    runs = datastore_statements(settings.datastore_root, partition)
    return {"api": [*key, *runs], "activator": key, "scaler": [*key, *runs]}


def outputs(settings: MetaflowSettings | None) -> dict[str, object]:
    """The platform stack's Metaflow outputs (docs/aws.md), read by ``PlatformRef``;
    ``{}`` and ``""`` without settings (services then run as before)."""
    return {
        "metaflowEnvironment": metaflow_environment(settings),
        "metaflowAuthSecretArn": (settings.auth_secret_arn or "") if settings else "",
        "metaflowDatastoreRoot": settings.datastore_root if settings else "",
    }
