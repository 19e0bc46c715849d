"""Identity-policy evaluation for the API Gateway emulation: may this caller
``execute-api:Invoke`` this route?

What IAM does for an HTTP API with the ``AWS_IAM`` authorizer, for the parts flowhost's
grants use: the caller's identity policies (managed policies attached to it, as
documents), an explicit ``Deny`` wins, then any ``Allow`` whose ``Action`` and
``Resource`` match; otherwise denied. ``Action`` and ``Resource`` take IAM's wildcards
(``*`` any run of characters, ``/`` included; ``?`` one character); actions compare
case-insensitively. Conditions, ``NotAction``/``NotResource``, resource policies,
permission boundaries and SCPs are not modelled: a statement that uses one is refused
loudly rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

__all__ = ["invoke_arn", "is_allowed"]

_UNMODELLED = ("Condition", "NotAction", "NotResource", "NotPrincipal")


@cache
def _pattern(wildcard: str, ignore_case: bool) -> re.Pattern[str]:
    text = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in wildcard)
    return re.compile(text, re.IGNORECASE if ignore_case else 0)


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value or []]


def _statements(documents: Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    for document in documents:
        found = document.get("Statement", [])
        yield from [found] if isinstance(found, Mapping) else found


def is_allowed(documents: Iterable[Mapping[str, Any]], action: str, resource: str) -> bool:
    """Whether the identity policies allow ``action`` on ``resource``."""
    allowed = False
    for statement in _statements(documents):
        unmodelled = [k for k in _UNMODELLED if k in statement]
        if unmodelled:
            raise NotImplementedError(f"IAM evaluation: {unmodelled} in {dict(statement)}")
        actions, resources = _listed(statement.get("Action")), _listed(statement.get("Resource"))
        if not any(_pattern(a, True).fullmatch(action) for a in actions):
            continue
        if not any(_pattern(r, False).fullmatch(resource) for r in resources):
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = True
    return allowed


def invoke_arn(region: str, account: str, api_id: str, stage: str, method: str, path: str) -> str:
    """The ARN a call is authorized against: ``.../<api-id>/<stage>/<METHOD>/<path>``."""
    return f"arn:aws:execute-api:{region}:{account}:{api_id}/{stage}/{method.upper()}{path}"
