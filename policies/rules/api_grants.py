"""Grants on the API name routes; roles trusted by OIDC name who (the ``sub`` claim).

- ``api-grants-route-scoped``: an identity policy may not allow ``execute-api:*`` (or any
  action pattern that matches more than ``execute-api:Invoke``), and may allow
  ``execute-api:Invoke`` only on an ARN that names an API and a method or route
  (``arn:aws:execute-api:<region>:<account>:<api-id>/<stage>/<METHOD>/<path>``), never on
  ``*``, on every API, or on a whole API (``<api-id>/*``, ``<api-id>/*/*/*``).
- ``oidc-trust-pins-sub``: a role whose trust lets a federated OIDC provider assume it
  (``sts:AssumeRoleWithWebIdentity``) must require the provider's ``<issuer>:sub`` claim
  (e.g. ``token.actions.githubusercontent.com:sub``) to be specific values: without it,
  any identity the provider issues a token for (any GitHub repository) may assume it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping
from typing import Any, Final

from policies.model import (
    PolicyConfig,
    Resource,
    ResourceRule,
    as_list,
    is_unknown,
    parse_document,
    statements,
)
from policies.rules.iam import IDENTITY_POLICY_TYPES, ROLE, identity_documents

INVOKE: Final = "execute-api:invoke"
WEB_IDENTITY: Final = "sts:assumerolewithwebidentity"


def _matches(pattern: object, action: str) -> bool:
    return isinstance(pattern, str) and fnmatch.fnmatchcase(action, pattern.lower())


def _whole_api(arn: str) -> bool:
    """``*``, any API (``arn:...:execute-api:...:*``), or an API with no method or route."""
    if arn == "*":
        return True
    parts = arn.split(":", 5)
    if len(parts) != 6 or not fnmatch.fnmatchcase("execute-api", parts[2]):
        return False
    api, *rest = parts[5].split("/")
    if "*" in api:
        return True
    # <stage>/<METHOD>/<path...>: a literal method or path segment scopes the grant.
    return all(segment in ("", "*") for segment in rest[1:])


def _label(index: int, statement: Mapping[str, Any]) -> str:
    sid = statement.get("Sid")
    return f"statement {sid!r}" if isinstance(sid, str) and sid else f"statement #{index}"


def check_api_grants_route_scoped(resource: Resource, config: PolicyConfig) -> Iterator[str]:
    del config
    for where, raw in identity_documents(resource):
        document = None if raw is None or is_unknown(raw) else parse_document(raw)
        if document is None:
            continue  # iam-no-wildcards reports a document that is not JSON
        for index, statement in enumerate(statements(document)):
            if statement.get("Effect") != "Allow":
                continue
            actions = as_list(statement.get("Action"))
            broad = [a for a in actions if _matches(a, INVOKE) and str(a).lower() != INVOKE]
            label = f"{resource.where}: {where} {_label(index, statement)}"
            if broad:
                yield (
                    f"{label} allows {broad} on the API, which grants every execute-api action "
                    "(including managing connections). Grant 'execute-api:Invoke' on the "
                    "routes the caller needs."
                )
            if not any(_matches(a, INVOKE) for a in actions):
                continue
            resources = as_list(statement.get("Resource"))
            whole = [r for r in resources if isinstance(r, str) and _whole_api(r)]
            if whole:
                yield (
                    f"{label} allows execute-api:Invoke on {whole}, the whole API. Name the "
                    "stage, method and route, e.g. arn:aws:execute-api:us-east-1:"
                    "123456789012:a1b2c3/$default/GET/api/*, or attach the platform's "
                    "readersPolicyArn / deployersPolicyArn / invokersPolicyArn."
                )


def _federated_oidc(principal: object) -> list[str]:
    if not isinstance(principal, Mapping):
        return []
    federated = as_list(principal.get("Federated"))  # pyright: ignore[reportUnknownMemberType]
    return [f for f in federated if isinstance(f, str) and ":oidc-provider/" in f]


def _sub_values(conditions: object, issuer: str) -> list[object]:
    """The values any operator requires of ``<issuer>:sub`` (keys compare case-insensitively)."""
    found: list[object] = []
    if not isinstance(conditions, Mapping):
        return found
    for block in conditions.values():  # pyright: ignore[reportUnknownVariableType]
        if not isinstance(block, Mapping):
            continue
        for key, value in block.items():  # pyright: ignore[reportUnknownVariableType]
            if isinstance(key, str) and key.lower() == f"{issuer}:sub".lower():
                found += as_list(value)
    return found


def check_oidc_trust_pins_sub(resource: Resource, config: PolicyConfig) -> Iterator[str]:
    del config
    raw = resource.props.get("assumeRolePolicy")
    document = None if raw is None or is_unknown(raw) else parse_document(raw)
    if document is None:
        return
    for index, statement in enumerate(statements(document)):
        actions = as_list(statement.get("Action"))
        if statement.get("Effect") != "Allow" or not any(
            _matches(a, WEB_IDENTITY) for a in actions
        ):
            continue
        for provider in _federated_oidc(statement.get("Principal")):
            issuer = provider.split(":oidc-provider/", 1)[1]
            values = _sub_values(statement.get("Condition"), issuer)
            if not values or any(v in ("*", "") for v in values):
                yield (
                    f"{resource.where}: assumeRolePolicy {_label(index, statement)} lets "
                    f"{issuer} tokens assume the role without a '{issuer}:sub' condition "
                    f"(got {values or 'none'}): any identity that provider issues a token for "
                    "could. Add Condition StringEquals {'" + issuer + ":sub': [...]}, e.g. "
                    "'repo:owner/repo:ref:refs/heads/main' for GitHub Actions."
                )


RULES: Final = (
    ResourceRule(
        name="api-grants-route-scoped",
        description="Identity policies allow no execute-api:* and invoke the API only on "
        "named methods or routes, never on '*' or a whole API.",
        check=check_api_grants_route_scoped,
        types=IDENTITY_POLICY_TYPES,
    ),
    ResourceRule(
        name="oidc-trust-pins-sub",
        description="Roles trusted by a federated OIDC provider require its 'sub' claim.",
        check=check_oidc_trust_pins_sub,
        types=frozenset({ROLE}),
    ),
)
