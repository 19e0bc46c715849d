"""``flowhost:metaflow``: the platform's Metaflow settings, validated (see docs/aws.md)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

__all__ = ["MetaflowSettings"]

_SECRET_ARN = re.compile(
    r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$"
)
_S3_ROOT = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9!_.*'()/-]*)?$")
# A Metaflow namespace: a tag such as "production" or "user:alice".
_METAFLOW_NAMESPACE = re.compile(r"^[A-Za-z0-9_.:@+-]{1,128}$")


class MetaflowSettings(BaseModel):
    """``flowhost:metaflow``: where the runs that services load come from.

    The control-plane functions resolve runs with these settings at deploy, and every
    serving task reads its pinned run's artifacts with them (docs/aws.md, "Metaflow").
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )

    metadata: Literal["service", "local"] = "service"
    service_url: str | None = Field(default=None, validate_default=True)
    auth_secret_arn: str | None = None
    datastore: Literal["s3", "local"] = "s3"
    datastore_root: str
    namespace: str

    @field_validator("service_url")
    @classmethod
    def _service_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        metadata = info.data.get("metadata")
        if metadata == "service" and value is None:
            raise ValueError(
                "is required when metadata is service: set it to the metadata service's "
                "URL, e.g. https://metaflow.example.com/api, or set metadata: local"
            )
        if value is not None and metadata == "local":
            raise ValueError("is used only with metadata: service; remove it, or set that")
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http(s):// URL, e.g. https://metaflow.example.com/api")
        return value

    @field_validator("auth_secret_arn")
    @classmethod
    def _auth_secret(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        if info.data.get("metadata") != "service":
            raise ValueError("is used only with metadata: service; remove it, or set that")
        if not _SECRET_ARN.match(value):
            raise ValueError(
                "must be the ARN of a Secrets Manager secret holding the metadata service's "
                "auth key, e.g. arn:aws:secretsmanager:us-east-1:123456789012:secret:metaflow-key"
            )
        return value

    @field_validator("datastore_root")
    @classmethod
    def _datastore_root(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("datastore", "s3") == "s3":
            if not _S3_ROOT.match(value):
                raise ValueError(
                    "must be an s3:// root (s3://<bucket>[/<prefix>]) when datastore is s3, "
                    "e.g. s3://acme-metaflow/metaflow"
                )
            return value.rstrip("/")
        if not value.startswith("/"):
            raise ValueError(
                "must be an absolute path when datastore is local, e.g. /mnt/metaflow; "
                "or set datastore: s3 with an s3:// root"
            )
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not _METAFLOW_NAMESPACE.match(value):
            raise ValueError(
                "must be a Metaflow namespace (a tag such as production or user:alice)"
            )
        return value
