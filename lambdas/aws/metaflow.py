"""Metaflow on AWS: the settings the control-plane function and the serving tasks read runs
with, and the start-up check of a task's pinned run.

The platform stack sets Metaflow's own variables on the function and on every task
(``METAFLOW_DEFAULT_METADATA``, ``METAFLOW_SERVICE_URL``, ``METAFLOW_DEFAULT_DATASTORE``,
``METAFLOW_DATASTORE_SYSROOT_S3``, ``USERNAME``) and the platform's namespace
(``FLOWHOST_METAFLOW_NAMESPACE``, see :mod:`flowhost.services.artifacts`). The metadata
service's auth key reaches a task as ``METAFLOW_SERVICE_AUTH_KEY`` (ECS injects it from
Secrets Manager); the function gets the secret's ARN (``FLOWHOST_METAFLOW_AUTH_SECRET_ARN``)
and :func:`apply_metaflow_settings` fetches it at cold start.

Metaflow reads its configuration once, when ``metaflow.metaflow_config`` is imported: the
service provider copies ``SERVICE_HEADERS`` (which carries the key as ``x-api-key``) into
its own module then. So the key goes into ``os.environ`` before anything imports Metaflow;
if something already has, the loaded configuration's header dict (the one object every
importer shares) is updated in place as well.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from flowhost.errors import ArtifactError, FlowhostError
from flowhost.lambdas.aws.errors import error_code
from flowhost.services.artifacts import check_run, metaflow_settings, resolve_run
from flowhost.services.config import ArtifactBinding

__all__ = [
    "AUTH_KEY_ENV",
    "AUTH_SECRET_ENV",
    "MetaflowSettingsError",
    "apply_metaflow_settings",
    "pin_artifacts",
]

AUTH_SECRET_ENV = "FLOWHOST_METAFLOW_AUTH_SECRET_ARN"  # noqa: S105 - a variable name
AUTH_KEY_ENV = "METAFLOW_SERVICE_AUTH_KEY"
_JSON_KEYS = (AUTH_KEY_ENV, "auth_key")
FIX = (
    "Check the platform's flowhost:metaflow settings and that the task role may read the "
    "datastore root"
)


class MetaflowSettingsError(FlowhostError):
    """The Metaflow settings on AWS cannot be applied (the auth secret is unreadable)."""

    code = "metaflow_settings"
    status = 500


def _auth_key(value: str, arn: str) -> str:
    """The key in the secret: its whole value, or a JSON object's METAFLOW_SERVICE_AUTH_KEY
    (or auth_key) field."""
    text = value.strip()
    if text.startswith("{"):
        try:
            found: Any = json.loads(text)
        except ValueError:
            found = None
        if isinstance(found, dict):
            fields: dict[str, Any] = found  # pyright: ignore[reportUnknownVariableType]
            for name in _JSON_KEYS:
                key = fields.get(name)
                if isinstance(key, str) and key.strip():
                    return key.strip()
        raise MetaflowSettingsError(
            f"{AUTH_SECRET_ENV}: the secret is a JSON object without a non-empty "
            f"{' or '.join(_JSON_KEYS)} field (got secret {arn}). Store the metadata "
            "service's key as the secret's whole value, or under METAFLOW_SERVICE_AUTH_KEY."
        )
    if not text:
        raise MetaflowSettingsError(
            f"{AUTH_SECRET_ENV}: the secret is empty (got secret {arn}). Store the metadata "
            "service's auth key in it."
        )
    return text


def apply_metaflow_settings(
    secrets: Callable[[], Any] | None = None, env: MutableMapping[str, str] | None = None
) -> None:
    """Put the metadata service's auth key where Metaflow reads it, fetching it from
    Secrets Manager when only ``FLOWHOST_METAFLOW_AUTH_SECRET_ARN`` is set. ``secrets``
    makes the Secrets Manager client (default: boto3's, which honours AWS_ENDPOINT_URL);
    it is called only when there is a secret to fetch. Never logs or raises the key."""
    env = os.environ if env is None else env
    arn = env.get(AUTH_SECRET_ENV, "").strip()
    if not arn or env.get(AUTH_KEY_ENV, "").strip():
        return  # nothing to fetch, or the key is there already (a task; a warm function)
    if secrets is None:
        import boto3

        secrets = lambda: boto3.client("secretsmanager")  # noqa: E731  # pyright: ignore[reportUnknownMemberType, reportUnknownLambdaType]
    try:
        client: Any = secrets()
        found: dict[str, Any] = client.get_secret_value(SecretId=arn)
        value = str(found["SecretString"])
    except ClientError as exc:
        raise MetaflowSettingsError(
            f"{AUTH_SECRET_ENV}: Secrets Manager GetSecretValue failed ({error_code(exc)}) "
            f"(got {arn}). Check that the secret exists and that this role may "
            "secretsmanager:GetSecretValue it (and decrypt with its KMS key)."
        ) from None
    except (BotoCoreError, KeyError) as exc:
        raise MetaflowSettingsError(
            f"{AUTH_SECRET_ENV}: Secrets Manager GetSecretValue failed ({type(exc).__name__}) "
            f"(got {arn}). Check the network path to Secrets Manager and that the secret "
            "holds a string."
        ) from None
    key = _auth_key(value, arn)
    env[AUTH_KEY_ENV] = key
    config = sys.modules.get("metaflow.metaflow_config")
    if config is not None:  # imported already: its SERVICE_HEADERS is shared by reference
        setattr(config, "SERVICE_AUTH_KEY", key)  # noqa: B010 - not a declared attribute
        headers = getattr(config, "SERVICE_HEADERS", None)
        if isinstance(headers, dict):
            headers["x-api-key"] = key


def pin_artifacts(
    binding: ArtifactBinding | None, run: str | None, namespace: str | None
) -> str | None:
    """The run a task serves, checked readable before it takes traffic: the pinned ``run``
    (the version record's), or the binding's latest successful run when none is pinned.
    Read in the binding's namespace, else ``namespace`` (the platform's). Raises one
    ArtifactError line naming the run, the settings in play and the fix."""
    if binding is None:
        return None
    if binding.namespace is None and namespace is not None:
        binding = binding.model_copy(update={"namespace": namespace})
    try:
        pathspec = binding.pinned(run).run if run is not None else resolve_run(binding)
    except FlowhostError as exc:  # SpecError (a malformed pin) or ArtifactError
        raise ArtifactError(
            f"artifacts: {exc.message} Settings in play: {metaflow_settings()}. {FIX}."
        ) from None
    assert pathspec is not None
    check_run(pathspec, binding.namespace, fix=FIX)
    return pathspec
