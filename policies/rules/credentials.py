"""Credentials: never in plain environment variables of ECS containers or Lambda functions.

A variable's value is in the task definition or function configuration, the stack's state
and ``describe`` output for anyone who may read them. ECS fills ``secrets`` from Secrets
Manager or SSM at start (a task definition names only the ARN); a function reads a secret
by its ARN. So a variable named like a credential (``*_PASSWORD``, ``*_TOKEN``,
``*_CREDENTIALS``, ...) with a value, or any value holding a URL with
``user:password@``, is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from policies.model import PolicyConfig, Resource, ResourceRule, as_list, is_unknown

TASK_DEFINITION: Final = "aws:ecs/taskDefinition:TaskDefinition"
FUNCTION: Final = "aws:lambda/function:Function"
# Names whose value is a credential; ``*_SECRET_ARN``, ``*_KMS_KEY_ARN`` etc. name where one is.
CREDENTIAL_NAME: Final = re.compile(
    r"(^|_)(PASSWORD|PASSWD|SECRET|SECRET_KEY|SECRET_ACCESS_KEY|TOKEN|API_KEY|AUTH_KEY|"
    r"CREDENTIALS|PRIVATE_KEY)$",
    re.IGNORECASE,
)
# scheme://user:password@host: a URL that carries its own credentials.
URL_WITH_PASSWORD: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@")


def _container_variables(resource: Resource) -> Iterator[tuple[str, str, object]]:
    """(container, name, value) of every ``environment`` entry of a task definition."""
    raw = resource.props.get("containerDefinitions")
    if not isinstance(raw, str) or is_unknown(raw):
        return
    try:
        containers: Any = json.loads(raw)
    except ValueError:
        return  # not JSON: ECS refuses it before this matters
    for container in as_list(containers):
        if not isinstance(container, Mapping):
            continue
        label = str(container.get("name", "?"))
        for entry in as_list(container.get("environment")):
            if isinstance(entry, Mapping):
                yield label, str(entry.get("name", "")), entry.get("value")


def _function_variables(resource: Resource) -> Iterator[tuple[str, str, object]]:
    environment = resource.props.get("environment")
    if not isinstance(environment, Mapping):
        return
    variables = environment.get("variables")
    if isinstance(variables, Mapping):
        for name, value in variables.items():
            yield "function", str(name), value


def check_no_plaintext_credentials(resource: Resource, config: PolicyConfig) -> Iterator[str]:
    del config
    found = (
        _container_variables(resource)
        if resource.type == TASK_DEFINITION
        else _function_variables(resource)
    )
    fix = (
        "Put it in the container's secrets (valueFrom a Secrets Manager or SSM ARN)."
        if resource.type == TASK_DEFINITION
        else "Keep it in Secrets Manager and pass the secret's ARN (e.g. <NAME>_SECRET_ARN)."
    )
    for where, name, value in found:
        if is_unknown(value) or not isinstance(value, str) or not value:
            continue
        if URL_WITH_PASSWORD.search(value):
            yield (
                f"{resource.where}: {where} variable {name!r} holds a URL with "
                f"user:password@ (got {URL_WITH_PASSWORD.sub('<scheme>://***@', value)!r}). "
                f"Use the URL without credentials. {fix}"
            )
        elif CREDENTIAL_NAME.search(name):
            yield (
                f"{resource.where}: {where} variable {name!r} is named like a credential and "
                f"has a plain value (got {len(value)} characters). {fix}"
            )


RULES: Final = (
    ResourceRule(
        name="no-plaintext-credentials-in-environment",
        description="ECS container and Lambda environment variables hold no credentials: "
        "none named like one (*_PASSWORD, *_TOKEN, *_CREDENTIALS, ...) with a value, and no "
        "URL with user:password@.",
        check=check_no_plaintext_credentials,
        types=frozenset({TASK_DEFINITION, FUNCTION}),
    ),
)
