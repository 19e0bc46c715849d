"""The types of the access and CI keys of the platform's config (:mod:`flowhost.infra.config`):
``flowhost:invokerServices``, ``flowhost:githubRepository``, ``flowhost:githubBranches``,
``flowhost:githubEnvironments``, ``flowhost:githubOidcProviderArn`` and
``flowhost:pulumiStateBackend``. Each refuses a bad value with the fix in its message."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

__all__ = [
    "GithubNames",
    "GithubProviderArn",
    "GithubRepository",
    "ServiceNames",
    "StateBackendUrl",
]

_REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
_REF_NAME = re.compile(r"^[A-Za-z0-9._/-]{1,255}$")
_PROVIDER_ARN = re.compile(
    r"^arn:aws(?:-[a-z]+)*:iam::[0-9]{12}:oidc-provider/token\.actions\.githubusercontent\.com$"
)
_STATE_BACKEND = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](?:/[A-Za-z0-9!_.*'()/-]*)?$")
_SERVICE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def _services(value: tuple[str, ...]) -> tuple[str, ...]:
    for item in value:
        if not _SERVICE.match(item):
            raise ValueError(f"{item!r} is not a service name, e.g. [sentiment]")
    return value


def _repository(value: str) -> str:
    if not _REPOSITORY.match(value):
        raise ValueError("must be a GitHub repository as owner/repo, e.g. acme/models")
    return value


def _names(value: tuple[str, ...]) -> tuple[str, ...]:
    for item in value:
        if not _REF_NAME.match(item) or "*" in item:
            raise ValueError(
                f"{item!r} is not a branch or environment name (no wildcards), e.g. [main]"
            )
    return value


def _provider(value: str) -> str:
    if not _PROVIDER_ARN.match(value):
        raise ValueError(
            "must be the ARN of the account's GitHub OIDC provider, e.g. arn:aws:iam::"
            "123456789012:oidc-provider/token.actions.githubusercontent.com; or remove "
            "the key to have the platform create it"
        )
    return value


def _state_backend(value: str) -> str:
    if not _STATE_BACKEND.match(value):
        raise ValueError("must be the S3 state backend's URL, e.g. s3://acme-pulumi/flowhost")
    return value


ServiceNames = Annotated[tuple[str, ...], AfterValidator(_services)]
GithubRepository = Annotated[str, AfterValidator(_repository)]
GithubNames = Annotated[tuple[str, ...], AfterValidator(_names)]
GithubProviderArn = Annotated[str, AfterValidator(_provider)]
StateBackendUrl = Annotated[str, AfterValidator(_state_backend)]
