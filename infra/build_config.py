"""``flowhost:environmentBuild`` and ``flowhost:packageIndex``: the environment build
task's size and the private package index it installs from, validated (see docs/aws.md,
"Environment builds"). The index's URL never carries credentials: they live in a Secrets
Manager secret that only the build task's execution role reads."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

from flowhost.infra.containers import FARGATE_SIZES

__all__ = ["EnvironmentBuildSettings", "PackageIndexSettings", "masked"]

_SECRET_ARN = re.compile(
    r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$"
)
_USERINFO = re.compile(r"(//)[^/@\s'\"]+@")
_CAMEL = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)


class EnvironmentBuildSettings(BaseModel):
    """``flowhost:environmentBuild``: the build task's Fargate size."""

    model_config = _CAMEL

    cpu: int = 1024
    memory_mib: int = 4096
    ephemeral_storage_gib: Annotated[int, Field(ge=21, le=200)] = 40

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: int) -> int:
        if value not in FARGATE_SIZES:
            raise ValueError(
                f"must be Fargate CPU units, one of {', '.join(map(str, FARGATE_SIZES))}"
            )
        return value

    @field_validator("memory_mib")
    @classmethod
    def _memory(cls, value: int, info: ValidationInfo) -> int:
        cpu = info.data.get("cpu")
        if cpu in FARGATE_SIZES and value not in FARGATE_SIZES[cpu]:
            sizes = FARGATE_SIZES[cpu]
            raise ValueError(
                f"Fargate takes {sizes[0]} to {sizes[-1]} MiB in steps of "
                f"{sizes[1] - sizes[0]} with cpu {cpu}; change memoryMib or cpu"
            )
        return value


class PackageIndexSettings(BaseModel):
    """``flowhost:packageIndex``: a private index builds install from, and where its
    credentials are (a Secrets Manager secret ``{"username": ..., "password": ...}``)."""

    model_config = _CAMEL

    url: str
    credentials_secret_arn: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                "must not carry credentials (user:password@): put them in a Secrets Manager "
                "secret and set credentialsSecretArn"
            )
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be the index's URL, e.g. https://pypi.example.com/simple")
        return value

    @field_validator("credentials_secret_arn")
    @classmethod
    def _secret(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not _SECRET_ARN.match(value):
            raise ValueError(
                'must be the ARN of a Secrets Manager secret holding {"username": ..., '
                '"password": ...}, e.g. arn:aws:secretsmanager:us-east-1:123456789012:'
                "secret:pypi-credentials"
            )
        url = info.data.get("url")
        loopback = isinstance(url, str) and urlsplit(url).hostname in ("127.0.0.1", "localhost")
        # (a proxy on the task's own loopback never sends them on the wire)
        if (
            value is not None
            and isinstance(url, str)
            and not url.startswith("https://")
            and not loopback
        ):
            raise ValueError("is sent to the index only over https: make url an https:// URL")
        return value


def masked(text: str) -> str:
    """``text`` with the ``user:password@`` of any URL in it masked, for error messages."""
    return _USERINFO.sub(r"\1***@", text)
